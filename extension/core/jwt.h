// Clerk session tokens: compact JWS, verified against a JWKS.
//
// The key decides the algorithm: an RSA key (2048 bits or more) accepts
// RS256, RS384 and RS512 (only its own "alg" when the JWK names one); "none",
// HMAC and anything else are refused, whatever the token header says.
// Tokens of another kind are refused as Clerk's session verification refuses
// them (wrong_type): a header typ other than exactly "JWT" (absent is fine), a
// header cat other than the session category or Clerk's "ignore" tag (absent
// is fine), a subject starting with "mch_" (an M2M token).
// Claims: exp, nbf, iat must be numbers and are checked with a leeway; iss
// must be in the allowlist; azp in the authorized parties when any are
// configured (then a missing azp fails); sub is required.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base64.h"

namespace jnx::core {

enum class TokenError {
  kOk = 0,
  kMalformed,            // not three base64url JSON parts, too large, bad claim types
  kUnknownKey,           // no kid, or no key with that kid
  kAlgorithmNotAllowed,  // alg none/HS*/unknown, or not what the key allows
  kBadSignature,
  kExpired,
  kNotYetValid,  // nbf or iat in the future beyond the leeway
  kWrongIssuer,
  kWrongParty,
  kInvalidJwks,  // configuration: the key set cannot be used
  kInternal,
  kWrongType,  // another kind of token: header typ not "JWT", cat not a session's, M2M sub
};

const char *TokenErrorName(TokenError err);

inline constexpr size_t kMaxTokenBytes = size_t{16} * 1024;
inline constexpr size_t kMaxJwksBytes = size_t{256} * 1024;
inline constexpr size_t kMaxJwksKeys = 16;
inline constexpr int kMinRsaBits = 2048;

// A parsed JSON Web Key Set. Movable, not copyable; frees its keys.
class KeySet {
 public:
  KeySet();
  ~KeySet();
  KeySet(KeySet &&) noexcept;
  KeySet &operator=(KeySet &&) noexcept;
  KeySet(const KeySet &) = delete;
  KeySet &operator=(const KeySet &) = delete;

  // Parses {"keys": [...]}: RSA keys with kid, n, e (use "sig" or absent).
  static TokenError Parse(std::string_view jwks_json, KeySet *out, std::string *detail);
  size_t size() const;

  struct Impl;
  // Verification reuses per-key OpenSSL contexts: not for concurrent use.
  Impl *impl() const { return impl_.get(); }

 private:
  std::unique_ptr<Impl> impl_;
};

struct TokenPolicy {
  std::vector<std::string> issuers;             // empty: no issuer accepted
  std::vector<std::string> authorized_parties;  // empty: azp not checked
  int64_t leeway_seconds = 5;
};

// Who a verified token speaks for (normalized; empty when absent).
struct TokenIdentity {
  std::string sub;
  std::string org_id;
  std::string org_role;  // with the "org:" prefix
};

// Verifies `token` at Unix time `now`. On success *claims is the payload as
// compact JSON with Clerk's two claim versions normalized: org_id, org_role
// (always with the "org:" prefix), org_slug and org_permissions (an array)
// are present whenever an organization is active, whichever version sent it.
TokenError VerifyToken(std::string_view token, const KeySet &keys, const TokenPolicy &policy,
                       int64_t now, std::string *claims, TokenIdentity *identity = nullptr);

}  // namespace jnx::core
