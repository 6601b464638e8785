// Session tokens and identity: jnx.verify_session_token, jnx.authenticate,
// jnx.claims, jnx.user_id, jnx.org_id, jnx.org_role, and the JWKS check used
// by jnx.set_jwks.
//
// The identity of a transaction lives in this backend's memory, set only by
// jnx.authenticate after a token verified, and cleared when the transaction
// (or the subtransaction that set it) ends. No SQL can write it.
#include <memory>

#include "config.h"
#include "core/jwt.h"
#include "errors.h"
#include "pg.h"

extern "C" {
#include "access/xact.h"
#include "catalog/namespace.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
}

namespace jnx::pg {
namespace {

// --- configuration cache --------------------------------------------------------

// Parsed keys and policy; rebuilt when jnx.token_config changes. Plain C++
// objects of our own (bounded: at most 16 keys), never touched while
// PostgreSQL code that could ereport is running.
struct TokenConfig {
  bool configured = false;
  core::KeySet keys;
  core::TokenPolicy policy;
};
TokenConfig *token_config = nullptr;  // owned; replaced as a whole
bool token_config_valid = false;
Oid token_config_relid = InvalidOid;

void TokenRelcacheCallback(Datum /*arg*/, Oid relid) {
  if (relid == InvalidOid || relid == token_config_relid) token_config_valid = false;
}

// Builds a new configuration from the stored texts; false on a bad JWKS.
bool BuildTokenConfig(const char *jwks, const char *issuers, const char *parties, int leeway,
                      Failure *failure) noexcept {
  bool ok = false;
  Guard(failure, [&] {
    auto fresh = std::make_unique<TokenConfig>();
    auto split = [](const char *lines, std::vector<std::string> *out) {
      std::string_view rest = lines != nullptr ? lines : "";
      while (!rest.empty()) {
        const size_t nl = rest.find('\n');
        if (nl != 0) out->emplace_back(rest.substr(0, nl));
        rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
      }
    };
    split(issuers, &fresh->policy.issuers);
    split(parties, &fresh->policy.authorized_parties);
    fresh->policy.leeway_seconds = leeway;
    if (jwks != nullptr) {
      std::string detail;
      core::TokenError err = core::KeySet::Parse(jwks, &fresh->keys, &detail);
      if (err != core::TokenError::kOk) {
        SetTokenFailure(failure, err, detail.c_str());
        return;
      }
      fresh->configured = !fresh->policy.issuers.empty();
    }
    delete token_config;
    token_config = fresh.release();
    ok = true;
  });
  return ok;
}

void LoadTokenConfig() {
  Oid relid = ConfigRelid("token_config");
  token_config_relid = relid;
  token_config_valid = true;  // an invalidation during the read clears it again

  MemoryContext caller = CurrentMemoryContext;
  char *jwks = nullptr, *issuers = nullptr, *parties = nullptr;
  int leeway = 5;
  OwnerRead read = BeginOwnerRead(relid);
  int rc = SPI_execute(
      "SELECT jwks::text, array_to_string(issuers, E'\\n'), "
      "array_to_string(authorized_parties, E'\\n'), leeway_seconds FROM jnx.token_config",
      true, 1);
  if (rc != SPI_OK_SELECT) {
    ereport(ERROR, (errcode(kInternalFailure),
                    errmsg("reading jnx.token_config failed: SPI code %d", rc)));
  }
  if (SPI_processed == 1) {
    auto copy = [&](int col) -> char * {
      char *v = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col);
      return v != nullptr ? MemoryContextStrdup(caller, v) : nullptr;
    };
    jwks = copy(1);
    issuers = copy(2);
    parties = copy(3);
    char *l = copy(4);
    if (l != nullptr) leeway = pg_strtoint32(l);
  }
  EndOwnerRead(read);

  Failure failure;
  if (!BuildTokenConfig(jwks, issuers, parties, leeway, &failure)) {
    token_config_valid = false;
    RaiseFailure(failure);
  }
}

const TokenConfig &CurrentTokenConfig() {
  if (!token_config_valid || token_config == nullptr) LoadTokenConfig();
  if (!token_config->configured) {
    ereport(ERROR,
            (errcode(kTokenNotConfigured), errmsg("session tokens are not configured"),
             errhint("Call jnx.set_jwks() and jnx.set_token_policy() as the extension owner.")));
  }
  return *token_config;
}

// --- verification -----------------------------------------------------------------

struct Verified {
  char *claims = nullptr;  // palloc'd JSON text
  char *sub = nullptr;
  char *org_id = nullptr;
  char *org_role = nullptr;
};

char *CopyNoThrow(const std::string &s) noexcept {
  auto *p = static_cast<char *>(
      MemoryContextAllocExtended(CurrentMemoryContext, s.size() + 1, MCXT_ALLOC_NO_OOM));
  if (p != nullptr) {
    s.copy(p, s.size());
    p[s.size()] = '\0';
  }
  return p;
}

void VerifyWorker(std::string_view token, const TokenConfig &config, int64 now, Verified *out,
                  Failure *failure) noexcept {
  Guard(failure, [&] {
    std::string claims;
    core::TokenIdentity identity;
    core::TokenError err =
        core::VerifyToken(token, config.keys, config.policy, now, &claims, &identity);
    if (err != core::TokenError::kOk) {
      SetTokenFailure(failure, err);
      return;
    }
    out->claims = CopyNoThrow(claims);
    out->sub = CopyNoThrow(identity.sub);
    out->org_id = CopyNoThrow(identity.org_id);
    out->org_role = CopyNoThrow(identity.org_role);
    if (out->claims == nullptr || out->sub == nullptr || out->org_id == nullptr ||
        out->org_role == nullptr) {
      failure->Set(ERRCODE_OUT_OF_MEMORY, "out of memory in jnx_auth");
    }
  });
}

Verified Verify(text *token, TimestampTz now) {
  const TokenConfig &config = CurrentTokenConfig();
  Verified out;
  Failure failure;
  VerifyWorker(std::string_view(VARDATA_ANY(token), VARSIZE_ANY_EXHDR(token)), config,
               UnixSeconds(now), &out, &failure);
  if (failure.failed()) RaiseFailure(failure);
  return out;
}

Datum ClaimsJsonb(const char *claims) {
  return DirectFunctionCall1(jsonb_in, CStringGetDatum(claims));
}

// --- identity -----------------------------------------------------------------------

struct Identity {
  int nest_level = 0;
  char *claims = nullptr;  // JSON text, TopMemoryContext; NULL: not authenticated
  char *sub = nullptr;
  char *org_id = nullptr;  // empty string: no active org
  char *org_role = nullptr;
};
Identity identity;

void ClearIdentity() {
  if (identity.claims != nullptr) pfree(identity.claims);
  if (identity.sub != nullptr) pfree(identity.sub);
  if (identity.org_id != nullptr) pfree(identity.org_id);
  if (identity.org_role != nullptr) pfree(identity.org_role);
  identity = Identity();
}

void IdentityXactCallback(XactEvent event, void * /*arg*/) {
  switch (event) {
    case XACT_EVENT_COMMIT:
    case XACT_EVENT_ABORT:
    case XACT_EVENT_PARALLEL_COMMIT:
    case XACT_EVENT_PARALLEL_ABORT:
    case XACT_EVENT_PREPARE:
      if (identity.claims != nullptr) ClearIdentity();
      break;
    default: break;
  }
}

// A subtransaction that set the identity and rolls back takes it along.
void IdentitySubXactCallback(SubXactEvent event, SubTransactionId /*sub*/,
                             SubTransactionId /*parent*/, void * /*arg*/) {
  if (event == SUBXACT_EVENT_ABORT_SUB && (identity.claims != nullptr) &&
      identity.nest_level >= GetCurrentTransactionNestLevel()) {
    ClearIdentity();
  }
}

}  // namespace

void InitTokenCache() {
  CacheRegisterRelcacheCallback(TokenRelcacheCallback, PointerGetDatum(nullptr));
  RegisterXactCallback(IdentityXactCallback, nullptr);
  RegisterSubXactCallback(IdentitySubXactCallback, nullptr);
}

}  // namespace jnx::pg

using jnx::pg::Failure;

// jnx.verify_session_token(token text, now timestamptz DEFAULT now()) -> jsonb
JNX_FUNCTION(jnx_verify_session_token) {
  if (PG_ARGISNULL(0)) {
    ereport(ERROR, (errcode(jnx::pg::kTokenMalformed), errmsg("session token is malformed"),
                    errdetail("The token is missing.")));
  }
  if (PG_ARGISNULL(1)) {
    ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("now is NULL")));
  }
  jnx::pg::Verified v = jnx::pg::Verify(PG_GETARG_TEXT_PP(0), PG_GETARG_TIMESTAMPTZ(1));
  PG_RETURN_DATUM(jnx::pg::ClaimsJsonb(v.claims));
}

// jnx.authenticate(token text) -> jsonb: the identity of this transaction.
JNX_FUNCTION(jnx_authenticate) {
  if (PG_ARGISNULL(0)) {
    ereport(ERROR, (errcode(jnx::pg::kNotAuthenticated), errmsg("not authenticated"),
                    errdetail("No session token was given.")));
  }
  jnx::pg::Verified v =
      jnx::pg::Verify(PG_GETARG_TEXT_PP(0), GetCurrentTransactionStartTimestamp());
  Datum claims = jnx::pg::ClaimsJsonb(v.claims);

  // Copy everything first; claims, which marks the identity as set, last, so
  // that an allocation failure never leaves half an identity.
  jnx::pg::ClearIdentity();
  char *sub = MemoryContextStrdup(TopMemoryContext, v.sub);
  char *org_id = MemoryContextStrdup(TopMemoryContext, v.org_id);
  char *org_role = MemoryContextStrdup(TopMemoryContext, v.org_role);
  char *kept_claims = MemoryContextStrdup(TopMemoryContext, v.claims);
  jnx::pg::identity.sub = sub;
  jnx::pg::identity.org_id = org_id;
  jnx::pg::identity.org_role = org_role;
  jnx::pg::identity.nest_level = GetCurrentTransactionNestLevel();
  jnx::pg::identity.claims = kept_claims;

  // For Supabase-style policies written by others; ours never read it.
  (void)set_config_option("request.jwt.claims", v.claims, PGC_USERSET, PGC_S_SESSION,
                          GUC_ACTION_LOCAL, true, 0, false);
  PG_RETURN_DATUM(claims);
}

// jnx.claims() -> jsonb, NULL when the transaction is not authenticated.
JNX_FUNCTION(jnx_claims) {
  if (jnx::pg::identity.claims == nullptr) PG_RETURN_NULL();
  PG_RETURN_DATUM(jnx::pg::ClaimsJsonb(jnx::pg::identity.claims));
}

// jnx.user_id() -> text: the Clerk user id (sub), NULL when not authenticated.
JNX_FUNCTION(jnx_user_id) {
  if (jnx::pg::identity.claims == nullptr) PG_RETURN_NULL();
  PG_RETURN_TEXT_P(cstring_to_text(jnx::pg::identity.sub));
}

// jnx.org_id() -> text: the active Clerk organization id, NULL when none.
JNX_FUNCTION(jnx_org_id) {
  if (jnx::pg::identity.claims == nullptr || jnx::pg::identity.org_id[0] == '\0') PG_RETURN_NULL();
  PG_RETURN_TEXT_P(cstring_to_text(jnx::pg::identity.org_id));
}

// jnx.org_role() -> text: the role in the active organization ("org:admin"), NULL when none.
JNX_FUNCTION(jnx_org_role) {
  if (jnx::pg::identity.claims == nullptr || jnx::pg::identity.org_role[0] == '\0')
    PG_RETURN_NULL();
  PG_RETURN_TEXT_P(cstring_to_text(jnx::pg::identity.org_role));
}

// jnx._check_jwks(jwks jsonb) -> void: raises JX110 unless the key set is usable.
JNX_FUNCTION(jnx_check_jwks) {
  char *text = JsonbToCString(nullptr, &PG_GETARG_JSONB_P(0)->root, 0);
  Failure failure;
  jnx::pg::Guard(&failure, [&] {
    jnx::core::KeySet keys;
    std::string detail;
    jnx::core::TokenError err = jnx::core::KeySet::Parse(text, &keys, &detail);
    if (err != jnx::core::TokenError::kOk) jnx::pg::SetTokenFailure(&failure, err, detail.c_str());
  });
  if (failure.failed()) jnx::pg::RaiseFailure(failure);
  PG_RETURN_VOID();
}
