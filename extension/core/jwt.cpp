#include "jwt.h"

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include <array>
#include <cmath>

#include "no_postgres.h"

namespace jnx::core {
namespace {

constexpr char kUrlAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

constexpr std::array<uint8_t, 256> MakeUrlTable() {
  std::array<uint8_t, 256> table{};
  for (auto &v : table) v = 0xFF;
  for (uint8_t i = 0; i < 64; ++i) table[static_cast<uint8_t>(kUrlAlphabet[i])] = i;
  return table;
}
constexpr std::array<uint8_t, 256> kUrlDecode = MakeUrlTable();

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

const EVP_MD *DigestFor(std::string_view alg) {
  if (alg == "RS256") return EVP_sha256();
  if (alg == "RS384") return EVP_sha384();
  if (alg == "RS512") return EVP_sha512();
  return nullptr;
}

Pkey RsaFromJwk(std::string_view n_bytes, std::string_view e_bytes) {
  BIGNUM *n = BN_bin2bn(reinterpret_cast<const unsigned char *>(n_bytes.data()),
                        static_cast<int>(n_bytes.size()), nullptr);
  BIGNUM *e = BN_bin2bn(reinterpret_cast<const unsigned char *>(e_bytes.data()),
                        static_cast<int>(e_bytes.size()), nullptr);
  OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
  OSSL_PARAM *params = nullptr;
  EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr);
  EVP_PKEY *pkey = nullptr;
  if (n != nullptr && e != nullptr && bld != nullptr && ctx != nullptr &&
      OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) == 1 &&
      OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) == 1 &&
      (params = OSSL_PARAM_BLD_to_param(bld)) != nullptr && EVP_PKEY_fromdata_init(ctx) == 1) {
    if (EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1) pkey = nullptr;
  }
  EVP_PKEY_CTX_free(ctx);
  OSSL_PARAM_free(params);
  OSSL_PARAM_BLD_free(bld);
  BN_free(n);
  BN_free(e);
  return Pkey(pkey);
}

}  // namespace

struct KeySet::Impl {
  struct Key {
    std::string kid;
    std::string alg;  // empty: any RS* algorithm
    Pkey pkey;
  };
  std::vector<Key> keys;

  const Key *Find(std::string_view kid) const {
    for (const Key &k : keys) {
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
  }
  return "unknown";
}

bool Base64UrlDecode(std::string_view in, std::string *out) {
  if (in.size() % 4 == 1) return false;
  std::string decoded;
  decoded.reserve(in.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    const uint8_t d = kUrlDecode[static_cast<uint8_t>(c)];
    if (d == 0xFF) return false;
    acc = (acc << 6) | d;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      decoded.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) return false;  // canonical only
  out->append(decoded);
  return true;
}

std::string Base64UrlEncode(std::string_view in) {
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : in) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(kUrlAlphabet[(acc >> bits) & 63]);
    }
  }
  if (bits > 0) out.push_back(kUrlAlphabet[(acc << (6 - bits)) & 63]);
  return out;
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
    if (EVP_PKEY_get_bits(pkey.get()) < kMinRsaBits)
      return fail("RSA keys must have at least 2048 bits");
    set.impl_->keys.push_back(Impl::Key{kid, alg != nullptr ? alg : "", std::move(pkey)});
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
  const char *alg = StringMember(header.get(), "alg");
  if (alg == nullptr) return TokenError::kMalformed;
  // The key, not the header, decides: only RSA signatures exist here.
  const EVP_MD *md = DigestFor(alg);
  if (md == nullptr) return TokenError::kAlgorithmNotAllowed;
  const char *kid = StringMember(header.get(), "kid");
  const KeySet::Impl::Key *key =
      keys.impl() != nullptr && kid != nullptr ? keys.impl()->Find(kid) : nullptr;
  if (key == nullptr) return TokenError::kUnknownKey;
  if (!key->alg.empty() && key->alg != alg) return TokenError::kAlgorithmNotAllowed;

  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  if (ctx == nullptr) return TokenError::kInternal;
  const std::string_view signing_input = token.substr(0, dot2);
  int ok = EVP_DigestVerifyInit(ctx, nullptr, md, nullptr, key->pkey.get());
  if (ok == 1) {
    ok = EVP_DigestVerify(
        ctx, reinterpret_cast<const unsigned char *>(signature.data()), signature.size(),
        reinterpret_cast<const unsigned char *>(signing_input.data()), signing_input.size());
  }
  EVP_MD_CTX_free(ctx);
  if (ok != 1) return TokenError::kBadSignature;

  // Claims, only now that the signature holds.
  Json claims = ParseObject(payload_json);
  if (!claims) return TokenError::kMalformed;
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
  const char *sub = StringMember(claims.get(), "sub");
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

  // Version 2 carries the active organization in "o": make it look like v1.
  const json_t *o = json_object_get(claims.get(), "o");
  if (json_is_object(o) && json_object_get(claims.get(), "org_id") == nullptr) {
    const char *id = StringMember(o, "id");
    const char *rol = StringMember(o, "rol");
    const char *slg = StringMember(o, "slg");
    const char *per = StringMember(o, "per");
    if (id != nullptr) json_object_set_new(claims.get(), "org_id", json_string(id));
    if (rol != nullptr) {
      const std::string role =
          std::string_view(rol).substr(0, 4) == "org:" ? rol : std::string("org:") + rol;
      json_object_set_new(claims.get(), "org_role", json_string(role.c_str()));
    }
    if (slg != nullptr) json_object_set_new(claims.get(), "org_slug", json_string(slg));
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
    json_object_set_new(claims.get(), "org_permissions", perms);
  }
  if (identity != nullptr) {
    const char *org_id = StringMember(claims.get(), "org_id");
    const char *org_role = StringMember(claims.get(), "org_role");
    identity->sub = sub;
    identity->org_id = org_id != nullptr ? org_id : "";
    identity->org_role = org_role != nullptr ? org_role : "";
  }
  char *text = json_dumps(claims.get(), JSON_COMPACT);
  if (text == nullptr) return TokenError::kInternal;
  claims_out->assign(text);
  free(text);
  return TokenError::kOk;
}

}  // namespace jnx::core
