// Test-only helpers: RSA and EC P-256 keys generated at run time, their JWKS,
// and signed JWTs (including deliberately broken ones). Never used by the
// extension.
#pragma once

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <memory>
#include <string>

#include "core/jwt.h"

namespace jnx::testing {

// A private key (RSA or EC P-256) and the kid it is published under.
struct Key {
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> pkey{nullptr, EVP_PKEY_free};
  std::string kid;
};
using RsaKey = Key;
using EcKey = Key;

inline Key GenerateRsa(const std::string &kid, unsigned bits = 2048) {
  Key key;
  key.pkey.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(bits)));
  key.kid = kid;
  return key;
}

inline Key GenerateEc(const std::string &kid) {
  Key key;
  key.pkey.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  key.kid = kid;
  return key;
}

inline bool IsEc(const Key &key) {
  return key.pkey != nullptr && EVP_PKEY_is_a(key.pkey.get(), "EC") == 1;
}

// The algorithm a key signs with unless told otherwise.
inline std::string DefaultAlg(const Key &key) {
  return IsEc(key) ? "ES256" : "RS256";
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

// One public JWK as JSON; alg empty: omitted.
inline std::string Jwk(const Key &key, const std::string &alg) {
  std::string jwk;
  if (IsEc(key)) {
    jwk = "{\"kty\":\"EC\",\"crv\":\"P-256\",\"use\":\"sig\",\"kid\":\"" + key.kid + "\",\"x\":\"" +
          core::Base64UrlEncode(BnBytes(key.pkey.get(), OSSL_PKEY_PARAM_EC_PUB_X, 32)) +
          "\",\"y\":\"" +
          core::Base64UrlEncode(BnBytes(key.pkey.get(), OSSL_PKEY_PARAM_EC_PUB_Y, 32)) + "\"";
  } else {
    jwk = "{\"kty\":\"RSA\",\"use\":\"sig\",\"kid\":\"" + key.kid + "\",\"n\":\"" +
          BnToB64Url(key.pkey.get(), OSSL_PKEY_PARAM_RSA_N) + "\",\"e\":\"" +
          BnToB64Url(key.pkey.get(), OSSL_PKEY_PARAM_RSA_E) + "\"";
  }
  if (!alg.empty()) jwk += ",\"alg\":\"" + alg + "\"";
  return jwk + "}";
}

// The JWK with the key's default alg (RS256 or ES256).
inline std::string Jwk(const Key &key) {
  return Jwk(key, DefaultAlg(key));
}

// What OpenSSL's EVP_DigestSign makes: the RSA signature, or for EC the DER
// ECDSA-Sig-Value. The digest follows alg's number (SHA-256 unless 384/512).
inline std::string SignWithOpenSsl(const Key &key, const std::string &alg,
                                   const std::string &input) {
  const bool is384 = alg.size() >= 3 && alg.compare(alg.size() - 3, 3, "384") == 0;
  const bool is512 = alg.size() >= 3 && alg.compare(alg.size() - 3, 3, "512") == 0;
  const EVP_MD *md = is384 ? EVP_sha384() : is512 ? EVP_sha512() : EVP_sha256();
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

// A DER ECDSA-Sig-Value as JWS wants it (RFC 7518 section 3.4): r || s, 32
// bytes each.
inline std::string EcdsaDerToJose(const std::string &der) {
  const auto *p = reinterpret_cast<const unsigned char *>(der.data());
  ECDSA_SIG *sig = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size()));
  std::string rs(64, '\0');
  if (sig != nullptr) {
    BN_bn2binpad(ECDSA_SIG_get0_r(sig), reinterpret_cast<unsigned char *>(rs.data()), 32);
    BN_bn2binpad(ECDSA_SIG_get0_s(sig), reinterpret_cast<unsigned char *>(rs.data()) + 32, 32);
  }
  ECDSA_SIG_free(sig);
  return rs;
}

// The JWS signature: PKCS #1 v1.5 for an RSA key, r || s for an EC key.
inline std::string Sign(const Key &key, const std::string &alg, const std::string &input) {
  const std::string sig = SignWithOpenSsl(key, alg, input);
  return IsEc(key) ? EcdsaDerToJose(sig) : sig;
}

// header and payload are JSON texts, signed as given; alg empty: the key's
// default.
inline std::string Token(const Key &key, const std::string &header, const std::string &payload,
                         const std::string &alg = "") {
  const std::string input = core::Base64UrlEncode(header) + "." + core::Base64UrlEncode(payload);
  return input + "." + core::Base64UrlEncode(Sign(key, alg.empty() ? DefaultAlg(key) : alg, input));
}

inline std::string Header(const Key &key, const std::string &alg = "") {
  return "{\"alg\":\"" + (alg.empty() ? DefaultAlg(key) : alg) + "\",\"kid\":\"" + key.kid +
         "\",\"typ\":\"JWT\"}";
}

}  // namespace jnx::testing
