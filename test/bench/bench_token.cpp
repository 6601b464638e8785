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

namespace {

namespace t = jnx::testing;

struct Result {
  double reference = 0, ours = 0, ratio = 0;
};

// Alternating rounds of OpenSSL's verify and ours for one key and token.
Result Compare(const t::Key &key, const std::string &token, int rounds, double seconds) {
  jnx::core::KeySet keys;
  std::string detail;
  if (jnx::core::KeySet::Parse("{\"keys\":[" + t::Jwk(key) + "]}", &keys, &detail) !=
      jnx::core::TokenError::kOk) {
    std::fprintf(stderr, "key set refused: %s\n", detail.c_str());
    std::exit(1);
  }
  const long long now = 1764150000;
  jnx::core::TokenPolicy policy;
  policy.issuers = {"https://clerk.example.test"};
  policy.authorized_parties = {"https://app.example.test"};

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
  EVP_MD_CTX_free(ctx);
  return {jnx::bench::Median(refs), jnx::bench::Median(mine), jnx::bench::Median(ratios)};
}

}  // namespace

int main(int argc, char **argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 5;
  const double seconds = argc > 2 ? std::atof(argv[2]) : 0.5;
  const long long now = 1764150000;
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
