#include "jwt.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <cmath>

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

// A NumericDate claim: absent is fine, anything but a finite number is not.
bool NumericClaim(const json_t *claims, const char *name, bool *present, double *value) {
  const json_t *v = json_object_get(claims, name);
  *present = v != nullptr;
  if (v == nullptr) return true;
  if (!json_is_number(v)) return false;
  *value = json_number_value(v);
  return std::isfinite(*value);
}

bool StringIs(const json_t *v, std::string_view expected) {
  return json_is_string(v) &&
         std::string_view(json_string_value(v), json_string_length(v)) == expected;
}

// Tokens of another kind, told apart as Clerk's own session verification
// does (clerk/javascript, packages/backend/src/tokens/request.ts with
// jwt/assertions.ts, tokens/jwtCategories.ts, tokens/machine.ts):
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

bool HeaderNamesSessionToken(const json_t *header) {
  const json_t *typ = json_object_get(header, "typ");
  if (typ != nullptr && !StringIs(typ, "JWT")) return false;
  const json_t *cat = json_object_get(header, "cat");
  return cat == nullptr || StringIs(cat, kJwtCategorySession) || StringIs(cat, kJwtCategoryIgnore);
}

// Clerk's isM2MJwt: a subject starting with "mch_" (a machine) makes an M2M
// token, never a session token (case-sensitive prefix).
constexpr std::string_view kMachineSubjectPrefix = "mch_";

// Digests fetched once per process: an implicit fetch on every verification
// costs a lock and a lookup each time.
const EVP_MD *DigestFor(std::string_view alg) {
  static EVP_MD *const sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  static EVP_MD *const sha384 = EVP_MD_fetch(nullptr, "SHA384", nullptr);
  static EVP_MD *const sha512 = EVP_MD_fetch(nullptr, "SHA512", nullptr);
  if (alg == "RS256") return sha256;
  if (alg == "RS384") return sha384;
  if (alg == "RS512") return sha512;
  return nullptr;
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

}  // namespace

struct KeySet::Impl {
  struct Key {
    std::string kid;
    std::string alg;  // empty: any RS* algorithm
    Pkey pkey;
    // Initialised once for PKCS #1 v1.5 verification and reused: building a
    // context per call costs a fifth of an RSA-2048 verification. This makes
    // a KeySet unfit for concurrent use; each backend has its own.
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
  auto fail = [&](const char *why) {
    *detail = why;
    return TokenError::kInvalidJwks;
  };
  if (jwks_json.size() > kMaxJwksBytes) return fail("the key set is larger than 256 KiB");
  Json root = ParseObject(jwks_json);
  if (!root) return fail("the key set is not a JSON object");
  const json_t *keys = json_object_get(root.get(), "keys");
  if (!json_is_array(keys) || json_array_size(keys) == 0)
    return fail("\"keys\" must be a non-empty array");
  if (json_array_size(keys) > kMaxJwksKeys) return fail("more than 16 keys");
  KeySet set;
  for (size_t i = 0; i < json_array_size(keys); ++i) {
    const json_t *jwk = json_array_get(keys, i);
    if (!json_is_object(jwk)) return fail("every key must be an object");
    const char *kty = StringMember(jwk, "kty");
    const char *kid = StringMember(jwk, "kid");
    const char *use = StringMember(jwk, "use");
    const char *alg = StringMember(jwk, "alg");
    if (kid == nullptr || *kid == '\0') return fail("every key needs a kid");
    if (set.impl_->Find(kid) != nullptr) return fail("two keys share a kid");
    if (use != nullptr && std::string_view(use) != "sig")
      return fail("a key's use must be \"sig\"");
    if (kty == nullptr || std::string_view(kty) != "RSA")
      return fail("only RSA keys (kty \"RSA\") are supported");
    if (alg != nullptr && DigestFor(alg) == nullptr)
      return fail("a key's alg must be RS256, RS384 or RS512");
    const char *n64 = StringMember(jwk, "n");
    const char *e64 = StringMember(jwk, "e");
    std::string n, e;
    if (n64 == nullptr || e64 == nullptr || !Base64UrlDecode(n64, &n) ||
        !Base64UrlDecode(e64, &e) || n.empty() || e.empty()) {
      return fail("an RSA key needs n and e in base64url");
    }
    Pkey pkey = RsaFromJwk(n, e);
    if (!pkey) return fail("an RSA key could not be built from n and e");
    if (EVP_PKEY_get_bits(pkey.get()) < kMinRsaBits) {
      return fail("RSA keys must have at least 2048 bits");
    }
    PkeyCtx verify(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey.get(), nullptr));
    if (!verify || EVP_PKEY_verify_init(verify.get()) != 1 ||
        EVP_PKEY_CTX_set_rsa_padding(verify.get(), RSA_PKCS1_PADDING) != 1) {
      return TokenError::kInternal;
    }
    set.impl_->keys.push_back(
        Impl::Key{kid, alg != nullptr ? alg : "", std::move(pkey), std::move(verify), nullptr});
  }
  *out = std::move(set);
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
  Json header = ParseObject(header_json);
  if (!header) return TokenError::kMalformed;
  if (!HeaderNamesSessionToken(header.get())) return TokenError::kWrongType;
  const char *alg = StringMember(header.get(), "alg");
  if (alg == nullptr) return TokenError::kMalformed;
  // The key, not the header, decides: only RSA signatures exist here.
  const EVP_MD *md = DigestFor(alg);
  if (md == nullptr) return TokenError::kAlgorithmNotAllowed;
  const char *kid = StringMember(header.get(), "kid");
  KeySet::Impl::Key *key =
      keys.impl() != nullptr && kid != nullptr ? keys.impl()->Find(kid) : nullptr;
  if (key == nullptr) return TokenError::kUnknownKey;
  if (!key->alg.empty() && key->alg != alg) return TokenError::kAlgorithmNotAllowed;

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
  if (EVP_PKEY_verify(key->verify.get(), reinterpret_cast<const unsigned char *>(signature.data()),
                      signature.size(), digest, digest_len) != 1) {
    return TokenError::kBadSignature;
  }

  // Claims, only now that the signature holds.
  Json claims = ParseObject(payload_json);
  if (!claims) return TokenError::kMalformed;
  const char *sub = StringMember(claims.get(), "sub");
  if (sub != nullptr &&
      std::string_view(sub).substr(0, kMachineSubjectPrefix.size()) == kMachineSubjectPrefix) {
    return TokenError::kWrongType;  // a machine's token, whatever else it claims
  }
  bool has_exp = false, has_nbf = false, has_iat = false;
  double exp = 0, nbf = 0, iat = 0;
  if (!NumericClaim(claims.get(), "exp", &has_exp, &exp) ||
      !NumericClaim(claims.get(), "nbf", &has_nbf, &nbf) ||
      !NumericClaim(claims.get(), "iat", &has_iat, &iat) || !has_exp) {
    return TokenError::kMalformed;
  }
  const double t = static_cast<double>(now), leeway = static_cast<double>(policy.leeway_seconds);
  if (exp <= t - leeway) return TokenError::kExpired;
  if ((has_nbf && nbf > t + leeway) || (has_iat && iat > t + leeway))
    return TokenError::kNotYetValid;
  if (sub == nullptr || *sub == '\0') return TokenError::kMalformed;
  const char *iss = StringMember(claims.get(), "iss");
  bool issuer_ok = false;
  for (const std::string &allowed : policy.issuers)
    issuer_ok = issuer_ok || (iss != nullptr && allowed == iss);
  if (!issuer_ok) return TokenError::kWrongIssuer;
  if (!policy.authorized_parties.empty()) {
    const char *azp = StringMember(claims.get(), "azp");
    bool party_ok = false;
    for (const std::string &p : policy.authorized_parties)
      party_ok = party_ok || (azp != nullptr && p == azp);
    if (!party_ok) return TokenError::kWrongParty;
  }

  if (identity != nullptr) {
    identity->sub = sub;
    const char *org_id = StringMember(claims.get(), "org_id");
    const char *org_role = StringMember(claims.get(), "org_role");
    identity->org_id = org_id != nullptr ? org_id : "";
    identity->org_role = org_role != nullptr ? org_role : "";
  }

  // Version 2 carries the active organization in "o": add the v1 names. They
  // are spliced into the verified text rather than re-serializing it all.
  const json_t *o = json_object_get(claims.get(), "o");
  if (!json_is_object(o) || json_object_get(claims.get(), "org_id") != nullptr) {
    claims_out->assign(payload_json);
    return TokenError::kOk;
  }
  // Not json_object(): inside a backend that name resolves to PostgreSQL's
  // own json_object (the SQL function), which crashes. jansson's parser
  // makes the object through its internal calls. (make symbols-check guards
  // every imported name.)
  json_error_t error;
  Json extra(json_loadb("{}", 2, 0, &error));
  if (!extra) return TokenError::kInternal;
  const char *id = StringMember(o, "id");
  const char *rol = StringMember(o, "rol");
  const char *slg = StringMember(o, "slg");
  const char *per = StringMember(o, "per");
  std::string role;
  if (rol != nullptr)
    role = std::string_view(rol).substr(0, 4) == "org:" ? rol : std::string("org:") + rol;
  if (id != nullptr) json_object_set_new(extra.get(), "org_id", json_string(id));
  if (rol != nullptr) json_object_set_new(extra.get(), "org_role", json_string(role.c_str()));
  if (slg != nullptr) json_object_set_new(extra.get(), "org_slug", json_string(slg));
  json_t *perms = json_array();
  if (per != nullptr) {
    std::string_view rest = per;
    while (!rest.empty()) {
      const size_t comma = rest.find(',');
      const std::string one(rest.substr(0, comma));
      if (!one.empty()) json_array_append_new(perms, json_string(one.c_str()));
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    }
  }
  json_object_set_new(extra.get(), "org_permissions", perms);
  char *text = json_dumps(extra.get(), JSON_COMPACT);
  if (text == nullptr) return TokenError::kInternal;
  // payload_json is a JSON object ("{...}", maybe with surrounding space):
  // insert the new members before its closing brace.
  const size_t close = payload_json.rfind('}');
  const bool empty_object = json_object_size(claims.get()) == 0;
  std::string merged = payload_json.substr(0, close);
  if (!empty_object) merged += ',';
  merged.append(text + 1);  // without the extra object's own "{"
  free(text);
  if (identity != nullptr) {
    identity->org_id = id != nullptr ? id : "";
    identity->org_role = role;
  }
  claims_out->swap(merged);
  return TokenError::kOk;
}

}  // namespace jnx::core
