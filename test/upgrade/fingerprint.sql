-- A description of everything jnx_auth owns, one line per fact, sorted: two
-- databases with the same output have the same schema. Used to check that
-- upgrading from every released version equals a fresh install.
\pset tuples_only on
\pset format unaligned
WITH nsp AS (SELECT oid FROM pg_namespace WHERE nspname = 'jnx'),
facts AS (
    SELECT 'column ' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
           || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
           || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
           || CASE WHEN a.attcompression <> '' THEN ' compression ' || a.attcompression::text ELSE '' END
           || ' #' || a.attnum AS fact
      FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
      LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
     WHERE c.relnamespace IN (SELECT oid FROM nsp) AND c.relkind = 'r'
       AND a.attnum > 0 AND NOT a.attisdropped
    UNION ALL
    SELECT 'constraint ' || conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid)
      FROM pg_constraint WHERE connamespace IN (SELECT oid FROM nsp)
    UNION ALL
    SELECT 'type ' || t.typname || ' ' || format_type(t.typbasetype, t.typtypmod)
           || CASE WHEN t.typnotnull THEN ' not null' ELSE '' END
      FROM pg_type t WHERE t.typnamespace IN (SELECT oid FROM nsp) AND t.typtype = 'd'
    UNION ALL
    SELECT 'index ' || pg_get_indexdef(indexrelid)
      FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
     WHERE c.relnamespace IN (SELECT oid FROM nsp)
    UNION ALL
    SELECT 'trigger ' || pg_get_triggerdef(t.oid) || CASE t.tgenabled WHEN 'O' THEN '' ELSE ' state ' || t.tgenabled::text END
      FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
     WHERE c.relnamespace IN (SELECT oid FROM nsp) AND NOT t.tgisinternal
    UNION ALL
    SELECT 'relation ' || c.relname || ' kind ' || c.relkind::text || ' rls ' || c.relrowsecurity
           || ' force ' || c.relforcerowsecurity || ' acl ' || coalesce(c.relacl::text, 'default')
           || ' comment ' || coalesce(obj_description(c.oid, 'pg_class'), '-')
      FROM pg_class c WHERE c.relnamespace IN (SELECT oid FROM nsp) AND c.relkind IN ('r', 'S')
    UNION ALL
    SELECT 'function ' || p.oid::regprocedure || ' returns ' || pg_get_function_result(p.oid)
           || ' ' || md5(pg_get_functiondef(p.oid)) || ' acl ' || coalesce(p.proacl::text, 'default')
           || ' comment ' || coalesce(obj_description(p.oid, 'pg_proc'), '-')
      FROM pg_proc p WHERE p.pronamespace IN (SELECT oid FROM nsp)
    UNION ALL
    SELECT 'member ' || pg_describe_object(classid, objid, 0)
      FROM pg_depend
     WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
       AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'jnx_auth')
    UNION ALL
    SELECT 'config ' || unnest(extconfig)::regclass::text FROM pg_extension WHERE extname = 'jnx_auth'
    UNION ALL
    SELECT 'schema acl ' || coalesce(nspacl::text, 'default') FROM pg_namespace WHERE nspname = 'jnx'
)
SELECT fact FROM facts ORDER BY fact;
