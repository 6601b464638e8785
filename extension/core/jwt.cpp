#include "jwt.h"

#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "json_scan.h"
#include "no_postgres.h"

namespace jnx::core {
namespace {

struct JsonDeleter {
  void operator()(json_t *j) const { json_decref(j); }
};
using Json = std::unique_ptr<json_t, JsonDeleter>;

struct PkeyDeleter {
  void operator()(EVP_PKEY *k) const { EVP_PKEY_free(k); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyDeleter>;

// Never call jansson's json_object() in the core: inside a backend that name
// resolves to PostgreSQL's own json_object (the SQL function), which crashes.
// To make an object, parse "{}" with json_loadb. (make symbols-check guards
// every imported name.)

// Parses a JSON object; nullptr for anything else (duplicates rejected).
Json ParseObject(std::string_view text) {
  json_error_t error;
  Json value(json_loadb(text.data(), text.size(), JSON_REJECT_DUPLICATES, &error));
  if (!value || !json_is_object(value.get())) return nullptr;
  return value;
}

const char *StringMember(const json_t *object, const char *name) {
  const json_t *v = json_object_get(object, name);
  return json_is_string(v) ? json_string_value(v) : nullptr;
}

bool StringIs(const json_t *v, std::string_view expected) {
  return json_is_string(v) &&
         std::string_view(json_string_value(v), json_string_length(v)) == expected;
}

// Appends `text` (valid UTF-8, no NUL: it comes from the JSON reader) as a
// JSON string, escaped as json_dumps escapes by default.
void AppendJsonString(std::string_view text, std::string *out) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  out->push_back('"');
  for (const char c : text) {
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\b': out->append("\\b"); break;
      case '\f': out->append("\\f"); break;
      case '\n': out->append("\\n"); break;
      case '\r': out->append("\\r"); break;
      case '\t': out->append("\\t"); break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out->append("\\u00");
          out->push_back(kHex[(c >> 4) & 0xF]);
          out->push_back(kHex[c & 0xF]);
        } else {
          out->push_back(c);
        }
    }
  }
  out->push_back('"');
}

// A token's header and claims are read with JsonObjectReader (json_scan.h),
// which validates exactly what jansson with JSON_REJECT_DUPLICATES accepted
// (fuzz_json compares the two) at a fraction of the cost; jansson still
// reads key sets.

// The decoded string member `name`; false when absent or not a string.
bool TokenString(const JsonObjectReader &object, std::string_view name, std::string *out) {
  const JsonMember *m = object.Find(name);
  if (m == nullptr || m->kind != JsonKind::kString) return false;
  if (m->raw.find('\\') == std::string_view::npos) {
    out->assign(m->raw);
    return true;
  }
  return JsonObjectReader::DecodeString(m->raw, out);
}

// A NumericDate claim: absent is fine, anything but a finite number is not.
bool TokenNumber(const JsonObjectReader &claims, std::string_view name, bool *present,
                 double *value) {
  const JsonMember *m = claims.Find(name);
  *present = m != nullptr;
  if (m == nullptr) return true;
  if (m->kind != JsonKind::kNumber) return false;
  *value = std::strtod(std::string(m->raw).c_str(), nullptr);
  return std::isfinite(*value);
}

// Tokens of another kind, told apart as Clerk's own session verification
// does (clerk/javascript at e21ae9a, August 2026, @clerk/backend 3.16:
// packages/backend/src/tokens/request.ts with jwt/assertions.ts,
// tokens/jwtCategories.ts, tokens/machine.ts):
// - header "typ": absent passes; otherwise it must be exactly "JWT"
//   (assertHeaderType with no configured header type; case-sensitive, so
//   "jwt", "JWS", "at+jwt" and any non-string value are refused);
// - header "cat": absent passes (tokens minted before the category tags);
//   otherwise exactly the session-token category or the "ignore" tag that
//   instances without categories stamp on every token; anything else (JWT
//   templates "cl_B7d4PD222AAA", M2M tokens "cl_B7d4PD333AAA", unknown
//   tags, other case, non-strings) is refused (isNonSessionJwtCategory).
constexpr std::string_view kJwtCategorySession = "cl_B7d4PD111AAA";
constexpr std::string_view kJwtCategoryIgnore = "cl_I7d4PD111III";

bool HeaderNamesSessionToken(const JsonObjectReader &header) {
  std::string value;
  if (header.Find("typ") != nullptr && !(TokenString(header, "typ", &value) && value == "JWT")) {
    return false;
  }
  if (header.Find("cat") == nullptr) return true;
  return TokenString(header, "cat", &value) &&
         (value == kJwtCategorySession || value == kJwtCategoryIgnore);
}

// Clerk's isM2MJwt: a subject starting with "mch_" (a machine) makes an M2M
// token, never a session token (case-sensitive prefix).
constexpr std::string_view kMachineSubjectPrefix = "mch_";

// The key's kind fixes what it verifies: RSA keys PKCS #1 v1.5 signatures
// (RS256/384/512), EC P-256 keys ECDSA with SHA-256 (ES256).
enum class KeyKind { kRsa, kEc };

struct Algorithm {
  KeyKind kind;
  const EVP_MD *md;
};

// The JWS algorithms we verify; nullptr for every other name ("none", HS*,
// PS*, ES384, other case...). Digests are fetched once per process: an
// implicit fetch on every verification costs a lock and a lookup each time.
const Algorithm *FindAlgorithm(std::string_view alg) {
  static const Algorithm rs256{KeyKind::kRsa, EVP_MD_fetch(nullptr, "SHA256", nullptr)};
  static const Algorithm rs384{KeyKind::kRsa, EVP_MD_fetch(nullptr, "SHA384", nullptr)};
  static const Algorithm rs512{KeyKind::kRsa, EVP_MD_fetch(nullptr, "SHA512", nullptr)};
  static const Algorithm es256{KeyKind::kEc, rs256.md};
  if (alg == "RS256") return &rs256;
  if (alg == "RS384") return &rs384;
  if (alg == "RS512") return &rs512;
  if (alg == "ES256") return &es256;
  return nullptr;
}

// ES256 (RFC 7518 section 3.4): the JWS signature is r and s, 32 bytes each,
// big-endian; OpenSSL wants a DER ECDSA-Sig-Value, SEQUENCE { INTEGER r,
// INTEGER s }, in canonical form (minimal, non-negative integers).
constexpr size_t kEs256SignatureBytes = 64;
constexpr size_t kEs256CoordinateBytes = 32;
constexpr size_t kMaxEcdsaDerBytes = 2 + 2 * (2 + 1 + kEs256CoordinateBytes);

size_t EcdsaDerFromJose(const unsigned char *rs, unsigned char *out) {
  unsigned char *p = out + 2;
  for (size_t half = 0; half < 2; ++half) {
    const unsigned char *v = rs + half * kEs256CoordinateBytes;
    size_t len = kEs256CoordinateBytes;
    while (len > 1 && *v == 0) {
      ++v;
      --len;
    }
    const bool pad = (*v & 0x80) != 0;
    *p++ = 0x02;
    *p++ = static_cast<unsigned char>(len + (pad ? 1 : 0));
    if (pad) *p++ = 0;
    std::memcpy(p, v, len);
    p += len;
  }
  out[0] = 0x30;
  out[1] = static_cast<unsigned char>(p - out - 2);
  return static_cast<size_t>(p - out);
}

struct PkeyCtxDeleter {
  void operator()(EVP_PKEY_CTX *c) const { EVP_PKEY_CTX_free(c); }
};
using PkeyCtx = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxDeleter>;

// DER of one INTEGER holding an unsigned big-endian magnitude.
void AppendDerLength(size_t len, std::string *out) {
  if (len < 0x80) {
    out->push_back(static_cast<char>(len));
    return;
  }
  std::string bytes;
  for (size_t l = len; l > 0; l >>= 8) bytes.insert(bytes.begin(), static_cast<char>(l & 0xFF));
  out->push_back(static_cast<char>(0x80 | bytes.size()));
  out->append(bytes);
}

void AppendDerInteger(std::string_view magnitude, std::string *out) {
  while (magnitude.size() > 1 && magnitude[0] == '\0') magnitude.remove_prefix(1);
  const bool pad = !magnitude.empty() && (static_cast<unsigned char>(magnitude[0]) & 0x80) != 0;
  out->push_back(0x02);
  AppendDerLength(magnitude.size() + (pad ? 1 : 0), out);
  if (pad) out->push_back('\0');
  out->append(magnitude);
}

// The key is decoded from a DER RSAPublicKey (PKCS #1) rather than built from
// parameters: keys built with EVP_PKEY_fromdata carry constant-time flags on
// their public numbers, which makes every verification about twice as slow.
Pkey RsaFromJwk(std::string_view n_bytes, std::string_view e_bytes) {
  std::string body;
  AppendDerInteger(n_bytes, &body);
  AppendDerInteger(e_bytes, &body);
  std::string der(1, '\x30');
  AppendDerLength(body.size(), &der);
  der += body;
  const auto *p = reinterpret_cast<const unsigned char *>(der.data());
  return Pkey(d2i_PublicKey(EVP_PKEY_RSA, nullptr, &p, static_cast<long>(der.size())));
}

std::string_view WithoutLeadingZeros(std::string_view magnitude) {
  while (!magnitude.empty() && magnitude[0] == '\0') magnitude.remove_prefix(1);
  return magnitude;
}

// Bits of an unsigned big-endian magnitude without leading zero bytes.
size_t BitLength(std::string_view magnitude) {
  if (magnitude.empty()) return 0;
  size_t bits = (magnitude.size() - 1) * 8;
  for (auto top = static_cast<unsigned char>(magnitude[0]); top != 0; top >>= 1) ++bits;
  return bits;
}

// An exponent that makes forgery easy: e = 1 turns the padded digest itself
// into a valid "signature"; an even e is no RSA exponent; we also bound it
// below 2^64 (Clerk's is 65537).
bool WeakExponent(std::string_view e) {
  e = WithoutLeadingZeros(e);
  if (e.empty() || e.size() > 8) return true;
  uint64_t value = 0;
  for (const char c : e) value = (value << 8) | static_cast<unsigned char>(c);
  return value < 3 || value % 2 == 0;
}

// A kid fit to appear in an error detail: kids are public identifiers, but
// this one comes from a document we refuse, so it is quoted, cut to 64
// characters and stripped of anything but printable ASCII.
std::string KeyLabel(const char *kid, size_t index) {
  if (kid == nullptr || *kid == '\0') return "key #" + std::to_string(index + 1);
  std::string label = "key \"";
  const std::string_view id(kid);
  for (const char c : id.substr(0, 64)) {
    label += c >= 0x20 && c < 0x7F && c != '"' && c != '\\' ? c : '?';
  }
  if (id.size() > 64) label += "...";
  return label + "\"";
}

// key_ops (RFC 7517 section 4.3), when present, must allow "verify".
bool AllowsVerify(const json_t *key_ops) {
  if (!json_is_array(key_ops)) return false;
  for (size_t i = 0; i < json_array_size(key_ops); ++i) {
    if (StringIs(json_array_get(key_ops, i), "verify")) return true;
  }
  return false;
}

}  // namespace

struct KeySet::Impl {
  struct Key {
    std::string kid;
    KeyKind kind = KeyKind::kRsa;
    std::string alg;  // the JWK's own alg; empty: any algorithm of its kind
    Pkey pkey;
    // Initialised once for verification and reused: building a context per
    // call costs a fifth of an RSA-2048 verification. This makes a KeySet
    // unfit for concurrent use; each backend has its own.
    PkeyCtx verify;
    const EVP_MD *verify_md = nullptr;  // the digest `verify` is set to
  };
  std::vector<Key> keys;

  // Mutable: a key's verify context is reused (and its digest switched).
  Key *Find(std::string_view kid) {
    for (Key &k : keys) {
      if (k.kid == kid) return &k;
    }
    return nullptr;
  }
};

namespace {

// What to make of one JWK.
enum class Verdict {
  kUse,       // *key is filled in
  kSkip,      // a key we do not understand or cannot verify with (RFC 7517 section 5)
  kRefuse,    // a key we understand but is broken or weak: the set is refused
  kInternal,  // the cryptographic library failed
};

// An RSA key's n and e: refused when broken or weak, not skipped (a signing
// key that claims to be usable is configuration gone wrong, and a weak one
// would let anybody sign).
Verdict ParseRsaMaterial(const json_t *jwk, const std::string &label, KeySet::Impl::Key *key,
                         std::string *why) {
  const char *n64 = StringMember(jwk, "n");
  const char *e64 = StringMember(jwk, "e");
  std::string n, e;
  if (n64 == nullptr || e64 == nullptr || !Base64UrlDecode(n64, &n) || !Base64UrlDecode(e64, &e)) {
    *why = "RSA " + label + " needs n and e in base64url";
    return Verdict::kRefuse;
  }
  const size_t bits = BitLength(WithoutLeadingZeros(n));
  if (bits < static_cast<size_t>(kMinRsaBits) || bits > static_cast<size_t>(kMaxRsaBits)) {
    *why = "RSA " + label + " has a modulus of " + std::to_string(bits) +
           " bits (2048 to 8192 accepted)";
    return Verdict::kRefuse;
  }
  if ((static_cast<unsigned char>(n.back()) & 1) == 0) {
    *why = "RSA " + label + " has an even modulus";
    return Verdict::kRefuse;
  }
  if (WeakExponent(e)) {
    *why = "RSA " + label + " has a weak public exponent (it must be odd, at least 3, below 2^64)";
    return Verdict::kRefuse;
  }
  key->pkey = RsaFromJwk(n, e);
  if (!key->pkey) {
    *why = "RSA " + label + " could not be built from n and e";
    return Verdict::kRefuse;
  }
  key->verify.reset(EVP_PKEY_CTX_new_from_pkey(nullptr, key->pkey.get(), nullptr));
  if (!key->verify || EVP_PKEY_verify_init(key->verify.get()) != 1 ||
      EVP_PKEY_CTX_set_rsa_padding(key->verify.get(), RSA_PKCS1_PADDING) != 1) {
    return Verdict::kInternal;
  }
  return Verdict::kUse;
}

// An EC P-256 key's x and y: refused unless each is exactly 32 bytes and the
// point is on the curve (EVP_PKEY_public_check: on the curve, coordinates in
// range, of the group's order), since a signing key that claims to be usable
// but is not a point is configuration gone wrong.
Verdict ParseEcMaterial(const json_t *jwk, const std::string &label, KeySet::Impl::Key *key,
                        std::string *why) {
  const char *x64 = StringMember(jwk, "x");
  const char *y64 = StringMember(jwk, "y");
  std::string point(1, '\x04');  // uncompressed: 04 || x || y
  if (x64 == nullptr || y64 == nullptr || !Base64UrlDecode(x64, &point) ||
      point.size() != 1 + kEs256CoordinateBytes || !Base64UrlDecode(y64, &point) ||
      point.size() != 1 + 2 * kEs256CoordinateBytes) {
    *why = "EC " + label + " needs x and y of 32 bytes each in base64url";
    return Verdict::kRefuse;
  }
  char group[] = "P-256";
  const OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0),
      OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size()),
      OSSL_PARAM_construct_end()};
  PkeyCtx build(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
  if (!build || EVP_PKEY_fromdata_init(build.get()) != 1) return Verdict::kInternal;
  EVP_PKEY *pkey = nullptr;
  // OpenSSL 3.0's fromdata already refuses a point off the curve; the public
  // check (on the curve, coordinates below p, order n) is kept so that no
  // version or provider lets one through.
  const bool built = EVP_PKEY_fromdata(build.get(), &pkey, EVP_PKEY_PUBLIC_KEY,
                                       const_cast<OSSL_PARAM *>(params)) == 1;
  key->pkey.reset(pkey);
  PkeyCtx check(built ? EVP_PKEY_CTX_new_from_pkey(nullptr, pkey, nullptr) : nullptr);
  if (!built || !check || EVP_PKEY_public_check(check.get()) != 1) {
    *why = "EC " + label + " is not a point on P-256";
    return Verdict::kRefuse;
  }
  key->verify.reset(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey, nullptr));
  if (!key->verify || EVP_PKEY_verify_init(key->verify.get()) != 1) return Verdict::kInternal;
  return Verdict::kUse;
}

// One JWK: skipped when its kty, use, key_ops, alg or crv is not understood
// or not for verifying signatures, or when it has no kid (tokens select keys
// only by kid: a key without one can never be used, and refusing the whole
// set for it would refuse sets that carry, say, an encryption key beside
// their signing keys).
Verdict ParseJwk(const json_t *jwk, size_t index, KeySet::Impl::Key *key, std::string *why) {
  const char *kid = StringMember(jwk, "kid");
  const std::string label = KeyLabel(kid, index);
  auto skip = [&](const char *reason) {
    *why = label + " " + reason;
    return Verdict::kSkip;
  };
  const json_t *kty = json_object_get(jwk, "kty");
  if (kty == nullptr) return skip("has no kty");
  if (StringIs(kty, "RSA")) {
    key->kind = KeyKind::kRsa;
  } else if (StringIs(kty, "EC")) {
    key->kind = KeyKind::kEc;
  } else {
    return skip("is neither an RSA nor an EC key");
  }
  const json_t *use = json_object_get(jwk, "use");
  if (use != nullptr && !StringIs(use, "sig")) return skip("is not for signatures (use)");
  const json_t *key_ops = json_object_get(jwk, "key_ops");
  if (key_ops != nullptr && !AllowsVerify(key_ops)) return skip("does not allow verify (key_ops)");
  const json_t *alg = json_object_get(jwk, "alg");
  if (alg != nullptr) {
    const Algorithm *a = json_is_string(alg) ? FindAlgorithm(json_string_value(alg)) : nullptr;
    if (a == nullptr || a->kind != key->kind) {
      return skip(key->kind == KeyKind::kRsa ? "has an alg other than RS256, RS384 or RS512"
                                             : "has an alg other than ES256");
    }
    key->alg = json_string_value(alg);
  }
  if (key->kind == KeyKind::kEc && !StringIs(json_object_get(jwk, "crv"), "P-256"))
    return skip("is on a curve other than P-256");
  if (kid == nullptr || *kid == '\0') return skip("has no kid");
  key->kid = kid;
  return key->kind == KeyKind::kRsa ? ParseRsaMaterial(jwk, label, key, why)
                                    : ParseEcMaterial(jwk, label, key, why);
}

}  // namespace

KeySet::KeySet() : impl_(std::make_unique<Impl>()) {}
KeySet::~KeySet() = default;
KeySet::KeySet(KeySet &&) noexcept = default;
KeySet &KeySet::operator=(KeySet &&) noexcept = default;
size_t KeySet::size() const {
  return impl_ ? impl_->keys.size() : 0;
}

const char *TokenErrorName(TokenError err) {
  switch (err) {
    case TokenError::kOk: return "ok";
    case TokenError::kMalformed: return "malformed";
    case TokenError::kUnknownKey: return "unknown_key";
    case TokenError::kAlgorithmNotAllowed: return "algorithm_not_allowed";
    case TokenError::kBadSignature: return "bad_signature";
    case TokenError::kExpired: return "expired";
    case TokenError::kNotYetValid: return "not_yet_valid";
    case TokenError::kWrongIssuer: return "wrong_issuer";
    case TokenError::kWrongParty: return "wrong_party";
    case TokenError::kInvalidJwks: return "invalid_jwks";
    case TokenError::kInternal: return "internal";
    case TokenError::kWrongType: return "wrong_type";
  }
  return "unknown";
}

TokenError KeySet::Parse(std::string_view jwks_json, KeySet *out, std::string *detail) {
  auto fail = [&](std::string why) {
    *detail = std::move(why);
    return TokenError::kInvalidJwks;
  };
  if (jwks_json.size() > kMaxJwksBytes) return fail("the key set is larger than 256 KiB");
  Json root = ParseObject(jwks_json);
  if (!root) return fail("the key set is not a JSON object");
  const json_t *keys = json_object_get(root.get(), "keys");
  if (!json_is_array(keys) || json_array_size(keys) == 0)
    return fail("\"keys\" must be a non-empty array");
  // Every entry counts, usable or not: this bounds the work before any key
  // is built. Clerk's and Supabase's sets hold one to three keys.
  if (json_array_size(keys) > kMaxJwksKeys) return fail("more than 16 keys");
  KeySet set;
  std::string first_skipped;
  size_t skipped = 0;
  for (size_t i = 0; i < json_array_size(keys); ++i) {
    const json_t *jwk = json_array_get(keys, i);
    if (!json_is_object(jwk)) return fail("every key must be a JSON object");
    Impl::Key key;
    std::string why;
    switch (ParseJwk(jwk, i, &key, &why)) {
      case Verdict::kRefuse: return fail(std::move(why));
      case Verdict::kInternal: return TokenError::kInternal;
      case Verdict::kSkip:
        if (skipped++ == 0) first_skipped = std::move(why);
        continue;
      case Verdict::kUse: break;
    }
    if (set.impl_->Find(key.kid) != nullptr)
      return fail(KeyLabel(key.kid.c_str(), i) + " appears twice (kids must be unique)");
    set.impl_->keys.push_back(std::move(key));
  }
  if (set.impl_->keys.empty()) {
    std::string why = "no key in the set can verify session tokens: " + first_skipped;
    if (skipped > 1) why += " (and " + std::to_string(skipped - 1) + " more skipped)";
    return fail(std::move(why));
  }
  *out = std::move(set);
  return TokenError::kOk;
}

TokenError CheckTokenTimes(const TokenTimes &times, int64_t now, int64_t leeway_seconds) {
  const double t = static_cast<double>(now), leeway = static_cast<double>(leeway_seconds);
  if (times.exp <= t - leeway) return TokenError::kExpired;
  if ((times.has_nbf && times.nbf > t + leeway) || (times.has_iat && times.iat > t + leeway))
    return TokenError::kNotYetValid;
  return TokenError::kOk;
}

TokenError VerifyToken(std::string_view token, const KeySet &keys, const TokenPolicy &policy,
                       int64_t now, std::string *claims_out, TokenIdentity *identity) {
  if (token.empty() || token.size() > kMaxTokenBytes) return TokenError::kMalformed;
  const size_t dot1 = token.find('.');
  const size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return TokenError::kMalformed;
  }
  const std::string_view header64 = token.substr(0, dot1);
  const std::string_view payload64 = token.substr(dot1 + 1, dot2 - dot1 - 1);
  const std::string_view signature64 = token.substr(dot2 + 1);
  std::string header_json, payload_json, signature;
  if (header64.empty() || payload64.empty() || signature64.empty() ||
      !Base64UrlDecode(header64, &header_json) || !Base64UrlDecode(payload64, &payload_json) ||
      !Base64UrlDecode(signature64, &signature)) {
    return TokenError::kMalformed;
  }
  JsonObjectReader header;
  if (!header.Parse(header_json)) return TokenError::kMalformed;
  if (!HeaderNamesSessionToken(header)) return TokenError::kWrongType;
  std::string alg, kid;
  if (!TokenString(header, "alg", &alg)) return TokenError::kMalformed;
  // The key, not the header, decides: the header's alg must be one the key's
  // kind verifies, and the key's own alg when its JWK names one.
  const Algorithm *algorithm = FindAlgorithm(alg);
  if (algorithm == nullptr) return TokenError::kAlgorithmNotAllowed;
  KeySet::Impl::Key *key =
      keys.impl() != nullptr && TokenString(header, "kid", &kid) ? keys.impl()->Find(kid) : nullptr;
  if (key == nullptr) return TokenError::kUnknownKey;
  if (key->kind != algorithm->kind || (!key->alg.empty() && key->alg != alg))
    return TokenError::kAlgorithmNotAllowed;
  const EVP_MD *md = algorithm->md;

  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  const std::string_view signing_input = token.substr(0, dot2);
  if (EVP_Digest(signing_input.data(), signing_input.size(), digest, &digest_len, md, nullptr) !=
      1) {
    return TokenError::kInternal;
  }
  if (key->verify_md != md) {  // setting it goes through provider parameters: only on change
    if (EVP_PKEY_CTX_set_signature_md(key->verify.get(), md) != 1) return TokenError::kInternal;
    key->verify_md = md;
  }
  const auto *sig = reinterpret_cast<const unsigned char *>(signature.data());
  size_t sig_len = signature.size();
  std::array<unsigned char, kMaxEcdsaDerBytes> der;
  if (key->kind == KeyKind::kEc) {
    // Only the JWS form: a DER signature or any other length is refused.
    // High s is accepted (as OpenSSL does): JWS does not require low s, and
    // nothing here keys on the signature bytes, so malleability is harmless.
    if (sig_len != kEs256SignatureBytes) return TokenError::kBadSignature;
    sig_len = EcdsaDerFromJose(sig, der.data());
    sig = der.data();
  }
  if (EVP_PKEY_verify(key->verify.get(), sig, sig_len, digest, digest_len) != 1) {
    return TokenError::kBadSignature;
  }

  // Claims, only now that the signature holds.
  JsonObjectReader claims;
  if (!claims.Parse(payload_json)) return TokenError::kMalformed;
  std::string sub;
  const bool has_sub = TokenString(claims, "sub", &sub);
  if (has_sub &&
      std::string_view(sub).substr(0, kMachineSubjectPrefix.size()) == kMachineSubjectPrefix) {
    return TokenError::kWrongType;  // a machine's token, whatever else it claims
  }
  bool has_exp = false;
  TokenTimes times;
  if (!TokenNumber(claims, "exp", &has_exp, &times.exp) ||
      !TokenNumber(claims, "nbf", &times.has_nbf, &times.nbf) ||
      !TokenNumber(claims, "iat", &times.has_iat, &times.iat) || !has_exp) {
    return TokenError::kMalformed;
  }
  if (const TokenError err = CheckTokenTimes(times, now, policy.leeway_seconds);
      err != TokenError::kOk) {
    return err;
  }
  if (!has_sub || sub.empty()) return TokenError::kMalformed;
  std::string iss;
  const bool has_iss = TokenString(claims, "iss", &iss);
  bool issuer_ok = false;
  for (const std::string &allowed : policy.issuers)
    issuer_ok = issuer_ok || (has_iss && allowed == iss);
  if (!issuer_ok) return TokenError::kWrongIssuer;
  if (!policy.authorized_parties.empty()) {
    std::string azp;
    const bool has_azp = TokenString(claims, "azp", &azp);
    bool party_ok = false;
    for (const std::string &p : policy.authorized_parties)
      party_ok = party_ok || (has_azp && p == azp);
    if (!party_ok) return TokenError::kWrongParty;
  }

  if (identity != nullptr) {
    identity->times = times;
    identity->sub = sub;
    if (!TokenString(claims, "org_id", &identity->org_id)) identity->org_id.clear();
    if (!TokenString(claims, "org_role", &identity->org_role)) identity->org_role.clear();
  }

  // Version 2 carries the active organization in "o": add the v1 names. They
  // are spliced into the verified text rather than re-serializing it all.
  const JsonMember *o_member = claims.Find("o");
  if (o_member == nullptr || o_member->kind != JsonKind::kObject ||
      claims.Find("org_id") != nullptr) {
    claims_out->assign(payload_json);
    return TokenError::kOk;
  }
  JsonObjectReader o;
  if (!o.Parse(o_member->raw)) return TokenError::kMalformed;  // cannot happen: it was parsed
  std::string id, rol, slg, per;
  const bool has_id = TokenString(o, "id", &id);
  const bool has_rol = TokenString(o, "rol", &rol);
  const bool has_slg = TokenString(o, "slg", &slg);
  const bool has_per = TokenString(o, "per", &per);
  std::string role;
  if (has_rol) role = std::string_view(rol).substr(0, 4) == "org:" ? rol : "org:" + rol;
  // payload_json is a JSON object ("{...}", maybe with surrounding space):
  // the new members go before its closing brace ("o" is a member, so the
  // object is not empty). They are written directly rather than built as
  // values and serialized.
  std::string merged = payload_json.substr(0, payload_json.rfind('}'));
  merged.reserve(payload_json.size() + 96 + per.size() * 2);
  if (has_id) {
    merged += ",\"org_id\":";
    AppendJsonString(id, &merged);
  }
  if (has_rol) {
    merged += ",\"org_role\":";
    AppendJsonString(role, &merged);
  }
  if (has_slg) {
    merged += ",\"org_slug\":";
    AppendJsonString(slg, &merged);
  }
  merged += ",\"org_permissions\":[";
  bool first = true;
  for (std::string_view rest = has_per ? std::string_view(per) : std::string_view();
       !rest.empty();) {
    const size_t comma = rest.find(',');
    const std::string_view one = rest.substr(0, comma);
    if (!one.empty()) {
      if (!first) merged += ',';
      AppendJsonString(one, &merged);
      first = false;
    }
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
  }
  merged += "]}";
  if (identity != nullptr) {
    identity->org_id = has_id ? id : "";
    identity->org_role = role;
  }
  claims_out->swap(merged);
  return TokenError::kOk;
}

}  // namespace jnx::core
