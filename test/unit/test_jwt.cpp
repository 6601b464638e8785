#include <gtest/gtest.h>
#include <openssl/hmac.h>

#include <set>
#include <string>

#include "../tools/token_util.h"
#include "core/jwt.h"

using jnx::core::KeySet;
using jnx::core::TokenError;
using jnx::core::TokenPolicy;
using jnx::core::VerifyToken;
namespace t = jnx::testing;

namespace {

constexpr int64_t kNow = 1764150000;
const std::string kIss = "https://clerk.example.test";

class JwtTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    key_ = new t::RsaKey(t::GenerateRsa("ins_key1"));
    other_ = new t::RsaKey(t::GenerateRsa("ins_key2"));
    std::string detail;
    keys_ = new KeySet();
    ASSERT_EQ(KeySet::Parse("{\"keys\":[" + t::Jwk(*key_, "") + "," + t::Jwk(*other_) + "]}", keys_,
                            &detail),
              TokenError::kOk)
        << detail;
  }
  static void TearDownTestSuite() {
    delete keys_;
    delete key_;
    delete other_;
  }

  static std::string Claims(const std::string &extra = "", int64_t exp = kNow + 60) {
    return "{\"sub\":\"user_1\",\"iss\":\"" + kIss +
           "\",\"azp\":\"https://app.example.test\",\"exp\":" + std::to_string(exp) +
           ",\"iat\":" + std::to_string(kNow - 5) + ",\"nbf\":" + std::to_string(kNow - 10) +
           extra + "}";
  }
  static TokenError Check(const std::string &token, std::string *claims = nullptr,
                          TokenPolicy policy = Policy()) {
    std::string out;
    TokenError e = VerifyToken(token, *keys_, policy, kNow, &out);
    if (claims != nullptr) *claims = out;
    return e;
  }
  static TokenPolicy Policy() {
    TokenPolicy p;
    p.issuers = {kIss};
    p.authorized_parties = {"https://app.example.test"};
    return p;
  }

  static t::RsaKey *key_;
  static t::RsaKey *other_;
  static KeySet *keys_;
};
t::RsaKey *JwtTest::key_ = nullptr;
t::RsaKey *JwtTest::other_ = nullptr;
KeySet *JwtTest::keys_ = nullptr;

}  // namespace

TEST(Base64Url, RoundTripAndStrictness) {
  const std::vector<std::string> samples = {"",    "f",    "fo",
                                            "foo", "foob", std::string("\xff\xfe\x00", 3)};
  for (const std::string &s : samples) {
    std::string out;
    EXPECT_TRUE(jnx::core::Base64UrlDecode(jnx::core::Base64UrlEncode(s), &out));
    EXPECT_EQ(out, s);
  }
  std::string out;
  for (const char *bad : {"Zg==", "Zm+v", "Zm/v", "Z", "Zh", "Zm9 v", "Zm9v\n"}) {
    EXPECT_FALSE(jnx::core::Base64UrlDecode(bad, &out)) << bad;
  }
}

TEST_F(JwtTest, ValidTokensOfEveryRsaAlgorithm) {
  std::string claims;
  EXPECT_EQ(Check(t::Token(*key_, t::Header(*key_), Claims()), &claims), TokenError::kOk);
  EXPECT_NE(claims.find("\"sub\":\"user_1\""), std::string::npos);
  // The first key has no "alg": any RS* is accepted for it.
  EXPECT_EQ(Check(t::Token(*key_, t::Header(*key_, "RS384"), Claims(), "RS384")), TokenError::kOk);
  EXPECT_EQ(Check(t::Token(*key_, t::Header(*key_, "RS512"), Claims(), "RS512")), TokenError::kOk);
}

TEST_F(JwtTest, KeyWithAlgAcceptsOnlyThatAlg) {
  EXPECT_EQ(Check(t::Token(*other_, t::Header(*other_), Claims())), TokenError::kOk);
  EXPECT_EQ(Check(t::Token(*other_, t::Header(*other_, "RS512"), Claims(), "RS512")),
            TokenError::kAlgorithmNotAllowed);
}

TEST_F(JwtTest, NormalizesClaimsV2) {
  std::string claims;
  const std::string v2 = Claims(
      ",\"v\":2,\"o\":{\"id\":\"org_1\",\"slg\":\"acme\",\"rol\":\"admin\",\"per\":\"read,manage\","
      "\"fpm\":\"3\"}");
  ASSERT_EQ(Check(t::Token(*key_, t::Header(*key_), v2), &claims), TokenError::kOk);
  EXPECT_NE(claims.find("\"org_id\":\"org_1\""), std::string::npos) << claims;
  EXPECT_NE(claims.find("\"org_role\":\"org:admin\""), std::string::npos) << claims;
  EXPECT_NE(claims.find("\"org_slug\":\"acme\""), std::string::npos) << claims;
  EXPECT_NE(claims.find("\"org_permissions\":[\"read\",\"manage\"]"), std::string::npos) << claims;
  const std::string v1 = Claims(
      ",\"org_id\":\"org_2\",\"org_role\":\"org:member\",\"org_slug\":\"b\",\"org_permissions\":["
      "]");
  ASSERT_EQ(Check(t::Token(*key_, t::Header(*key_), v1), &claims), TokenError::kOk);
  EXPECT_NE(claims.find("\"org_role\":\"org:member\""), std::string::npos) << claims;
}

TEST_F(JwtTest, LeewayIsFiveSecondsByDefault) {
  EXPECT_EQ(Check(t::Token(*key_, t::Header(*key_), Claims("", kNow - 4))), TokenError::kOk);
  EXPECT_EQ(Check(t::Token(*key_, t::Header(*key_), Claims("", kNow - 5))), TokenError::kExpired);
}

// Every token here must be refused, each for its own reason.
TEST_F(JwtTest, HostileTokens) {
  const std::string good = t::Token(*key_, t::Header(*key_), Claims());
  const std::string h64 = good.substr(0, good.find('.'));
  const std::string rest = good.substr(good.find('.') + 1);
  const std::string p64 = rest.substr(0, rest.find('.'));
  const std::string s64 = rest.substr(rest.find('.') + 1);
  const auto b64 = [](const std::string &s) { return jnx::core::Base64UrlEncode(s); };
  const t::RsaKey stranger = t::GenerateRsa("ins_key1");  // same kid, different key

  // HS256 signed with the public key's JWK text as the secret (algorithm confusion).
  const std::string hs_input = b64("{\"alg\":\"HS256\",\"kid\":\"ins_key1\"}") + "." + p64;
  unsigned char mac[32];
  unsigned int mac_len = 0;
  const std::string jwk = t::Jwk(*key_, "");
  HMAC(EVP_sha256(), jwk.data(), static_cast<int>(jwk.size()),
       reinterpret_cast<const unsigned char *>(hs_input.data()), hs_input.size(), mac, &mac_len);
  const std::string hs256 =
      hs_input + "." + b64(std::string(reinterpret_cast<char *>(mac), mac_len));

  std::string flipped_sig = s64;
  flipped_sig[10] = flipped_sig[10] == 'A' ? 'B' : 'A';
  TokenPolicy no_parties = Policy();
  no_parties.authorized_parties.clear();

  const std::vector<std::pair<std::string, TokenError>> cases = {
      {t::Token(*key_, t::Header(*key_), Claims("", kNow - 100)), TokenError::kExpired},
      {t::Token(*key_, t::Header(*key_),
                "{\"sub\":\"u\",\"iss\":\"" + kIss +
                    "\",\"azp\":\"https://app.example.test\",\"exp\":" + std::to_string(kNow + 60) +
                    ",\"nbf\":" + std::to_string(kNow + 100) + "}"),
       TokenError::kNotYetValid},
      {t::Token(*key_, t::Header(*key_),
                "{\"sub\":\"u\",\"iss\":\"" + kIss +
                    "\",\"azp\":\"https://app.example.test\",\"exp\":" +
                    std::to_string(kNow + 600) + ",\"iat\":" + std::to_string(kNow + 100) + "}"),
       TokenError::kNotYetValid},
      {h64 + "." + b64("{\"sub\":\"user_admin\",\"iss\":\"" + kIss + "\",\"exp\":9999999999}") +
           "." + s64,
       TokenError::kBadSignature},
      {h64 + "." + p64 + "." + flipped_sig, TokenError::kBadSignature},
      {b64("{\"alg\":\"none\",\"kid\":\"ins_key1\"}") + "." + p64 + ".", TokenError::kMalformed},
      {b64("{\"alg\":\"none\",\"kid\":\"ins_key1\"}") + "." + p64 + "." + s64,
       TokenError::kAlgorithmNotAllowed},
      {hs256, TokenError::kAlgorithmNotAllowed},
      {b64("{\"alg\":\"ES256\",\"kid\":\"ins_key1\"}") + "." + p64 + "." + s64,
       TokenError::kAlgorithmNotAllowed},
      {b64("{\"alg\":\"PS256\",\"kid\":\"ins_key1\"}") + "." + p64 + "." + s64,
       TokenError::kAlgorithmNotAllowed},
      {b64("{\"alg\":\"rs256\",\"kid\":\"ins_key1\"}") + "." + p64 + "." + s64,
       TokenError::kAlgorithmNotAllowed},
      {t::Token(stranger, t::Header(stranger), Claims()), TokenError::kBadSignature},
      {t::Token(*key_, "{\"alg\":\"RS256\",\"kid\":\"ins_nope\"}", Claims()),
       TokenError::kUnknownKey},
      {t::Token(*key_, "{\"alg\":\"RS256\"}", Claims()), TokenError::kUnknownKey},
      {t::Token(*key_, "{\"alg\":\"RS256\",\"kid\":7}", Claims()), TokenError::kUnknownKey},
      {t::Token(*key_, t::Header(*key_),
                Claims().replace(Claims().find(kIss), kIss.size(), "https://evil.example")),
       TokenError::kWrongIssuer},
      {t::Token(*key_, t::Header(*key_),
                "{\"sub\":\"u\",\"exp\":" + std::to_string(kNow + 60) +
                    ",\"azp\":\"https://app.example.test\"}"),
       TokenError::kWrongIssuer},
      {t::Token(*key_, t::Header(*key_),
                "{\"sub\":\"u\",\"iss\":\"" + kIss +
                    "\",\"azp\":\"https://evil.example\",\"exp\":" + std::to_string(kNow + 60) +
                    "}"),
       TokenError::kWrongParty},
      {t::Token(
           *key_, t::Header(*key_),
           "{\"sub\":\"u\",\"iss\":\"" + kIss + "\",\"exp\":" + std::to_string(kNow + 60) + "}"),
       TokenError::kWrongParty},
      {t::Token(*key_, t::Header(*key_),
                "{\"iss\":\"" + kIss + "\",\"azp\":\"https://app.example.test\",\"exp\":" +
                    std::to_string(kNow + 60) + "}"),
       TokenError::kMalformed},
      {t::Token(
           *key_, t::Header(*key_),
           "{\"sub\":\"\",\"iss\":\"" + kIss + "\",\"exp\":" + std::to_string(kNow + 60) + "}"),
       TokenError::kMalformed},
      {t::Token(*key_, t::Header(*key_),
                "{\"sub\":\"u\",\"iss\":\"" + kIss + "\",\"exp\":\"" + std::to_string(kNow + 60) +
                    "\"}"),
       TokenError::kMalformed},
      {t::Token(*key_, t::Header(*key_), "{\"sub\":\"u\",\"iss\":\"" + kIss + "\"}"),
       TokenError::kMalformed},
      {t::Token(*key_, t::Header(*key_),
                "{\"sub\":\"u\",\"iss\":\"" + kIss + "\",\"exp\":" + std::to_string(kNow + 60) +
                    ",\"nbf\":null}"),
       TokenError::kMalformed},
      {t::Token(*key_, t::Header(*key_), "[1,2,3]"), TokenError::kMalformed},
      {t::Token(*key_, t::Header(*key_), "\"just a string\""), TokenError::kMalformed},
      {t::Token(*key_, "[\"RS256\"]", Claims()), TokenError::kMalformed},
      {t::Token(*key_, t::Header(*key_),
                "{\"sub\":\"u\",\"sub\":\"admin\",\"iss\":\"" + kIss +
                    "\",\"exp\":" + std::to_string(kNow + 60) + "}"),
       TokenError::kMalformed},
      {h64 + "." + p64, TokenError::kMalformed},
      {h64 + "." + p64 + "." + s64 + ".x", TokenError::kMalformed},
      {h64 + "." + p64 + "." + s64 + "=", TokenError::kMalformed},
      {h64 + "." + p64 + ".." + s64, TokenError::kMalformed},
      {h64 + "+." + p64 + "." + s64, TokenError::kMalformed},
      {"", TokenError::kMalformed},
      {"...", TokenError::kMalformed},
      {t::Token(*key_, t::Header(*key_),
                Claims(",\"pad\":\"" + std::string(100 * 1024, 'a') + "\"")),
       TokenError::kMalformed},
      {"Bearer " + good, TokenError::kMalformed},
  };
  ASSERT_GE(cases.size(), 30u);
  for (size_t i = 0; i < cases.size(); ++i) {
    EXPECT_EQ(Check(cases[i].first), cases[i].second) << "case " << i;
  }
  // Without configured parties a missing azp is fine.
  EXPECT_EQ(Check(t::Token(*key_, t::Header(*key_),
                           "{\"sub\":\"u\",\"iss\":\"" + kIss +
                               "\",\"exp\":" + std::to_string(kNow + 60) + "}"),
                  nullptr, no_parties),
            TokenError::kOk);
}

// Clerk's session verification refuses tokens of another kind by their JOSE
// header (typ, cat) and M2M tokens by their subject; so do we, as wrong_type.
TEST_F(JwtTest, TokensOfAnotherKind) {
  const auto with_header = [](const std::string &members) {
    return t::Token(*key_, "{\"alg\":\"RS256\",\"kid\":\"ins_key1\"" + members + "}", Claims());
  };
  // typ: absent or exactly "JWT".
  EXPECT_EQ(Check(with_header("")), TokenError::kOk);
  EXPECT_EQ(Check(with_header(",\"typ\":\"JWT\"")), TokenError::kOk);
  for (const char *typ :
       {"\"at+jwt\"", "\"application/at+jwt\"", "\"JWS\"", "\"jwt\"", "\"Jwt\"", "\"\"", "\"JWT \"",
        "\"application/jwt\"", "1", "null", "true", "[\"JWT\"]", "{\"JWT\":1}"}) {
    EXPECT_EQ(Check(with_header(std::string(",\"typ\":") + typ)), TokenError::kWrongType) << typ;
  }
  // cat: absent, the session-token category, or the "ignore" tag.
  EXPECT_EQ(Check(with_header(",\"typ\":\"JWT\",\"cat\":\"cl_B7d4PD111AAA\"")), TokenError::kOk);
  EXPECT_EQ(Check(with_header(",\"cat\":\"cl_I7d4PD111III\"")), TokenError::kOk);
  for (const char *cat : {"\"cl_B7d4PD222AAA\"", "\"cl_B7d4PD333AAA\"", "\"cl_b7d4pd111aaa\"",
                          "\"CL_B7D4PD111AAA\"", "\"cl_B7d4PD111AAA \"", "\"cl_B7d4PD444AAA\"",
                          "\"\"", "\"session\"", "111", "null", "[\"cl_B7d4PD111AAA\"]"}) {
    EXPECT_EQ(Check(with_header(std::string(",\"typ\":\"JWT\",\"cat\":") + cat)),
              TokenError::kWrongType)
        << cat;
  }
  // Checked from the header, before the signature: a bad signature does not matter.
  const std::string oauth = with_header(",\"typ\":\"at+jwt\"");
  EXPECT_EQ(Check(oauth.substr(0, oauth.rfind('.') + 1) + "AAAA"), TokenError::kWrongType);
  // A repeated member is malformed, not a choice between two values.
  EXPECT_EQ(Check(with_header(",\"typ\":\"JWT\",\"typ\":\"at+jwt\"")), TokenError::kMalformed);
  // An M2M token (a machine's subject, "mch_"), even signed with a session header.
  const std::string m2m =
      "{\"sub\":\"mch_2xyz\",\"iss\":\"" + kIss +
      "\",\"azp\":\"https://app.example.test\",\"exp\":" + std::to_string(kNow + 60) + "}";
  EXPECT_EQ(Check(t::Token(*key_, t::Header(*key_), m2m)), TokenError::kWrongType);
  std::string upper = m2m;
  upper.replace(upper.find("mch_"), 4, "MCH_");
  EXPECT_EQ(Check(t::Token(*key_, t::Header(*key_), upper)), TokenError::kOk);
  EXPECT_STREQ(jnx::core::TokenErrorName(TokenError::kWrongType), "wrong_type");
}

TEST(JwksParse, RejectsUnusableKeySets) {
  const t::RsaKey small = t::GenerateRsa("small", 1024);
  const t::RsaKey key = t::GenerateRsa("k");
  KeySet set;
  std::string detail;
  const std::vector<std::string> bad_sets = {
      std::string("[]"),
      std::string("{}"),
      std::string("{\"keys\":[]}"),
      std::string("{\"keys\":[1]}"),
      "{\"keys\":[" + t::Jwk(small) + "]}",
      "{\"keys\":[" + t::Jwk(key) + "," + t::Jwk(key) + "]}",
      "{\"keys\":[{\"kty\":\"oct\",\"kid\":\"h\",\"k\":\"c2VjcmV0\"}]}",
      "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"x\",\"n\":\"AQAB\"}]}",
      "{\"keys\":[" + t::Jwk(key, "HS256") + "]}"};
  for (const std::string &bad : bad_sets) {
    EXPECT_EQ(KeySet::Parse(bad, &set, &detail), TokenError::kInvalidJwks) << bad.substr(0, 80);
    EXPECT_FALSE(detail.empty());
  }
  EXPECT_EQ(KeySet::Parse("{\"keys\":[" + t::Jwk(key) + "]}", &set, &detail), TokenError::kOk);
  EXPECT_EQ(set.size(), 1u);
}

TEST(TokenErrors, EveryErrorHasItsOwnName) {
  std::set<std::string> names;
  for (int e = 0; e <= static_cast<int>(TokenError::kWrongType); ++e) {
    const std::string name = jnx::core::TokenErrorName(static_cast<TokenError>(e));
    EXPECT_NE(name, "unknown") << e;
    EXPECT_TRUE(names.insert(name).second) << name;
  }
}
