#include "webhook.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <array>
#include <charconv>

#include "base64.h"
#include "no_postgres.h"

namespace jnx::core {
namespace {

constexpr std::string_view kSecretPrefix = "whsec_";
constexpr size_t kDigestBytes = 32;
constexpr size_t kSignatureB64Bytes = 44;  // base64 of 32 bytes, padded

// One HMAC context per thread, reused: fetching the algorithm, setting the
// digest and deriving the key pads on every call would cost more than hashing
// a typical 3 KB body. The context stays keyed with the last key used, so a
// backend verifying against one configured secret re-derives nothing.
class HmacSha256 {
 public:
  HmacSha256() {
    mac_ = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    if (mac_ == nullptr) return;
    ctx_ = EVP_MAC_CTX_new(mac_);
    char digest_name[] = "SHA256";
    const OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest_name, 0),
        OSSL_PARAM_construct_end()};
    if (ctx_ != nullptr && EVP_MAC_CTX_set_params(ctx_, params) != 1) {
      EVP_MAC_CTX_free(ctx_);
      ctx_ = nullptr;
    }
  }
  ~HmacSha256() {
    OPENSSL_cleanse(key_.data(), key_.size());
    EVP_MAC_CTX_free(ctx_);
    EVP_MAC_free(mac_);
  }
  HmacSha256(const HmacSha256 &) = delete;
  HmacSha256 &operator=(const HmacSha256 &) = delete;

  // HMAC-SHA256(key, prefix || body) into out; false on failure.
  bool Digest(std::string_view key, std::string_view prefix, std::string_view body,
              std::array<unsigned char, kDigestBytes> *out) {
    if (ctx_ == nullptr || key.empty()) return false;
    if (!keyed_ || key.size() != key_.size() ||
        CRYPTO_memcmp(key.data(), key_.data(), key.size()) != 0) {
      keyed_ = false;
      OPENSSL_cleanse(key_.data(), key_.size());
      key_.assign(key.data(), key.size());
      const auto *k = reinterpret_cast<const unsigned char *>(key.data());
      if (EVP_MAC_init(ctx_, k, key.size(), nullptr) != 1) return false;
      keyed_ = true;
    } else if (EVP_MAC_init(ctx_, nullptr, 0, nullptr) != 1) {  // same key: reuse its pads
      keyed_ = false;
      return false;
    }
    if (!Update(prefix) || !Update(body)) return false;
    size_t len = 0;
    return EVP_MAC_final(ctx_, out->data(), &len, out->size()) == 1 && len == kDigestBytes;
  }

 private:
  bool Update(std::string_view s) {
    return EVP_MAC_update(ctx_, reinterpret_cast<const unsigned char *>(s.data()), s.size()) == 1;
  }
  EVP_MAC *mac_ = nullptr;
  EVP_MAC_CTX *ctx_ = nullptr;
  std::string key_;  // the key ctx_ is initialised with, when keyed_
  bool keyed_ = false;
};

HmacSha256 &ThreadHmac() {
  thread_local HmacSha256 hmac;
  return hmac;
}

// The base64 of HMAC-SHA256(key, "<msg_id>.<ts>.<body>"), into out (no NUL).
// msg_id and canonical_ts are already bounded (kMaxMsgIdBytes, 19 digits).
WebhookError ComputeSignatureB64(std::string_view key, std::string_view msg_id,
                                 std::string_view canonical_ts, std::string_view body,
                                 std::array<char, kSignatureB64Bytes> *out) {
  std::array<char, kMaxMsgIdBytes + 24> prefix{};
  if (msg_id.size() + canonical_ts.size() + 2 > prefix.size())
    return WebhookError::kMalformedHeader;
  size_t n = msg_id.copy(prefix.data(), msg_id.size());
  prefix[n++] = '.';
  n += canonical_ts.copy(prefix.data() + n, canonical_ts.size());
  prefix[n++] = '.';
  std::array<unsigned char, kDigestBytes> digest{};
  if (!ThreadHmac().Digest(key, std::string_view(prefix.data(), n), body, &digest)) {
    return WebhookError::kInternal;
  }
  Base64EncodeTo(std::string_view(reinterpret_cast<const char *>(digest.data()), digest.size()),
                 out->data());
  OPENSSL_cleanse(digest.data(), digest.size());
  return WebhookError::kOk;
}

}  // namespace

const char *WebhookErrorName(WebhookError err) {
  switch (err) {
    case WebhookError::kOk: return "ok";
    case WebhookError::kMalformedHeader: return "malformed_header";
    case WebhookError::kBadSignature: return "bad_signature";
    case WebhookError::kTimestampTooOld: return "timestamp_too_old";
    case WebhookError::kTimestampTooNew: return "timestamp_too_new";
    case WebhookError::kNoSecret: return "no_secret";
    case WebhookError::kInvalidSecret: return "invalid_secret";
    case WebhookError::kInternal: return "internal";
  }
  return "unknown";
}

WebhookError DecodeWebhookSecret(std::string_view secret, std::string *key) {
  if (secret.substr(0, kSecretPrefix.size()) == kSecretPrefix) {
    secret.remove_prefix(kSecretPrefix.size());
  }
  std::string decoded;
  if (secret.empty() || secret.size() > (kMaxSecretBytes / 3 + 1) * 4 ||
      !Base64Decode(secret, &decoded) || decoded.empty()) {
    return WebhookError::kInvalidSecret;
  }
  *key = std::move(decoded);
  return WebhookError::kOk;
}

WebhookError ParseWebhookTimestamp(std::string_view text, int64_t *seconds) {
  if (text.empty() || text.size() > 18) return WebhookError::kMalformedHeader;
  for (char c : text) {
    if (c < '0' || c > '9') return WebhookError::kMalformedHeader;
  }
  int64_t value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size()) return WebhookError::kMalformedHeader;
  *seconds = value;
  return WebhookError::kOk;
}

WebhookError CheckWebhookMsgId(std::string_view msg_id) {
  if (msg_id.empty() || msg_id.size() > kMaxMsgIdBytes) return WebhookError::kMalformedHeader;
  for (char c : msg_id) {
    if (c <= ' ' || c > '~') return WebhookError::kMalformedHeader;
  }
  return WebhookError::kOk;
}

WebhookError SignWebhook(std::string_view key, std::string_view msg_id, int64_t timestamp,
                         std::string_view body, std::string *signature) {
  if (key.empty() || key.size() > kMaxSecretBytes) return WebhookError::kInvalidSecret;
  if (WebhookError e = CheckWebhookMsgId(msg_id); e != WebhookError::kOk) return e;
  if (timestamp < 0) return WebhookError::kMalformedHeader;
  const std::string ts = std::to_string(timestamp);
  std::array<char, kSignatureB64Bytes> b64{};
  if (WebhookError e = ComputeSignatureB64(key, msg_id, ts, body, &b64); e != WebhookError::kOk) {
    return e;
  }
  *signature = "v1," + std::string(b64.data(), b64.size());
  return WebhookError::kOk;
}

WebhookError VerifyWebhook(std::string_view msg_id, std::string_view timestamp,
                           std::string_view signature_header, std::string_view body,
                           const std::string_view *keys, size_t nkeys, int64_t now,
                           int64_t tolerance) {
  if (WebhookError e = CheckWebhookMsgId(msg_id); e != WebhookError::kOk) return e;
  int64_t ts = 0;
  if (WebhookError e = ParseWebhookTimestamp(timestamp, &ts); e != WebhookError::kOk) return e;
  if (signature_header.empty() || signature_header.size() > kMaxSignatureHeaderBytes ||
      signature_header.find(',') == std::string_view::npos) {
    return WebhookError::kMalformedHeader;
  }
  if (now - ts > tolerance) return WebhookError::kTimestampTooOld;
  if (ts - now > tolerance) return WebhookError::kTimestampTooNew;
  if (nkeys == 0) return WebhookError::kNoSecret;

  // Signed as the parsed integer, like the reference libraries.
  char ts_buf[24];
  auto [end, ec] = std::to_chars(ts_buf, ts_buf + sizeof ts_buf, ts);
  if (ec != std::errc()) return WebhookError::kMalformedHeader;
  const std::string_view canonical_ts(ts_buf, static_cast<size_t>(end - ts_buf));

  bool matched = false;
  std::array<char, kSignatureB64Bytes> expected{};
  for (size_t k = 0; k < nkeys; ++k) {
    if (keys[k].empty()) return WebhookError::kInvalidSecret;
    if (WebhookError e = ComputeSignatureB64(keys[k], msg_id, canonical_ts, body, &expected);
        e != WebhookError::kOk) {
      return e;
    }
    // Walk every entry without stopping early: the work done does not depend
    // on which entry (if any) matches.
    std::string_view rest = signature_header;
    while (!rest.empty()) {
      const size_t space = rest.find(' ');
      const std::string_view entry = rest.substr(0, space);
      rest = space == std::string_view::npos ? std::string_view() : rest.substr(space + 1);
      const size_t comma = entry.find(',');
      if (comma == std::string_view::npos || entry.substr(0, comma) != "v1") continue;
      const std::string_view given = entry.substr(comma + 1);
      if (given.size() == kSignatureB64Bytes &&
          CRYPTO_memcmp(given.data(), expected.data(), kSignatureB64Bytes) == 0) {
        matched = true;
      }
    }
  }
  return matched ? WebhookError::kOk : WebhookError::kBadSignature;
}

}  // namespace jnx::core
