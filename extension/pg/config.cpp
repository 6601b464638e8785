#include "config.h"

#include <string>
#include <utility>

#include "errors.h"
#include "pg.h"

extern "C" {
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/parallel.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
}

namespace jnx::pg {
namespace {

constexpr int kMaxCaches = 4;
constexpr int kMaxColumns = 8;
TableCache *caches[kMaxCaches];
int ncaches = 0;

// Also called with InvalidOid ("everything may have changed", after a cache
// reset); runs inside invalidation processing, so it only bumps counters.
void ConfigRelcacheCallback(Datum /*arg*/, Oid relid) {
  for (int i = 0; i < ncaches; ++i) {
    if (relid == InvalidOid || relid == caches[i]->relid) ++caches[i]->generation;
  }
}

// --- webhook secrets ------------------------------------------------------------

TableCache secrets_cache = {"webhook_secrets", InvalidOid, 1, 0};
MemoryContext secrets_context = nullptr;  // holds the keys cached_keys points into
SecretKeys cached_keys;

struct SecretRows {
  int count;
  bool overflow;
  int32 position[kMaxWebhookSecrets];
  text *secret[kMaxWebhookSecrets];
};

void CollectSecret(const Datum *values, const bool *isnull, void *arg) {
  auto *rows = static_cast<SecretRows *>(arg);
  if (isnull[0] || isnull[1]) return;  // both columns are NOT NULL
  if (rows->count == kMaxWebhookSecrets) {
    rows->overflow = true;
    return;
  }
  rows->position[rows->count] = DatumGetInt32(values[0]);
  rows->secret[rows->count] = DatumGetTextPCopy(values[1]);  // the tuple is only lent to us
  ++rows->count;
}

// Decodes one stored secret into `out` (at least secret_len bytes).
bool DecodeInto(const char *secret, size_t secret_len, char *out, size_t *out_len) noexcept {
  bool ok = false;
  Failure ignored;
  Guard(&ignored, [&] {
    std::string key;
    if (core::DecodeWebhookSecret(std::string_view(secret, secret_len), &key) ==
            core::WebhookError::kOk &&
        key.size() <= secret_len) {
      key.copy(out, key.size());
      *out_len = key.size();
      ok = true;
    }
  });
  return ok;
}

void LoadSecrets() {
  static const ConfigColumn kColumns[] = {{"position", INT4OID}, {"secret", TEXTOID}};
  SecretRows rows = {};
  const LoadTicket ticket = ScanConfigTable(&secrets_cache, kColumns, 2, CollectSecret, &rows);
  if (rows.overflow) {
    ereport(ERROR, (errhidestmt(true), errcode(kWebhookInvalidSecret),
                    errmsg("more than 16 webhook secrets are stored"),
                    errhint("Set the secrets again with jnx.set_webhook_secrets().")));
  }
  // By position, the order jnx.set_webhook_secrets() was given them in.
  for (int i = 1; i < rows.count; ++i) {
    for (int j = i; j > 0 && rows.position[j - 1] > rows.position[j]; --j) {
      std::swap(rows.position[j - 1], rows.position[j]);
      std::swap(rows.secret[j - 1], rows.secret[j]);
    }
  }
  // Built under the transaction, so that an error frees it; kept only once complete.
  MemoryContext fresh =
      AllocSetContextCreate(CurTransactionContext, "jnx_auth webhook keys", ALLOCSET_SMALL_SIZES);
  SecretKeys keys;
  for (int i = 0; i < rows.count; ++i) {
    const size_t len = VARSIZE_ANY_EXHDR(rows.secret[i]);
    char *buf = static_cast<char *>(MemoryContextAlloc(fresh, len + 1));
    size_t key_len = 0;
    if (!DecodeInto(VARDATA_ANY(rows.secret[i]), len, buf, &key_len)) {
      ereport(ERROR, (errhidestmt(true), errcode(kWebhookInvalidSecret),
                      errmsg("a stored webhook secret is invalid"),
                      errhint("Set the secrets again with jnx.set_webhook_secrets().")));
    }
    keys.keys[keys.count++] = std::string_view(buf, key_len);
  }
  MemoryContextSetParent(fresh, TopMemoryContext);
  if (secrets_context != nullptr) MemoryContextDelete(secrets_context);
  secrets_context = fresh;
  cached_keys = keys;
  MarkLoaded(&secrets_cache, ticket);
}

}  // namespace

void RegisterTableCache(TableCache *cache) {
  if (ncaches == kMaxCaches) {
    ereport(ERROR, (errcode(kInternalFailure), errmsg("too many jnx_auth caches")));
  }
  caches[ncaches++] = cache;
}

void InitConfigCache() {
  RegisterTableCache(&secrets_cache);
  CacheRegisterRelcacheCallback(ConfigRelcacheCallback, PointerGetDatum(nullptr));
}

LoadTicket ScanConfigTable(TableCache *cache, const ConfigColumn *columns, int ncolumns,
                           void (*row)(const Datum *values, const bool *isnull, void *arg),
                           void *arg) {
  Assert(ncolumns <= kMaxColumns);
  // A parallel query's leader may not take a new snapshot, and the
  // statement's own can be older than the change that made this reload
  // necessary (a REPEATABLE READ transaction's is): reading with it would
  // accept a key or secret removed since. The functions that get here are
  // PARALLEL UNSAFE; a caller mislabeled otherwise gets an error.
  if (IsInParallelMode()) {
    ereport(ERROR,
            (errhidestmt(true), errcode(kConfigInParallelMode),
             errmsg("jnx.%s changed and cannot be read again in parallel mode", cache->table),
             errhint("Call the verification outside a parallel query (it is PARALLEL UNSAFE).")));
  }
  const Oid nsp = get_namespace_oid("jnx", true);
  const Oid relid = OidIsValid(nsp) ? get_relname_relid(cache->table, nsp) : InvalidOid;
  if (!OidIsValid(relid)) {
    ereport(ERROR, (errhidestmt(true), errcode(ERRCODE_UNDEFINED_TABLE),
                    errmsg("jnx.%s does not exist", cache->table),
                    errhint("Is the jnx_auth extension installed in this database?")));
  }
  // Taking the lock processes the invalidations sent so far; the generation
  // is read after it and the snapshot taken after that, so the rows read are
  // at least as new as every change this backend has been told about.
  Relation rel = table_open(relid, AccessShareLock);
  cache->relid = relid;
  const LoadTicket ticket = {cache->generation};

  TupleDesc desc = RelationGetDescr(rel);
  AttrNumber attnums[kMaxColumns];
  for (int c = 0; c < ncolumns; ++c) {
    attnums[c] = InvalidAttrNumber;
    for (int a = 0; a < desc->natts; ++a) {
      Form_pg_attribute att = TupleDescAttr(desc, a);
      if (!att->attisdropped && strcmp(NameStr(att->attname), columns[c].name) == 0 &&
          att->atttypid == columns[c].type) {
        attnums[c] = att->attnum;
      }
    }
    if (attnums[c] == InvalidAttrNumber) {
      ereport(ERROR, (errhidestmt(true), errcode(kInternalFailure),
                      errmsg("jnx.%s.%s is missing or has an unexpected type", cache->table,
                             columns[c].name),
                      errhint("Reinstall or update the jnx_auth extension.")));
    }
  }

  Snapshot snapshot = RegisterSnapshot(GetLatestSnapshot());
  TableScanDesc scan = table_beginscan(rel, snapshot, 0, nullptr);
  Datum values[kMaxColumns];
  bool isnull[kMaxColumns];
  for (HeapTuple tuple; (tuple = heap_getnext(scan, ForwardScanDirection)) != nullptr;) {
    for (int c = 0; c < ncolumns; ++c)
      values[c] = heap_getattr(tuple, attnums[c], desc, &isnull[c]);
    row(values, isnull, arg);
  }
  table_endscan(scan);
  UnregisterSnapshot(snapshot);
  table_close(rel, AccessShareLock);
  return ticket;
}

bool CacheIsCurrent(const TableCache &cache) {
  AcceptInvalidationMessages();
  return cache.valid();
}

int64 UnixSeconds(TimestampTz ts) {
  if (TIMESTAMP_NOT_FINITE(ts)) {
    ereport(ERROR, (errhidestmt(true), errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
                    errmsg("now must be a finite timestamp")));
  }
  // Floor division, so that instants before 1970 round the same way.
  int64 secs = ts / USECS_PER_SEC;
  if (ts % USECS_PER_SEC < 0) secs -= 1;
  return secs + static_cast<int64>(POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY;
}

SecretKeys CurrentWebhookKeys() {
  if (!CacheIsCurrent(secrets_cache)) LoadSecrets();
  return cached_keys;
}

}  // namespace jnx::pg

// Statement trigger on the configuration tables: tells every backend (at
// commit) and this one (at the next command) that the table changed.
JNX_FUNCTION(jnx_config_changed) {
  if (!CALLED_AS_TRIGGER(fcinfo)) {
    ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                    errmsg("jnx_config_changed must be called as a trigger")));
  }
  auto *trigdata = reinterpret_cast<TriggerData *>(fcinfo->context);
  CacheInvalidateRelcache(trigdata->tg_relation);
  return PointerGetDatum(nullptr);
}
