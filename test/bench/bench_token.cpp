// Session-token verification in the core vs OpenSSL's own verify of the same
// signature. Reference: EVP_DigestVerify (RSA-2048 SHA-256 PKCS#1 v1.5, or
// ECDSA P-256 SHA-256 over the DER form of the token's r || s) of the same
// token's signing input with the same key, context reused: the crypto alone.
// Ours: the full VerifyToken (split, base64url, JSON header and claims, type
// and key checks, signature, every claim check, v2 normalization,
// serialization). Rounds alternate; the ratio is the median of per-round
// ratios.
//   usage: bench_token [ROUNDS [SECONDS_PER_RUN]]   (defaults 5, 0.5)
#include <openssl/ec.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "../tools/token_util.h"
#include "bench_util.h"
#include "core/jwt.h"
#include "core/token_cache.h"

namespace {

namespace t = jnx::testing;

using Result = jnx::bench::Comparison;

constexpr long long kNow = 1764150000;  // the tokens' iat

// The key set of `key` and the policy the tokens are minted for.
void Prepare(const t::Key &key, jnx::core::KeySet *keys, jnx::core::TokenPolicy *policy) {
  std::string detail;
  if (jnx::core::KeySet::Parse("{\"keys\":[" + t::Jwk(key) + "]}", keys, &detail) !=
      jnx::core::TokenError::kOk) {
    std::fprintf(stderr, "key set refused: %s\n", detail.c_str());
    std::exit(1);
  }
  policy->issuers = {"https://clerk.example.test"};
  policy->authorized_parties = {"https://app.example.test"};
}

// A hit in the verified-token cache vs the SHA-256 of the token that keys it
// (EVP_Digest with a digest fetched once): the hash is a hit's floor.
Result CompareCacheHit(const t::Key &key, const std::string &token, int rounds, double seconds) {
  jnx::core::KeySet keys;
  jnx::core::TokenPolicy policy;
  Prepare(key, &keys, &policy);
  const long long now = kNow;
  std::string claims;
  jnx::core::TokenIdentity identity;
  if (jnx::core::VerifyToken(token, keys, policy, now, &claims, &identity) !=
      jnx::core::TokenError::kOk) {
    std::fprintf(stderr, "token refused\n");
    std::exit(1);
  }
  jnx::core::TokenCache cache;
  cache.Insert(token, 1, claims, identity);
  EVP_MD *sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  if (sha256 == nullptr) {
    std::fprintf(stderr, "SHA256 not available\n");
    std::exit(1);
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  auto hash = [&] {
    unsigned int len = 0;
    return EVP_Digest(token.data(), token.size(), digest, &len, sha256, nullptr) == 1;
  };
  auto hit = [&] { return cache.Find(token, 1, now, policy.leeway_seconds) != nullptr; };
  const Result result = jnx::bench::Alternate(hash, hit, rounds, seconds);
  EVP_MD_free(sha256);
  return result;
}

// Alternating rounds of OpenSSL's verify and ours for one key and token.
Result Compare(const t::Key &key, const std::string &token, int rounds, double seconds) {
  jnx::core::KeySet keys;
  jnx::core::TokenPolicy policy;
  Prepare(key, &keys, &policy);
  const long long now = kNow;

  const std::string input = token.substr(0, token.rfind('.'));
  std::string signature;
  jnx::core::Base64UrlDecode(token.substr(token.rfind('.') + 1), &signature);
  if (t::IsEc(key)) {  // OpenSSL's API takes the DER form
    ECDSA_SIG *sig = ECDSA_SIG_new();
    const auto *rs = reinterpret_cast<const unsigned char *>(signature.data());
    ECDSA_SIG_set0(sig, BN_bin2bn(rs, 32, nullptr), BN_bin2bn(rs + 32, 32, nullptr));
    unsigned char *der = nullptr;
    const int len = i2d_ECDSA_SIG(sig, &der);
    signature.assign(reinterpret_cast<char *>(der), static_cast<size_t>(len));
    OPENSSL_free(der);
    ECDSA_SIG_free(sig);
  }
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  auto openssl_verify = [&] {
    return EVP_DigestVerifyInit(ctx, nullptr, EVP_sha256(), nullptr, key.pkey.get()) == 1 &&
           EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char *>(signature.data()),
                            signature.size(), reinterpret_cast<const unsigned char *>(input.data()),
                            input.size()) == 1;
  };
  std::string out;
  auto ours = [&] {
    return jnx::core::VerifyToken(token, keys, policy, now, &out) == jnx::core::TokenError::kOk;
  };
  const Result result = jnx::bench::Alternate(openssl_verify, ours, rounds, seconds);
  EVP_MD_CTX_free(ctx);
  return result;
}

}  // namespace

int main(int argc, char **argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 5;
  const double seconds = argc > 2 ? std::atof(argv[2]) : 0.5;
  const long long now = kNow;
  const std::string claims =
      "{\"azp\":\"https://app.example.test\",\"exp\":" + std::to_string(now + 60) +
      ",\"fva\":[3,-1],\"iat\":" + std::to_string(now) +
      ",\"iss\":\"https://clerk.example.test\",\"jti\":\"0123456789abcdef0123\",\"nbf\":" +
      std::to_string(now - 5) +
      ",\"o\":{\"fpm\":\"3\",\"id\":\"org_2sampleOrg00000000000000\",\"per\":\"read,manage\","
      "\"rol\":\"admin\",\"slg\":\"acme\"},\"sid\":\"sess_2sampleSession000000000000\","
      "\"sts\":\"active\",\"sub\":\"user_2sampleUser0000000000000\",\"v\":2}";

  const t::Key rsa = t::GenerateRsa("ins_bench");
  const std::string rsa_token = t::Token(rsa, t::Header(rsa), claims);
  const Result r = Compare(rsa, rsa_token, rounds, seconds);
  std::printf("core session-token verify, RS256, %zu-byte Clerk v2 token, %d alternating rounds\n",
              rsa_token.size(), rounds);
  std::printf("  openssl EVP_DigestVerify RSA-2048 SHA-256: %9.0f verifies/s (median)\n",
              r.reference);
  std::printf("  jnx VerifyToken (full verification):        %9.0f verifies/s (median)\n", r.ours);
  std::printf("  ratio token/openssl: %.3f (median of per-round ratios; target >= 0.80)\n",
              r.ratio);

  const Result h = CompareCacheHit(rsa, rsa_token, rounds, seconds);
  std::printf("verified-token cache hit, the same token, %d alternating rounds\n", rounds);
  std::printf("  openssl SHA-256 of the token (its key):       %9.0f digests/s (median)\n",
              h.reference);
  std::printf("  jnx TokenCache::Find, a hit:                  %9.0f hits/s (median)\n", h.ours);
  std::printf("  ratio hit/sha256: %.3f (median of per-round ratios; 1.0 = the hash alone)\n",
              h.ratio);

  const t::Key ec = t::GenerateEc("ins_bench_ec");
  const std::string ec_token = t::Token(ec, t::Header(ec), claims);
  const Result e = Compare(ec, ec_token, rounds, seconds);
  std::printf("core session-token verify, ES256, %zu-byte Clerk v2 token, %d alternating rounds\n",
              ec_token.size(), rounds);
  std::printf("  openssl EVP_DigestVerify ECDSA P-256 SHA-256: %9.0f verifies/s (median)\n",
              e.reference);
  std::printf("  jnx VerifyToken ES256 (full verification):     %9.0f verifies/s (median)\n",
              e.ours);
  std::printf("  ratio ES256 token/openssl: %.3f (median of per-round ratios; target >= 0.80)\n",
              e.ratio);
  return 0;
}
