// SQL entry points for webhook signatures: jnx.webhook_sign, jnx.verify_webhook
// and the secret check used by jnx.set_webhook_secrets.
#include "config.h"
#include "core/event_minimize.h"
#include "core/webhook.h"
#include "errors.h"
#include "pg.h"

extern "C" {
#include "datatype/timestamp.h"
#include "utils/timestamp.h"
}

namespace jnx::pg {
namespace {

std::string_view TextView(const text *t) {
  return std::string_view(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
}
std::string_view ByteaView(const bytea *b) {
  return std::string_view(VARDATA_ANY(b), VARSIZE_ANY_EXHDR(b));
}

// A signature is "v1," + 44 base64 characters.
constexpr size_t kSignatureBufBytes = 64;

void SignWorker(std::string_view secret, std::string_view msg_id, int64 timestamp,
                std::string_view body, char (*out)[kSignatureBufBytes], Failure *failure) noexcept {
  Guard(failure, [&] {
    std::string key;
    core::WebhookError err = core::DecodeWebhookSecret(secret, &key);
    std::string signature;
    if (err == core::WebhookError::kOk) {
      err = core::SignWebhook(key, msg_id, timestamp, body, &signature);
    }
    if (err != core::WebhookError::kOk) {
      const char *detail = err == core::WebhookError::kMalformedHeader
                               ? "msg_id must be 1 to 256 printable ASCII characters without "
                                 "spaces and msg_timestamp must not be negative."
                               : nullptr;
      SetWebhookFailure(failure, err, detail);
      return;
    }
    strlcpy(*out, signature.c_str(), kSignatureBufBytes);
  });
}

// Names the malformed part, without echoing any value.
const char *MalformedDetail(std::string_view msg_id, std::string_view timestamp) noexcept {
  int64_t ignored = 0;
  if (core::CheckWebhookMsgId(msg_id) != core::WebhookError::kOk) {
    return "svix-id must be 1 to 256 printable ASCII characters without spaces.";
  }
  if (core::ParseWebhookTimestamp(timestamp, &ignored) != core::WebhookError::kOk) {
    return "svix-timestamp must be Unix seconds written as 1 to 18 digits.";
  }
  return "svix-signature must hold space-separated \"v1,<base64>\" entries (at most 8192 bytes).";
}

void VerifyWorker(std::string_view msg_id, std::string_view timestamp, std::string_view header,
                  std::string_view body, const std::string_view *keys, int nkeys,
                  std::string_view explicit_secret, bool use_explicit, int64 now,
                  Failure *failure) noexcept {
  Guard(failure, [&] {
    std::string key;
    std::string_view one_key[1];
    const std::string_view *use_keys = keys;
    size_t use_count = static_cast<size_t>(nkeys);
    if (use_explicit) {
      core::WebhookError err = core::DecodeWebhookSecret(explicit_secret, &key);
      if (err != core::WebhookError::kOk) {
        SetWebhookFailure(failure, err);
        return;
      }
      one_key[0] = key;
      use_keys = one_key;
      use_count = 1;
    }
    core::WebhookError err =
        core::VerifyWebhook(msg_id, timestamp, header, body, use_keys, use_count, now);
    if (err != core::WebhookError::kOk) {
      SetWebhookFailure(failure, err,
                        err == core::WebhookError::kMalformedHeader
                            ? MalformedDetail(msg_id, timestamp)
                            : nullptr);
    }
  });
}

void CheckSecretWorker(std::string_view secret, Failure *failure) noexcept {
  Guard(failure, [&] {
    std::string key;
    SetWebhookFailure(failure, core::DecodeWebhookSecret(secret, &key));
  });
}

void RaiseMissing(const char *what) {
  ereport(ERROR,
          (errhidestmt(true), errcode(kWebhookMalformedHeader),
           errmsg("webhook headers are missing or malformed"), errdetail("%s is missing.", what)));
}

}  // namespace
}  // namespace jnx::pg

using jnx::pg::Failure;

// jnx.webhook_sign(secret text, msg_id text, msg_timestamp bigint, body bytea) -> text
JNX_FUNCTION(jnx_webhook_sign) {
  text *secret = PG_GETARG_TEXT_PP(0);
  text *msg_id = PG_GETARG_TEXT_PP(1);
  int64 timestamp = PG_GETARG_INT64(2);
  bytea *body = PG_GETARG_BYTEA_PP(3);
  char signature[jnx::pg::kSignatureBufBytes] = {};
  Failure failure;
  jnx::pg::SignWorker(jnx::pg::TextView(secret), jnx::pg::TextView(msg_id), timestamp,
                      jnx::pg::ByteaView(body), &signature, &failure);
  if (failure.failed()) jnx::pg::RaiseFailure(failure);
  PG_RETURN_TEXT_P(cstring_to_text(signature));
}

// jnx.verify_webhook(msg_id text, msg_timestamp text, signature_header text,
//                    body bytea, secret text DEFAULT NULL, now timestamptz DEFAULT now())
JNX_FUNCTION(jnx_verify_webhook) {
  if (PG_ARGISNULL(0)) jnx::pg::RaiseMissing("svix-id");
  if (PG_ARGISNULL(1)) jnx::pg::RaiseMissing("svix-timestamp");
  if (PG_ARGISNULL(2)) jnx::pg::RaiseMissing("svix-signature");
  if (PG_ARGISNULL(3)) {
    ereport(ERROR, (errhidestmt(true), errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                    errmsg("webhook body is NULL")));
  }
  if (PG_ARGISNULL(5)) {
    ereport(ERROR,
            (errhidestmt(true), errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("now is NULL")));
  }
  text *msg_id = PG_GETARG_TEXT_PP(0);
  text *timestamp = PG_GETARG_TEXT_PP(1);
  text *header = PG_GETARG_TEXT_PP(2);
  bytea *body = PG_GETARG_BYTEA_PP(3);
  const bool use_explicit = !PG_ARGISNULL(4);
  text *secret = use_explicit ? PG_GETARG_TEXT_PP(4) : nullptr;
  int64 now = jnx::pg::UnixSeconds(PG_GETARG_TIMESTAMPTZ(5));

  jnx::pg::SecretKeys configured;
  if (!use_explicit) configured = jnx::pg::CurrentWebhookKeys();

  Failure failure;
  jnx::pg::VerifyWorker(
      jnx::pg::TextView(msg_id), jnx::pg::TextView(timestamp), jnx::pg::TextView(header),
      jnx::pg::ByteaView(body), configured.keys, configured.count,
      use_explicit ? jnx::pg::TextView(secret) : std::string_view(), use_explicit, now, &failure);
  if (failure.failed()) jnx::pg::RaiseFailure(failure);
  PG_RETURN_VOID();
}

// jnx._check_webhook_secret(secret text) -> void: raises JX005 unless valid.
JNX_FUNCTION(jnx_check_webhook_secret) {
  text *secret = PG_GETARG_TEXT_PP(0);
  Failure failure;
  jnx::pg::CheckSecretWorker(jnx::pg::TextView(secret), &failure);
  if (failure.failed()) jnx::pg::RaiseFailure(failure);
  PG_RETURN_VOID();
}

// jnx._minimized_event(body bytea) -> bytea: the event without
// event_attributes.http_request (core/event_minimize.h), every other byte as
// sent (for a text the strict reader refuses, found by its structure alone);
// NULL when there is nothing to remove, or when not even the structure holds
// (_apply_event then asks jsonb, which reads what it can).
// The result is never longer than the body: its buffer is allocated before
// any C++ object exists, and filled inside the guard.
JNX_FUNCTION(jnx_minimized_event) {
  bytea *body = PG_GETARG_BYTEA_PP(0);
  const std::string_view event = jnx::pg::ByteaView(body);
  auto *result = static_cast<bytea *>(palloc(VARHDRSZ + event.size()));
  size_t length = 0;
  bool stripped = false;
  Failure failure;
  jnx::pg::Guard(&failure, [&] {
    std::string out;
    const jnx::core::Minimized outcome = jnx::core::MinimizeEvent(event, &out);
    if (outcome != jnx::core::Minimized::kStripped &&
        outcome != jnx::core::Minimized::kStrippedLeniently) {
      return;
    }
    if (out.size() > event.size()) return;  // cannot happen: it only removes bytes
    memcpy(VARDATA(result), out.data(), out.size());
    length = out.size();
    stripped = true;
  });
  if (failure.failed()) jnx::pg::RaiseFailure(failure);
  if (!stripped) {
    pfree(result);
    PG_RETURN_NULL();
  }
  SET_VARSIZE(result, VARHDRSZ + length);
  PG_RETURN_BYTEA_P(result);
}
