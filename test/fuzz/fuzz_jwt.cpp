// libFuzzer target over the JWT parser/verifier and the JWKS parser.
// Input: one mode byte, four bytes of "now" (little-endian Unix seconds),
// then the text the mode works on:
//   0  a JWKS; when it parses, the fixture's RS256 and ES256 tokens are
//      verified against it (its keys may reuse the fixture's kids);
//   1  a token, verified against the fixture's set (an RSA and an EC key);
//   2  a claims object signed RS256 with the fixture's RSA key,
//   3  the same signed ES256 with its EC key: verification may refuse the
//      claims, but never the signature, algorithm or key, and never the
//      token's kind unless the claims name a machine ("mch_");
//   4  a JOSE header signed with the RSA key over valid claims,
//   5  the same with the EC key: any answer, but no crash (typ, cat, alg,
//      kid in every shape).
#include <jansson.h>

#include <cstdlib>
#include <string>

#include "../tools/token_util.h"
#include "core/jwt.h"

using namespace jnx::core;
namespace t = jnx::testing;

namespace {

constexpr const char *kClaims =
    "{\"sub\":\"user_fuzz\",\"iss\":\"https://clerk.example.test\",\"exp\":4100000000}";

// Whether claims (as the verifier will read them) have an "mch_" subject.
bool MachineSubject(const std::string &claims) {
  json_error_t error;
  json_t *root = json_loadb(claims.data(), claims.size(), 0, &error);
  const char *sub = json_string_value(json_object_get(root, "sub"));
  const bool machine = sub != nullptr && std::string(sub).rfind("mch_", 0) == 0;
  json_decref(root);
  return machine;
}

struct Fixture {
  t::Key rsa = t::GenerateRsa("ins_fuzz");
  t::Key ec = t::GenerateEc("ins_fuzz_ec");
  KeySet keys;
  TokenPolicy policy;
  std::string rsa_token = t::Token(rsa, t::Header(rsa), kClaims);
  std::string ec_token = t::Token(ec, t::Header(ec), kClaims);
  Fixture() {
    std::string detail;
    if (KeySet::Parse("{\"keys\":[" + t::Jwk(rsa) + "," + t::Jwk(ec, "") + "]}", &keys, &detail) !=
        TokenError::kOk) {
      std::abort();
    }
    policy.issuers = {"https://clerk.example.test"};
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static Fixture *fixture = new Fixture();
  if (size < 5) return 0;
  const int mode = data[0] % 6;
  const int64_t now = static_cast<int64_t>(data[1]) | static_cast<int64_t>(data[2]) << 8 |
                      static_cast<int64_t>(data[3]) << 16 | static_cast<int64_t>(data[4]) << 24;
  const std::string text(reinterpret_cast<const char *>(data) + 5, size - 5);
  std::string out;
  switch (mode) {
    case 0: {
      KeySet set;
      if (KeySet::Parse(text, &set, &out) == TokenError::kOk) {
        if (set.size() == 0) std::abort();
        (void)VerifyToken(fixture->rsa_token, set, fixture->policy, now, &out);
        (void)VerifyToken(fixture->ec_token, set, fixture->policy, now, &out);
      } else if (out.empty()) {
        std::abort();  // every refusal names its reason
      }
      break;
    }
    case 1: (void)VerifyToken(text, fixture->keys, fixture->policy, now, &out); break;
    case 2:
    case 3: {
      const t::Key &key = mode == 2 ? fixture->rsa : fixture->ec;
      const TokenError e = VerifyToken(t::Token(key, t::Header(key), text), fixture->keys,
                                       fixture->policy, now, &out);
      if (e == TokenError::kBadSignature || e == TokenError::kUnknownKey ||
          e == TokenError::kAlgorithmNotAllowed ||
          (e == TokenError::kWrongType && !MachineSubject(text))) {
        std::abort();
      }
      break;
    }
    default: {
      const t::Key &key = mode == 4 ? fixture->rsa : fixture->ec;
      (void)VerifyToken(t::Token(key, text, kClaims), fixture->keys, fixture->policy, now, &out);
      break;
    }
  }
  return 0;
}
