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
#include "core/token_cache.h"
#include "errors.h"
#include "pg.h"

extern "C" {
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/guc.h"
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
// PostgreSQL code that could ereport is running. The verified-token cache
// lives here: a new configuration (keys, issuers, parties, leeway) starts
// with an empty one, and entries also carry the generation they were
// verified under.
struct TokenConfig {
  bool configured = false;
  core::KeySet keys;
  core::TokenPolicy policy;
  core::TokenCache verified;
};
TokenConfig *token_config = nullptr;  // owned; replaced as a whole
TableCache token_cache = {"token_config", InvalidOid, 1, 0};

// What the scan copies out of the row (palloc'd in the caller's context).
struct TokenRow {
  bool found;
  char *jwks;  // NULL: no key set yet
  int nissuers;
  char **issuers;
  int nparties;
  char **parties;
  int32 leeway;
};

void TextArray(Datum value, int *count, char ***out) {
  Datum *elems = nullptr;
  bool *nulls = nullptr;
  int n = 0;
  deconstruct_array(DatumGetArrayTypeP(value), TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls,
                    &n);
  *out = static_cast<char **>(palloc0(sizeof(char *) * (n + 1)));
  *count = 0;
  for (int i = 0; i < n; ++i) {
    if (!nulls[i]) (*out)[(*count)++] = TextDatumGetCString(elems[i]);
  }
}

void CollectTokenRow(const Datum *values, const bool *isnull, void *arg) {
  auto *row = static_cast<TokenRow *>(arg);
  row->found = true;
  if (!isnull[0]) {
    Jsonb *jwks = DatumGetJsonbP(values[0]);
    row->jwks = JsonbToCString(nullptr, &jwks->root, VARSIZE(jwks));
  }
  if (!isnull[1]) TextArray(values[1], &row->nissuers, &row->issuers);
  if (!isnull[2]) TextArray(values[2], &row->nparties, &row->parties);
  if (!isnull[3]) row->leeway = DatumGetInt32(values[3]);
}

// Builds a new configuration from the stored row and swaps it in; false on a
// bad JWKS (the old one stays, the cache stays invalid).
bool BuildTokenConfig(const TokenRow &row, Failure *failure) noexcept {
  bool ok = false;
  Guard(failure, [&] {
    auto fresh = std::make_unique<TokenConfig>();
    for (int i = 0; i < row.nissuers; ++i) fresh->policy.issuers.emplace_back(row.issuers[i]);
    for (int i = 0; i < row.nparties; ++i)
      fresh->policy.authorized_parties.emplace_back(row.parties[i]);
    fresh->policy.leeway_seconds = row.leeway;
    if (row.jwks != nullptr) {
      std::string detail;
      core::TokenError err = core::KeySet::Parse(row.jwks, &fresh->keys, &detail);
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
  static const ConfigColumn kColumns[] = {{"jwks", JSONBOID},
                                          {"issuers", TEXTARRAYOID},
                                          {"authorized_parties", TEXTARRAYOID},
                                          {"leeway_seconds", INT4OID}};
  TokenRow row = {};
  row.leeway = 5;
  const LoadTicket ticket = ScanConfigTable(&token_cache, kColumns, 4, CollectTokenRow, &row);
  Failure failure;
  if (!BuildTokenConfig(row, &failure)) RaiseFailure(failure);
  MarkLoaded(&token_cache, ticket);
}

TokenConfig &CurrentTokenConfig() {
  if (!CacheIsCurrent(token_cache) || token_config == nullptr) LoadTokenConfig();
  if (!token_config->configured) {
    ereport(ERROR,
            (errhidestmt(true), errcode(kTokenNotConfigured),
             errmsg("session tokens are not configured"),
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
  Jsonb *claims_jsonb = nullptr;  // palloc'd copy of the cached jsonb; NULL: parse claims
  uint64 generation = 0;          // the configuration it was verified under
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

void CopyOut(const std::string &claims, const core::TokenIdentity &identity, Verified *out,
             Failure *failure) noexcept {
  out->claims = CopyNoThrow(claims);
  out->sub = CopyNoThrow(identity.sub);
  out->org_id = CopyNoThrow(identity.org_id);
  out->org_role = CopyNoThrow(identity.org_role);
  if (out->claims == nullptr || out->sub == nullptr || out->org_id == nullptr ||
      out->org_role == nullptr) {
    failure->Set(ERRCODE_OUT_OF_MEMORY, "out of memory in jnx_auth");
  }
}

// A token this backend verified under the same configuration, whose time
// claims still hold, is answered from the cache (core/token_cache.h).
void VerifyWorker(std::string_view token, TokenConfig &config, uint64 generation, int64 now,
                  Verified *out, Failure *failure) noexcept {
  Guard(failure, [&] {
    out->generation = generation;
    if (const core::CachedToken *hit =
            config.verified.Find(token, generation, now, config.policy.leeway_seconds)) {
      CopyOut(hit->claims, hit->identity, out, failure);
      if (!hit->image.empty()) {
        void *image =
            MemoryContextAllocExtended(CurrentMemoryContext, hit->image.size(), MCXT_ALLOC_NO_OOM);
        if (image == nullptr) {
          failure->Set(ERRCODE_OUT_OF_MEMORY, "out of memory in jnx_auth");
          return;
        }
        hit->image.copy(static_cast<char *>(image), hit->image.size());
        out->claims_jsonb = static_cast<Jsonb *>(image);
      }
      return;
    }
    std::string claims;
    core::TokenIdentity identity;
    core::TokenError err =
        core::VerifyToken(token, config.keys, config.policy, now, &claims, &identity);
    if (err != core::TokenError::kOk) {
      SetTokenFailure(failure, err);
      return;
    }
    CopyOut(claims, identity, out, failure);
    if (!failure->failed()) {
      config.verified.Insert(token, generation, std::move(claims), std::move(identity));
    }
  });
}

Verified Verify(text *token, TimestampTz now) {
  TokenConfig &config = CurrentTokenConfig();
  Verified out;
  Failure failure;
  VerifyWorker(std::string_view(VARDATA_ANY(token), VARSIZE_ANY_EXHDR(token)), config,
               token_cache.loaded, UnixSeconds(now), &out, &failure);
  if (failure.failed()) RaiseFailure(failure);
  return out;
}

Datum ClaimsJsonb(const char *claims) {
  return DirectFunctionCall1(jsonb_in, CStringGetDatum(claims));
}

// The claims of a verified token as jsonb. Parsed once per cache entry: the
// jsonb image is kept with the entry (if it is still there, under the same
// configuration), and a hit returns a copy of it. Keeping it is an
// optimization only: when that fails (out of memory), the call still answers.
Datum VerifiedClaims(text *token, const Verified &v) {
  if (v.claims_jsonb != nullptr) return PointerGetDatum(v.claims_jsonb);
  const Datum claims = ClaimsJsonb(v.claims);
  const Jsonb *jsonb = DatumGetJsonbP(claims);
  Failure ignored;
  Guard(&ignored, [&] {
    if (token_config == nullptr || token_cache.loaded != v.generation) return;
    token_config->verified.SetImage(
        std::string_view(VARDATA_ANY(token), VARSIZE_ANY_EXHDR(token)), v.generation,
        std::string(reinterpret_cast<const char *>(jsonb), VARSIZE(jsonb)));
  });
  return claims;
}

// --- identity -----------------------------------------------------------------------

// The identity follows the rules of a SET LOCAL setting: set in a
// subtransaction, it is handed to the parent when that subtransaction commits
// and gives way to the parent's identity when it rolls back; the transaction's
// end clears it. Hence a stack, one entry per nesting level that set one.
struct Identity {
  int nest_level;
  char *claims;  // JSON text
  char *sub;
  char *org_id;    // empty string: no active org
  char *org_role;  // empty string: none
  Identity *outer;
};
Identity *identity = nullptr;              // innermost; NULL: not authenticated
MemoryContext identity_context = nullptr;  // entries live here, freed one by one

void FreeIdentity(Identity *entry) {
  pfree(entry->claims);
  pfree(entry->sub);
  pfree(entry->org_id);
  pfree(entry->org_role);
  pfree(entry);
}

void PopIdentity() {
  Identity *top = identity;
  identity = top->outer;
  FreeIdentity(top);
}

void IdentityXactCallback(XactEvent event, void * /*arg*/) {
  switch (event) {
    case XACT_EVENT_COMMIT:
    case XACT_EVENT_ABORT:
    case XACT_EVENT_PARALLEL_COMMIT:
    case XACT_EVENT_PARALLEL_ABORT:
    case XACT_EVENT_PREPARE:
      while (identity != nullptr) PopIdentity();
      break;
    default: break;
  }
}

void IdentitySubXactCallback(SubXactEvent event, SubTransactionId /*sub*/,
                             SubTransactionId /*parent*/, void * /*arg*/) {
  const int level = GetCurrentTransactionNestLevel();  // the ending subtransaction's
  if (event == SUBXACT_EVENT_ABORT_SUB) {
    while (identity != nullptr && identity->nest_level >= level) PopIdentity();
  } else if (event == SUBXACT_EVENT_COMMIT_SUB && identity != nullptr &&
             identity->nest_level >= level) {
    // The parent keeps it, replacing what the parent itself had set.
    if (identity->outer != nullptr && identity->outer->nest_level == level - 1) {
      Identity *replaced = identity->outer;
      identity->outer = replaced->outer;
      FreeIdentity(replaced);
    }
    identity->nest_level = level - 1;
  }
}

// Makes a verified token the identity at the current nesting level. Every
// allocation happens before the stack changes, so an out-of-memory error
// leaves the previous identity in place.
void PushIdentity(const Verified &v) {
  const int level = GetCurrentTransactionNestLevel();
  if (identity_context == nullptr) {
    identity_context =
        AllocSetContextCreate(TopMemoryContext, "jnx_auth identity", ALLOCSET_SMALL_SIZES);
  }
  auto *entry = static_cast<Identity *>(MemoryContextAllocZero(identity_context, sizeof(Identity)));
  entry->claims = MemoryContextStrdup(identity_context, v.claims);
  entry->sub = MemoryContextStrdup(identity_context, v.sub);
  entry->org_id = MemoryContextStrdup(identity_context, v.org_id);
  entry->org_role = MemoryContextStrdup(identity_context, v.org_role);
  entry->nest_level = level;
  if (identity != nullptr && identity->nest_level == level) {
    entry->outer = identity->outer;
    FreeIdentity(identity);
  } else {
    entry->outer = identity;
  }
  identity = entry;
}

}  // namespace

void InitTokenCache() {
  RegisterTableCache(&token_cache);
  RegisterXactCallback(IdentityXactCallback, nullptr);
  RegisterSubXactCallback(IdentitySubXactCallback, nullptr);
}

}  // namespace jnx::pg

using jnx::pg::Failure;

// jnx.verify_session_token(token text, now timestamptz DEFAULT now()) -> jsonb
JNX_FUNCTION(jnx_verify_session_token) {
  if (PG_ARGISNULL(0)) {
    ereport(ERROR, (errhidestmt(true), errcode(jnx::pg::kTokenMalformed),
                    errmsg("session token is malformed"), errdetail("The token is missing.")));
  }
  if (PG_ARGISNULL(1)) {
    ereport(ERROR,
            (errhidestmt(true), errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("now is NULL")));
  }
  text *token = PG_GETARG_TEXT_PP(0);
  jnx::pg::Verified v = jnx::pg::Verify(token, PG_GETARG_TIMESTAMPTZ(1));
  PG_RETURN_DATUM(jnx::pg::VerifiedClaims(token, v));
}

// jnx.authenticate(token text) -> jsonb: the identity of this transaction.
JNX_FUNCTION(jnx_authenticate) {
  if (PG_ARGISNULL(0)) {
    ereport(ERROR, (errhidestmt(true), errcode(jnx::pg::kNotAuthenticated),
                    errmsg("not authenticated"), errdetail("No session token was given.")));
  }
  text *token = PG_GETARG_TEXT_PP(0);
  jnx::pg::Verified v = jnx::pg::Verify(token, GetCurrentTransactionStartTimestamp());
  Datum claims = jnx::pg::VerifiedClaims(token, v);

  jnx::pg::PushIdentity(v);

  // For Supabase-style policies written by others; ours never read it.
  (void)set_config_option("request.jwt.claims", v.claims, PGC_USERSET, PGC_S_SESSION,
                          GUC_ACTION_LOCAL, true, 0, false);
  PG_RETURN_DATUM(claims);
}

// jnx.claims() -> jsonb, NULL when the transaction is not authenticated.
JNX_FUNCTION(jnx_claims) {
  if (jnx::pg::identity == nullptr) PG_RETURN_NULL();
  PG_RETURN_DATUM(jnx::pg::ClaimsJsonb(jnx::pg::identity->claims));
}

// jnx.user_id() -> text: the Clerk user id (sub), NULL when not authenticated.
JNX_FUNCTION(jnx_user_id) {
  if (jnx::pg::identity == nullptr) PG_RETURN_NULL();
  PG_RETURN_TEXT_P(cstring_to_text(jnx::pg::identity->sub));
}

// jnx.org_id() -> text: the active Clerk organization id, NULL when none.
JNX_FUNCTION(jnx_org_id) {
  if (jnx::pg::identity == nullptr || jnx::pg::identity->org_id[0] == '\0') PG_RETURN_NULL();
  PG_RETURN_TEXT_P(cstring_to_text(jnx::pg::identity->org_id));
}

// jnx.org_role() -> text: the role in the active organization ("org:admin"), NULL when none.
JNX_FUNCTION(jnx_org_role) {
  if (jnx::pg::identity == nullptr || jnx::pg::identity->org_role[0] == '\0') PG_RETURN_NULL();
  PG_RETURN_TEXT_P(cstring_to_text(jnx::pg::identity->org_role));
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
