#include "errors.h"

namespace jnx::pg {

void SetWebhookFailure(Failure *failure, core::WebhookError err, const char *detail) {
  using core::WebhookError;
  switch (err) {
    case WebhookError::kOk: failure->sqlstate = 0; return;
    case WebhookError::kMalformedHeader:
      failure->Set(kWebhookMalformedHeader, "webhook headers are missing or malformed", detail);
      return;
    case WebhookError::kBadSignature:
      failure->Set(kWebhookBadSignature, "webhook signature does not match",
                   detail != nullptr ? detail : "No v1 signature matches any accepted secret.");
      return;
    case WebhookError::kTimestampTooOld:
      failure->Set(kWebhookStaleTimestamp, "webhook timestamp is too old",
                   "The timestamp is more than 300 seconds in the past.",
                   "Check the clock of the database server.");
      return;
    case WebhookError::kTimestampTooNew:
      failure->Set(kWebhookStaleTimestamp, "webhook timestamp is too new",
                   "The timestamp is more than 300 seconds in the future.",
                   "Check the clock of the database server.");
      return;
    case WebhookError::kNoSecret:
      failure->Set(kWebhookNoSecret, "no webhook secret is configured", nullptr,
                   "Call jnx.set_webhook_secrets('whsec_...') as the extension owner.");
      return;
    case WebhookError::kInvalidSecret:
      failure->Set(kWebhookInvalidSecret, "webhook secret is invalid",
                   "A secret is \"whsec_\" followed by 1 to 1024 bytes in padded base64.");
      return;
    case WebhookError::kInternal:
      failure->Set(kInternalFailure, "cryptographic library failure in jnx_auth");
      return;
  }
  failure->Set(kInternalFailure, "internal failure in jnx_auth");
}

void SetTokenFailure(Failure *failure, core::TokenError err, const char *detail) {
  using core::TokenError;
  switch (err) {
    case TokenError::kOk: failure->sqlstate = 0; return;
    case TokenError::kMalformed:
      failure->Set(kTokenMalformed, "session token is malformed",
                   "Expected a compact JWS of at most 16 KiB with JSON header and claims, a "
                   "numeric exp and a sub.");
      return;
    case TokenError::kUnknownKey:
      failure->Set(kTokenUnknownKey, "session token is signed with an unknown key",
                   "The token's kid names no key of the configured JWKS.",
                   "After a key rotation, load the new JWKS with jnx.set_jwks().");
      return;
    case TokenError::kAlgorithmNotAllowed:
      failure->Set(kTokenAlgorithm, "session token algorithm is not allowed",
                   "The key decides: RS256, RS384 or RS512 for an RSA key, ES256 for an EC P-256 "
                   "key, and only the key's own alg when it names one.");
      return;
    case TokenError::kBadSignature:
      failure->Set(kTokenBadSignature, "session token signature does not match");
      return;
    case TokenError::kExpired: failure->Set(kTokenExpired, "session token has expired"); return;
    case TokenError::kNotYetValid:
      failure->Set(kTokenNotYetValid, "session token is not yet valid",
                   "nbf or iat lies in the future beyond the leeway.",
                   "Check the clock of the database server.");
      return;
    case TokenError::kWrongIssuer:
      failure->Set(kTokenWrongIssuer, "session token issuer is not accepted",
                   "iss is missing or not among the configured issuers.");
      return;
    case TokenError::kWrongParty:
      failure->Set(kTokenWrongParty, "session token authorized party is not accepted",
                   "azp is missing or not among the configured authorized parties.");
      return;
    case TokenError::kInvalidJwks:
      failure->Set(kTokenInvalidJwks, "JWKS is invalid", detail,
                   "Keys that cannot verify tokens are ignored, but the set needs one RSA "
                   "(2048 to 8192 bits) or EC P-256 signing key with a kid.");
      return;
    case TokenError::kWrongType:
      failure->Set(kTokenWrongType, "token is not a session token",
                   "Its header typ is not \"JWT\", its header cat names another kind of token, or "
                   "its sub is a machine's (mch_).",
                   "OAuth access, M2M and JWT-template tokens cannot authenticate a session.");
      return;
    case TokenError::kInternal:
      failure->Set(kInternalFailure, "cryptographic library failure in jnx_auth");
      return;
  }
  failure->Set(kInternalFailure, "internal failure in jnx_auth");
}

// errhidestmt: the statement that failed may hold a token or a secret as a
// literal (SELECT jnx.authenticate('eyJ...')); log_min_error_statement
// would copy it into the server log.
void RaiseFailure(const Failure &failure) {
  ereport(ERROR, (errcode(failure.sqlstate), errmsg("%s", failure.message), errhidestmt(true),
                  failure.detail[0] != '\0' ? errdetail("%s", failure.detail) : 0,
                  failure.hint[0] != '\0' ? errhint("%s", failure.hint) : 0));
  pg_unreachable();
}

}  // namespace jnx::pg
