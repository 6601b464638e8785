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

void RaiseFailure(const Failure &failure) {
  ereport(ERROR, (errcode(failure.sqlstate), errmsg("%s", failure.message),
                  failure.detail[0] != '\0' ? errdetail("%s", failure.detail) : 0,
                  failure.hint[0] != '\0' ? errhint("%s", failure.hint) : 0));
  pg_unreachable();
}

}  // namespace jnx::pg
