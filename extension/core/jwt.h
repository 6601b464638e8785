// Clerk session tokens: compact JWS, verified against a JWKS.
//
// Key set (KeySet::Parse; refusals are kInvalidJwks with a detail that names
// the reason and at most a kid, never key material):
// - at most 256 KiB and 16 entries in "keys", usable or not;
// - a key is ignored (RFC 7517 section 5) when its kty is neither "RSA" nor
//   "EC", its use is present and not "sig", its key_ops is present without
//   "verify", its alg is present and not one its kind verifies (RS256, RS384,
//   RS512 for RSA; ES256 for EC), an EC key's crv is not "P-256", or it has
//   no kid (tokens select keys by kid only);
// - a key that is not ignored but broken or weak refuses the whole set: RSA
//   n or e missing or not base64url, a modulus below 2048 or above 8192 bits
//   (its real length, leading zero bytes aside) or even, an exponent that is
//   even, below 3 or 2^64 or more (e = 1 would let anybody forge); EC x or y
//   missing, not base64url or not exactly 32 bytes, or not a point on P-256;
// - two usable keys with one kid, or no usable key at all, refuse the set.
//
// Token (VerifyToken), in this order:
// - a compact JWS of at most 16 KiB, three base64url parts, JSON header
//   (kMalformed otherwise);
// - another kind of token is refused as Clerk's session verification refuses
//   it (kWrongType): a header typ other than exactly "JWT" (absent is fine),
//   a header cat other than the session category or Clerk's "ignore" tag
//   (absent is fine); checked from the header, before the signature;
// - the key decides the algorithm (kAlgorithmNotAllowed, kUnknownKey): the
//   header's kid must name a usable key; an RSA key accepts RS256, RS384 and
//   RS512, an EC P-256 key ES256, each only its own alg when the JWK names
//   one; "none", HS*, PS*, ES384 and anything else are refused whatever the
//   header says;
// - the signature (kBadSignature): an ES256 signature is r || s, exactly 64
//   bytes (a DER signature is refused); a high s is accepted, as JWS allows;
// - the claims: a subject starting with "mch_" is an M2M token (kWrongType);
//   exp (required), nbf, iat must be numbers and are checked with the
//   leeway; sub is required; iss must be in the allowlist; azp in the
//   authorized parties when any are configured (then a missing azp fails).
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
inline constexpr int kMaxRsaBits = 8192;

// A parsed JSON Web Key Set. Movable, not copyable; frees its keys.
class KeySet {
 public:
  KeySet();
  ~KeySet();
  KeySet(KeySet &&) noexcept;
  KeySet &operator=(KeySet &&) noexcept;
  KeySet(const KeySet &) = delete;
  KeySet &operator=(const KeySet &) = delete;

  // Parses {"keys": [...]} as the comment at the top of this file says.
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

// A token's time claims, in seconds since the epoch (exp is required).
struct TokenTimes {
  double exp = 0;
  bool has_nbf = false;
  double nbf = 0;
  bool has_iat = false;
  double iat = 0;
};

// The time rule of VerifyToken: kExpired when exp <= now - leeway,
// kNotYetValid when nbf or iat > now + leeway, else kOk.
TokenError CheckTokenTimes(const TokenTimes &times, int64_t now, int64_t leeway_seconds);

// Who a verified token speaks for (normalized; empty when absent), and until
// when.
struct TokenIdentity {
  std::string sub;
  std::string org_id;
  std::string org_role;  // with the "org:" prefix
  TokenTimes times;
};

// Verifies `token` at Unix time `now`. On success *claims is the payload as
// compact JSON with Clerk's two claim versions normalized: org_id, org_role
// (always with the "org:" prefix), org_slug and org_permissions (an array)
// are present whenever an organization is active, whichever version sent it.
TokenError VerifyToken(std::string_view token, const KeySet &keys, const TokenPolicy &policy,
                       int64_t now, std::string *claims, TokenIdentity *identity = nullptr);

}  // namespace jnx::core
