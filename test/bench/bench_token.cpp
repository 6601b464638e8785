// Session-token verification in the core vs OpenSSL's own RSA-2048 verify.
// Reference: EVP_DigestVerify (SHA-256, PKCS#1 v1.5) of the same token's
// signing input with the same key, context reused: the crypto alone. Ours:
// the full VerifyToken (split, base64url, JSON header and claims, key lookup,
// signature, every claim check, v2 normalization, serialization). Rounds
// alternate; the ratio is the median of per-round ratios.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "../tools/token_util.h"
#include "bench_util.h"
#include "core/jwt.h"

int main(int argc, char **argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 5;
  const double seconds = argc > 2 ? std::atof(argv[2]) : 0.5;
  namespace t = jnx::testing;
  const t::RsaKey key = t::GenerateRsa("ins_bench");
  jnx::core::KeySet keys;
  std::string detail;
  if (jnx::core::KeySet::Parse("{\"keys\":[" + t::Jwk(key) + "]}", &keys, &detail) !=
      jnx::core::TokenError::kOk) {
    return 1;
  }
  const long long now = 1764150000;
  const std::string claims =
      "{\"azp\":\"https://app.example.test\",\"exp\":" + std::to_string(now + 60) +
      ",\"fva\":[3,-1],\"iat\":" + std::to_string(now) +
      ",\"iss\":\"https://clerk.example.test\",\"jti\":\"0123456789abcdef0123\",\"nbf\":" +
      std::to_string(now - 5) +
      ",\"o\":{\"fpm\":\"3\",\"id\":\"org_2sampleOrg00000000000000\",\"per\":\"read,manage\","
      "\"rol\":\"admin\",\"slg\":\"acme\"},\"sid\":\"sess_2sampleSession000000000000\","
      "\"sts\":\"active\",\"sub\":\"user_2sampleUser0000000000000\",\"v\":2}";
  const std::string token = t::Token(key, t::Header(key), claims);
  jnx::core::TokenPolicy policy;
  policy.issuers = {"https://clerk.example.test"};
  policy.authorized_parties = {"https://app.example.test"};

  const std::string input = token.substr(0, token.rfind('.'));
  std::string signature;
  jnx::core::Base64UrlDecode(token.substr(token.rfind('.') + 1), &signature);
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
  jnx::bench::RunFor(0.2, openssl_verify);
  jnx::bench::RunFor(0.2, ours);
  std::vector<double> ratios, refs, mine;
  for (int r = 0; r < rounds; ++r) {
    const double a = jnx::bench::RunFor(seconds, openssl_verify);
    const double b = jnx::bench::RunFor(seconds, ours);
    refs.push_back(a);
    mine.push_back(b);
    ratios.push_back(b / a);
  }
  std::printf("core session-token verify, RS256, %zu-byte Clerk v2 token, %d alternating rounds\n",
              token.size(), rounds);
  std::printf("  openssl EVP_DigestVerify RSA-2048 SHA-256: %9.0f verifies/s (median)\n",
              jnx::bench::Median(refs));
  std::printf("  jnx VerifyToken (full verification):        %9.0f verifies/s (median)\n",
              jnx::bench::Median(mine));
  std::printf("  ratio token/openssl: %.3f (median of per-round ratios; target >= 0.80)\n",
              jnx::bench::Median(ratios));
  EVP_MD_CTX_free(ctx);
  return 0;
}
