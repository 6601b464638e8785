// jnx._audit_change(): the audit trigger on users, orgs and memberships.
//
// One row of jnx.audit_logs per changed row, in the same transaction. It
// records who (jnx.audit_actor, else "system"), what (target type and Clerk
// id, org) and which columns changed, never their values. It was PL/pgSQL
// that turned both row versions into jsonb to diff them: a fifth of the cost
// of a webhook. Here each column is compared with its type's equality, in
// place, and the row goes in through one prepared statement.
//
// Names: the statement names only jnx.audit_logs (qualified) and binds every
// value with the column's own type, so nothing is resolved through the
// caller's search_path (no function, operator or cast is looked up by name).
// There is no C++ object in this file: every function may ereport.
#include "pg.h"

extern "C" {
#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/typcache.h"
}

namespace jnx::pg {
namespace {

constexpr int kAuditParams = 7;
constexpr const char *kAuditInsert =
    "INSERT INTO jnx.audit_logs (actor, action, target_type, target_id, org_id, request_id, "
    "details) VALUES ($1, $2, $3, $4, $5, $6, $7)";

SPIPlanPtr audit_plan = nullptr;  // prepared once per backend, kept by the plan cache

// Columns that every INSERT sets and that say nothing: not listed.
bool IsBookkeeping(const char *name) {
  return strcmp(name, "id") == 0 || strcmp(name, "created_at") == 0 ||
         strcmp(name, "updated_at") == 0;
}

int CompareNames(const void *a, const void *b) {
  return strcmp(*static_cast<const char *const *>(a), *static_cast<const char *const *>(b));
}

// IS DISTINCT FROM with the type's default equality (binary image when the
// type has none).
bool Distinct(Form_pg_attribute att, Datum a, bool a_null, Datum b, bool b_null) {
  if (a_null || b_null) return a_null != b_null;
  TypeCacheEntry *type = lookup_type_cache(att->atttypid, TYPECACHE_EQ_OPR_FINFO);
  if (!OidIsValid(type->eq_opr_finfo.fn_oid)) {
    return !datum_image_eq(a, b, att->attbyval, att->attlen);
  }
  return !DatumGetBool(FunctionCall2Coll(&type->eq_opr_finfo, att->attcollation, a, b));
}

int ColumnNumber(TupleDesc desc, const char *name) {
  const int attnum = SPI_fnumber(desc, name);
  if (attnum <= 0) {
    ereport(ERROR, (errcode(ERRCODE_UNDEFINED_COLUMN),
                    errmsg("audit trigger argument names no column: %s", name)));
  }
  return attnum;
}

// The setting as text, NULL when unset or empty (current_setting(name, true)).
const char *Setting(const char *name) {
  const char *value = GetConfigOption(name, true, false);
  return value != nullptr && value[0] != '\0' ? value : nullptr;
}

}  // namespace
}  // namespace jnx::pg

// jnx._audit_change() RETURNS trigger: AFTER INSERT OR UPDATE OR DELETE FOR
// EACH ROW, arguments (target type, column of the Clerk id, column of the org
// id, a uuid).
JNX_FUNCTION(jnx_audit_change) {
  using namespace jnx::pg;
  if (!CALLED_AS_TRIGGER(fcinfo)) {
    ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                    errmsg("jnx._audit_change() must be called as a trigger")));
  }
  auto *trigdata = reinterpret_cast<TriggerData *>(fcinfo->context);
  const Trigger *trigger = trigdata->tg_trigger;
  if (!TRIGGER_FIRED_AFTER(trigdata->tg_event) || !TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
      trigger->tgnargs != 3) {
    ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                    errmsg("jnx._audit_change() must fire AFTER, FOR EACH ROW, with 3 arguments")));
  }
  const char *target_type = trigger->tgargs[0];
  TupleDesc desc = RelationGetDescr(trigdata->tg_relation);
  const int id_column = ColumnNumber(desc, trigger->tgargs[1]);
  const int org_column = ColumnNumber(desc, trigger->tgargs[2]);
  if (TupleDescAttr(desc, org_column - 1)->atttypid != UUIDOID) {
    ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
                    errmsg("audit trigger org column must be a uuid: %s", trigger->tgargs[2])));
  }
  const int deleted_column = SPI_fnumber(desc, "deleted_at");

  HeapTuple target = trigdata->tg_trigtuple;  // NEW on insert, OLD on update and delete
  const char **changed = static_cast<const char **>(palloc(sizeof(char *) * (desc->natts + 1)));
  int nchanged = 0;
  const char *act = nullptr;
  bool isnull = false;

  if (TRIGGER_FIRED_BY_INSERT(trigdata->tg_event)) {
    for (int i = 0; i < desc->natts; ++i) {
      Form_pg_attribute att = TupleDescAttr(desc, i);
      if (att->attisdropped || IsBookkeeping(NameStr(att->attname))) continue;
      (void)heap_getattr(target, i + 1, desc, &isnull);
      if (!isnull) changed[nchanged++] = NameStr(att->attname);
    }
    // A row born deleted is a tombstone for an object we never saw.
    const bool born_deleted =
        deleted_column > 0 && (heap_getattr(target, deleted_column, desc, &isnull), !isnull);
    act = born_deleted ? "delete" : "create";
  } else if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event)) {
    HeapTuple old_row = trigdata->tg_trigtuple;
    HeapTuple new_row = trigdata->tg_newtuple;
    for (int i = 0; i < desc->natts; ++i) {
      Form_pg_attribute att = TupleDescAttr(desc, i);
      if (att->attisdropped || strcmp(NameStr(att->attname), "updated_at") == 0) continue;
      bool old_null = false, new_null = false;
      const Datum old_value = heap_getattr(old_row, i + 1, desc, &old_null);
      const Datum new_value = heap_getattr(new_row, i + 1, desc, &new_null);
      if (Distinct(att, old_value, old_null, new_value, new_null)) {
        changed[nchanged++] = NameStr(att->attname);
      }
    }
    if (nchanged == 0) return PointerGetDatum(nullptr);  // nothing changed: nothing to audit
    bool was_live = true, is_live = true;
    if (deleted_column > 0) {
      (void)heap_getattr(old_row, deleted_column, desc, &was_live);
      (void)heap_getattr(new_row, deleted_column, desc, &is_live);
    }
    act = was_live && !is_live ? "delete" : "update";
    target = new_row;
  } else if (TRIGGER_FIRED_BY_DELETE(trigdata->tg_event)) {
    act = "purge";
  } else {
    ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                    errmsg("jnx._audit_change() fires on INSERT, UPDATE and DELETE only")));
  }

  // {"fields": [names in byte order]}
  qsort(changed, nchanged, sizeof(char *), CompareNames);
  StringInfoData details;
  initStringInfo(&details);
  appendStringInfoString(&details, "{\"fields\": [");
  for (int i = 0; i < nchanged; ++i) {
    if (i > 0) appendStringInfoString(&details, ", ");
    escape_json(&details, changed[i]);
  }
  appendStringInfoString(&details, "]}");

  const char *actor = Setting("jnx.audit_actor");
  const char *request_id = Setting("jnx.request_id");
  char *action = psprintf("%s.%s", target_type, act);
  char *target_id = SPI_getvalue(target, desc, id_column);  // NULL when the column is NULL
  bool org_null = false;
  const Datum org = heap_getattr(target, org_column, desc, &org_null);

  Datum values[kAuditParams] = {
      CStringGetTextDatum(actor != nullptr ? actor : "system"),
      CStringGetTextDatum(action),
      CStringGetTextDatum(target_type),
      target_id != nullptr ? CStringGetTextDatum(target_id) : Datum(0),
      org,
      request_id != nullptr ? CStringGetTextDatum(request_id) : Datum(0),
      DirectFunctionCall1(jsonb_in, CStringGetDatum(details.data)),
  };
  const char nulls[kAuditParams] = {' ',
                                    ' ',
                                    ' ',
                                    target_id != nullptr ? ' ' : 'n',
                                    org_null ? 'n' : ' ',
                                    request_id != nullptr ? ' ' : 'n',
                                    ' '};

  if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "jnx._audit_change: SPI_connect failed");
  if (audit_plan == nullptr) {
    Oid types[kAuditParams] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, UUIDOID, TEXTOID, JSONBOID};
    SPIPlanPtr plan = SPI_prepare(kAuditInsert, kAuditParams, types);
    if (plan == nullptr || SPI_keepplan(plan) != 0) {
      elog(ERROR, "jnx._audit_change: cannot prepare the audit insert: %s",
           SPI_result_code_string(SPI_result));
    }
    audit_plan = plan;
  }
  const int rc = SPI_execute_plan(audit_plan, values, nulls, false, 0);
  if (rc != SPI_OK_INSERT) {
    elog(ERROR, "jnx._audit_change: audit insert failed: %s", SPI_result_code_string(rc));
  }
  if (SPI_finish() != SPI_OK_FINISH) elog(ERROR, "jnx._audit_change: SPI_finish failed");
  return PointerGetDatum(nullptr);
}
