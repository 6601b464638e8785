// Test-only helpers: RSA keys generated at run time, their JWKS, and signed
// JWTs (including deliberately broken ones). Never used by the extension.
#pragma once

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <memory>
#include <string>

#include "core/jwt.h"

namespace jnx::testing {

struct RsaKey {
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> pkey{nullptr, EVP_PKEY_free};
  std::string kid;
};

inline RsaKey GenerateRsa(const std::string &kid, unsigned bits = 2048) {
  RsaKey key;
  key.pkey.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(bits)));
  key.kid = kid;
  return key;
}

// A key parameter as unsigned big-endian bytes, left-padded with zeros to
// `width` bytes when given (EC coordinates have a fixed width).
inline std::string BnBytes(const EVP_PKEY *pkey, const char *name, int width = 0) {
  BIGNUM *bn = nullptr;
  EVP_PKEY_get_bn_param(pkey, name, &bn);
  const int size = width > 0 ? width : BN_num_bytes(bn);
  std::string bytes(static_cast<size_t>(size), '\0');
  BN_bn2binpad(bn, reinterpret_cast<unsigned char *>(bytes.data()), size);
  BN_free(bn);
  return bytes;
}

inline std::string BnToB64Url(const EVP_PKEY *pkey, const char *name) {
  return core::Base64UrlEncode(BnBytes(pkey, name));
}

// One JWK as JSON; alg may be empty (then omitted).
inline std::string Jwk(const RsaKey &key, const std::string &alg = "RS256") {
  std::string jwk = "{\"kty\":\"RSA\",\"use\":\"sig\",\"kid\":\"" + key.kid + "\",\"n\":\"" +
                    BnToB64Url(key.pkey.get(), OSSL_PKEY_PARAM_RSA_N) + "\",\"e\":\"" +
                    BnToB64Url(key.pkey.get(), OSSL_PKEY_PARAM_RSA_E) + "\"";
  if (!alg.empty()) jwk += ",\"alg\":\"" + alg + "\"";
  return jwk + "}";
}

inline std::string Sign(const RsaKey &key, const std::string &alg, const std::string &input) {
  const EVP_MD *md = alg == "RS384" ? EVP_sha384() : alg == "RS512" ? EVP_sha512() : EVP_sha256();
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  size_t len = 0;
  EVP_DigestSignInit(ctx, nullptr, md, nullptr, key.pkey.get());
  EVP_DigestSign(ctx, nullptr, &len, reinterpret_cast<const unsigned char *>(input.data()),
                 input.size());
  std::string sig(len, '\0');
  EVP_DigestSign(ctx, reinterpret_cast<unsigned char *>(sig.data()), &len,
                 reinterpret_cast<const unsigned char *>(input.data()), input.size());
  EVP_MD_CTX_free(ctx);
  sig.resize(len);
  return sig;
}

// header and payload are JSON texts, signed as given.
inline std::string Token(const RsaKey &key, const std::string &header, const std::string &payload,
                         const std::string &alg = "RS256") {
  const std::string input = core::Base64UrlEncode(header) + "." + core::Base64UrlEncode(payload);
  return input + "." + core::Base64UrlEncode(Sign(key, alg, input));
}

inline std::string Header(const RsaKey &key, const std::string &alg = "RS256") {
  return "{\"alg\":\"" + alg + "\",\"kid\":\"" + key.kid + "\",\"typ\":\"JWT\"}";
}

}  // namespace jnx::testing
