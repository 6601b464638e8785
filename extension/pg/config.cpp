#include "config.h"

#include "errors.h"
#include "pg.h"

extern "C" {
#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"
}

namespace jnx::pg {
namespace {

MemoryContext config_context = nullptr;
bool secrets_valid = false;
Oid secrets_relid = InvalidOid;
SecretKeys cached_keys;

void ConfigRelcacheCallback(Datum /*arg*/, Oid relid) {
  if (relid == InvalidOid || relid == secrets_relid) secrets_valid = false;
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
  Oid relid = ConfigRelid("webhook_secrets");
  if (config_context == nullptr) {
    config_context =
        AllocSetContextCreate(TopMemoryContext, "jnx_auth config", ALLOCSET_SMALL_SIZES);
  }
  MemoryContextReset(config_context);
  cached_keys = SecretKeys();
  secrets_relid = relid;
  // Marked valid before reading: an invalidation that arrives while we read
  // clears it again, and the next call reloads.
  secrets_valid = true;

  // Secrets are readable by the table's owner only; read them as that owner.
  OwnerRead read = BeginOwnerRead(relid);
  int rc = SPI_execute("SELECT secret FROM jnx.webhook_secrets ORDER BY position", true,
                       kMaxWebhookSecrets + 1);
  if (rc != SPI_OK_SELECT) {
    ereport(ERROR, (errcode(kInternalFailure),
                    errmsg("reading jnx.webhook_secrets failed: SPI code %d", rc)));
  }
  for (uint64 i = 0; i < SPI_processed && i < static_cast<uint64>(kMaxWebhookSecrets); ++i) {
    bool isnull = false;
    Datum d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
    if (isnull) continue;
    text *t = DatumGetTextPP(d);
    size_t len = VARSIZE_ANY_EXHDR(t);
    char *buf = static_cast<char *>(MemoryContextAlloc(config_context, len + 1));
    size_t key_len = 0;
    if (!DecodeInto(VARDATA_ANY(t), len, buf, &key_len)) {
      secrets_valid = false;
      ereport(ERROR, (errcode(kWebhookInvalidSecret), errmsg("a stored webhook secret is invalid"),
                      errhint("Set the secrets again with jnx.set_webhook_secrets().")));
    }
    cached_keys.keys[cached_keys.count++] = std::string_view(buf, key_len);
  }
  EndOwnerRead(read);
}

}  // namespace

Oid ConfigRelid(const char *name) {
  Oid relid = get_relname_relid(name, get_namespace_oid("jnx", false));
  if (!OidIsValid(relid)) {
    ereport(ERROR, (errcode(ERRCODE_UNDEFINED_TABLE), errmsg("jnx.%s does not exist", name),
                    errhint("Is the jnx_auth extension installed in this database?")));
  }
  return relid;
}

OwnerRead BeginOwnerRead(Oid relid) {
  HeapTuple tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
  if (!HeapTupleIsValid(tuple)) {
    ereport(ERROR,
            (errcode(kInternalFailure), errmsg("cache lookup failed for relation %u", relid)));
  }
  Oid owner = reinterpret_cast<Form_pg_class>(GETSTRUCT(tuple))->relowner;
  ReleaseSysCache(tuple);
  OwnerRead read;
  GetUserIdAndSecContext(&read.save_user, &read.save_sec);
  SetUserIdAndSecContext(
      owner, read.save_sec | SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
  if (SPI_connect() != SPI_OK_CONNECT) {
    ereport(ERROR, (errcode(kInternalFailure), errmsg("SPI_connect failed")));
  }
  return read;
}

void EndOwnerRead(const OwnerRead &read) {
  SPI_finish();
  SetUserIdAndSecContext(read.save_user, read.save_sec);
}

int64 UnixSeconds(TimestampTz ts) {
  if (TIMESTAMP_NOT_FINITE(ts)) {
    ereport(ERROR, (errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
                    errmsg("now must be a finite timestamp")));
  }
  // Floor division, so that instants before 1970 round the same way.
  int64 secs = ts / USECS_PER_SEC;
  if (ts % USECS_PER_SEC < 0) secs -= 1;
  return secs + static_cast<int64>(POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY;
}

void InitConfigCache() {
  CacheRegisterRelcacheCallback(ConfigRelcacheCallback, PointerGetDatum(nullptr));
}

SecretKeys CurrentWebhookKeys() {
  if (!secrets_valid) LoadSecrets();
  return cached_keys;
}

}  // namespace jnx::pg

// Statement trigger on jnx.webhook_secrets: tells every backend (at commit) and
// this one (at the next command) to drop its cached keys.
JNX_FUNCTION(jnx_config_changed) {
  if (!CALLED_AS_TRIGGER(fcinfo)) {
    ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                    errmsg("jnx_config_changed must be called as a trigger")));
  }
  auto *trigdata = reinterpret_cast<TriggerData *>(fcinfo->context);
  CacheInvalidateRelcache(trigdata->tg_relation);
  return PointerGetDatum(nullptr);
}
