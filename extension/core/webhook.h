// Svix / Standard Webhooks signatures (HMAC-SHA256), as Clerk delivers them.
//
// Signed content is "<msg_id>.<timestamp>.<raw body>", the timestamp written
// as its canonical decimal integer. The signature header holds space-separated
// "version,base64" entries; only "v1" entries are compared (exactly, as the
// reference libraries compare the base64 strings) and any match accepts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace jnx::core {

enum class WebhookError {
  kOk = 0,
  kMalformedHeader,  // missing/empty id, timestamp or signature header, or bad syntax
  kBadSignature,     // no v1 entry matches any secret
  kTimestampTooOld,  // more than the tolerance in the past
  kTimestampTooNew,  // more than the tolerance in the future
  kNoSecret,         // no secret configured
  kInvalidSecret,    // empty, undecodable or oversized secret
  kInternal,         // the crypto library failed (out of memory)
};

// Stable lower-case name of an error, for logs and messages. Never null.
const char *WebhookErrorName(WebhookError err);

inline constexpr int64_t kWebhookToleranceSeconds = 300;
inline constexpr size_t kMaxSecretBytes = 1024;  // decoded key
inline constexpr size_t kMaxMsgIdBytes = 256;
inline constexpr size_t kMaxSignatureHeaderBytes = 8192;

// Decodes "whsec_<base64>" (the prefix is optional) into the raw HMAC key.
WebhookError DecodeWebhookSecret(std::string_view secret, std::string *key);

// Parses a Unix-seconds timestamp: 1 to 18 ASCII digits, nothing else.
WebhookError ParseWebhookTimestamp(std::string_view text, int64_t *seconds);

// Checks that a message id is 1..kMaxMsgIdBytes printable ASCII without spaces.
WebhookError CheckWebhookMsgId(std::string_view msg_id);

// "v1,<base64 HMAC-SHA256>" over the signed content, with a decoded key.
WebhookError SignWebhook(std::string_view key, std::string_view msg_id, int64_t timestamp,
                         std::string_view body, std::string *signature);

// Verifies a delivery against any of `nkeys` decoded keys at Unix time `now`.
// Checks, in order: syntax of id, timestamp and header; the timestamp window;
// the signatures (constant-time comparison).
WebhookError VerifyWebhook(std::string_view msg_id, std::string_view timestamp,
                           std::string_view signature_header, std::string_view body,
                           const std::string_view *keys, size_t nkeys, int64_t now,
                           int64_t tolerance = kWebhookToleranceSeconds);

}  // namespace jnx::core
