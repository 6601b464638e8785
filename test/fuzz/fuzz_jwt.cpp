// libFuzzer target over the JWT parser/verifier and the JWKS parser.
// Mode byte 0: the input is a JWKS. 1: the input is a token. 2: the input is a
// claims object that we sign with the real key: verification may refuse the
// claims, but never the signature, algorithm or key.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdlib>
#include <string>

#include "../tools/token_util.h"
#include "core/jwt.h"

using namespace jnx::core;

namespace {

struct Fixture {
  jnx::testing::RsaKey key = jnx::testing::GenerateRsa("ins_fuzz");
  KeySet keys;
  TokenPolicy policy;
  Fixture() {
    std::string detail;
    if (KeySet::Parse("{\"keys\":[" + jnx::testing::Jwk(key) + "]}", &keys, &detail) !=
        TokenError::kOk) {
      std::abort();
    }
    policy.issuers = {"https://clerk.example.test"};
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static Fixture *fixture = new Fixture();
  FuzzedDataProvider in(data, size);
  const int mode = in.ConsumeIntegralInRange<int>(0, 2);
  const int64_t now = in.ConsumeIntegralInRange<int64_t>(0, 4000000000LL);
  const std::string text = in.ConsumeRemainingBytesAsString();
  std::string out;
  if (mode == 0) {
    KeySet set;
    (void)KeySet::Parse(text, &set, &out);
  } else if (mode == 1) {
    (void)VerifyToken(text, fixture->keys, fixture->policy, now, &out);
  } else {
    const std::string token =
        jnx::testing::Token(fixture->key, jnx::testing::Header(fixture->key), text);
    const TokenError e = VerifyToken(token, fixture->keys, fixture->policy, now, &out);
    if (e == TokenError::kBadSignature || e == TokenError::kUnknownKey ||
        e == TokenError::kAlgorithmNotAllowed) {
      std::abort();
    }
  }
  return 0;
}
