#include <gtest/gtest.h>
#include <jansson.h>
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

// The v1 names are written into the verified text: whatever the strings
// hold, the result is JSON that says the same.
TEST_F(JwtTest, NormalizedClaimsStayValidJson) {
  const std::string odd = "a\\\"b\\\\c\\n\\t\\u0001\\u001f/\\u00e9\\u2028\\ud83d\\ude00";
  const std::string v2 = Claims(",\"v\":2,\"o\":{\"id\":\"" + odd + "\",\"slg\":\"" + odd +
                                "\",\"rol\":\"" + odd + "\",\"per\":\"," + odd + ",,x,\"}");
  std::string claims;
  ASSERT_EQ(Check(t::Token(*key_, t::Header(*key_), v2), &claims), TokenError::kOk);
  json_error_t error;
  json_t *parsed = json_loads(claims.c_str(), JSON_REJECT_DUPLICATES, &error);
  ASSERT_NE(parsed, nullptr) << claims;
  const char *want = json_string_value(json_object_get(json_object_get(parsed, "o"), "id"));
  ASSERT_NE(want, nullptr);
  EXPECT_STREQ(json_string_value(json_object_get(parsed, "org_id")), want);
  EXPECT_STREQ(json_string_value(json_object_get(parsed, "org_slug")), want);
  EXPECT_EQ(json_string_value(json_object_get(parsed, "org_role")), "org:" + std::string(want));
  const json_t *perms = json_object_get(parsed, "org_permissions");
  ASSERT_EQ(json_array_size(perms), 2u) << claims;
  EXPECT_STREQ(json_string_value(json_array_get(perms, 0)), want);
  EXPECT_STREQ(json_string_value(json_array_get(perms, 1)), "x");
  json_decref(parsed);
  // No "per", no "rol": an empty permission list, no role.
  ASSERT_EQ(Check(t::Token(*key_, t::Header(*key_), Claims(",\"o\":{\"id\":\"org_9\"}")), &claims),
            TokenError::kOk);
  EXPECT_NE(claims.find(",\"org_id\":\"org_9\",\"org_permissions\":[]}"), std::string::npos)
      << claims;
  EXPECT_EQ(claims.find("org_role"), std::string::npos) << claims;
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

namespace {

std::string B64(const std::string &bytes) {
  return jnx::core::Base64UrlEncode(bytes);
}

// An RSA JWK built by hand from raw n and e (big-endian bytes).
std::string RsaJwk(const std::string &kid, const std::string &n, const std::string &e,
                   const std::string &extra = "") {
  return "{\"kty\":\"RSA\",\"kid\":\"" + kid + "\",\"n\":\"" + B64(n) + "\",\"e\":\"" + B64(e) +
         "\"" + extra + "}";
}

std::string Set(const std::vector<std::string> &jwks) {
  std::string set = "{\"keys\":[";
  for (size_t i = 0; i < jwks.size(); ++i) set += (i > 0 ? "," : "") + jwks[i];
  return set + "]}";
}

// A fabricated odd modulus of exactly `bits` bits (not a real key: parsing
// must judge it by its size alone).
std::string Modulus(size_t bits) {
  std::string n((bits + 7) / 8, '\x5a');
  const size_t top_bits = bits % 8 == 0 ? 8 : bits % 8;
  n[0] = static_cast<char>(1u << (top_bits - 1));
  n.back() = '\x01';
  return n;
}

const std::string kE65537("\x01\x00\x01", 3);

TokenError ParseSet(const std::string &json, KeySet *set = nullptr, std::string *detail = nullptr) {
  KeySet local;
  std::string why;
  const TokenError e = KeySet::Parse(json, set != nullptr ? set : &local, &why);
  if (detail != nullptr) *detail = why;
  return e;
}

}  // namespace

// RFC 7517 section 5: keys we do not understand or cannot verify with are
// ignored; the set stands as long as one usable key remains.
TEST(JwksParse, IgnoresKeysItCannotUse) {
  const t::RsaKey good = t::GenerateRsa("good");
  const t::RsaKey spare = t::GenerateRsa("spare");
  const std::string n = t::BnBytes(spare.pkey.get(), OSSL_PKEY_PARAM_RSA_N);
  const std::vector<std::string> unusable = {
      RsaJwk("enc", n, kE65537, ",\"use\":\"enc\""), RsaJwk("use_number", n, kE65537, ",\"use\":1"),
      RsaJwk("ops", n, kE65537, ",\"key_ops\":[\"encrypt\",\"wrapKey\"]"),
      RsaJwk("ops_string", n, kE65537, ",\"key_ops\":\"verify\""),
      RsaJwk("oaep", n, kE65537, ",\"alg\":\"RSA-OAEP\""),
      RsaJwk("ps256", n, kE65537, ",\"alg\":\"PS256\""),
      RsaJwk("hs256", n, kE65537, ",\"alg\":\"HS256\""),
      RsaJwk("es256", n, kE65537, ",\"alg\":\"ES256\""),
      RsaJwk("lower", n, kE65537, ",\"alg\":\"rs256\""),
      RsaJwk("alg_number", n, kE65537, ",\"alg\":256"),
      "{\"kty\":\"RSA\",\"n\":\"" + B64(n) + "\",\"e\":\"AQAB\"}",
      "{\"kty\":\"RSA\",\"kid\":\"\",\"n\":\"" + B64(n) + "\",\"e\":\"AQAB\"}",
      "{\"kty\":\"RSA\",\"kid\":7,\"n\":\"" + B64(n) + "\",\"e\":\"AQAB\"}",
      "{\"kty\":\"oct\",\"kid\":\"hmac\",\"k\":\"c2VjcmV0c2VjcmV0c2VjcmV0\"}",
      "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"ed\",\"x\":"
      "\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}",
      "{\"kty\":\"rsa\",\"kid\":\"lower_kty\",\"n\":\"" + B64(n) + "\",\"e\":\"AQAB\"}",
      "{\"kty\":5,\"kid\":\"kty_number\"}", "{\"kid\":\"no_kty\"}",
      // Weak or broken material in a key we would not use anyway: ignored.
      RsaJwk("enc_weak", n, std::string("\x01", 1), ",\"use\":\"enc\""),
      "{\"kty\":\"oct\",\"kid\":\"good\",\"k\":\"AA\"}",  // same kid as the usable key
  };
  const std::string token = t::Token(
      good, t::Header(good),
      "{\"sub\":\"u\",\"iss\":\"" + kIss + "\",\"exp\":" + std::to_string(kNow + 60) + "}");
  TokenPolicy policy;
  policy.issuers = {kIss};
  for (const std::string &jwk : unusable) {
    KeySet set;
    std::string detail;
    ASSERT_EQ(ParseSet(Set({jwk, t::Jwk(good)}), &set, &detail), TokenError::kOk) << jwk << detail;
    EXPECT_EQ(set.size(), 1u) << jwk;
    std::string claims;
    EXPECT_EQ(VerifyToken(token, set, policy, kNow, &claims), TokenError::kOk) << jwk;
  }
  // All of them at once are more than 16 entries: that alone refuses the set.
  EXPECT_EQ(ParseSet(Set(unusable)), TokenError::kInvalidJwks);
  // A token naming a skipped key finds no key.
  KeySet set;
  ASSERT_EQ(ParseSet(Set({unusable[0], t::Jwk(good)}), &set), TokenError::kOk);
  const std::string enc_token =
      t::Token(spare, "{\"alg\":\"RS256\",\"kid\":\"enc\"}", "{\"sub\":\"u\"}");
  std::string claims;
  EXPECT_EQ(VerifyToken(enc_token, set, policy, kNow, &claims), TokenError::kUnknownKey);
  // key_ops that allow verify, and use "sig", are usable.
  ASSERT_EQ(
      ParseSet(Set({RsaJwk("ops_ok", n, kE65537, ",\"use\":\"sig\",\"key_ops\":[\"verify\"]")}),
               &set),
      TokenError::kOk);
  EXPECT_EQ(set.size(), 1u);
}

TEST(JwksParse, RefusesASetWithNoUsableKey) {
  const t::RsaKey spare = t::GenerateRsa("spare");
  const std::string n = t::BnBytes(spare.pkey.get(), OSSL_PKEY_PARAM_RSA_N);
  std::string detail;
  EXPECT_EQ(ParseSet(Set({RsaJwk("ins_enc", n, kE65537, ",\"use\":\"enc\"")}), nullptr, &detail),
            TokenError::kInvalidJwks);
  EXPECT_NE(detail.find("no key in the set can verify"), std::string::npos) << detail;
  EXPECT_NE(detail.find("\"ins_enc\""), std::string::npos) << detail;
  EXPECT_EQ(detail.find(B64(n).substr(0, 16)), std::string::npos) << detail;  // no key material
  EXPECT_EQ(ParseSet(Set({"{\"kty\":\"oct\",\"kid\":\"a\",\"k\":\"c2VjcmV0\"}",
                          "{\"kty\":\"OKP\",\"kid\":\"b\",\"crv\":\"X25519\",\"x\":\"AAAA\"}",
                          RsaJwk("", n, kE65537)}),
                     nullptr, &detail),
            TokenError::kInvalidJwks);
  EXPECT_NE(detail.find("(and 2 more skipped)"), std::string::npos) << detail;
  EXPECT_EQ(detail.find("c2VjcmV0"), std::string::npos) << detail;
  // A hostile kid is quoted safely and cut short.
  EXPECT_EQ(ParseSet(Set({"{\"kty\":\"oct\",\"kid\":\"a\\\"b\\n" + std::string(200, 'x') + "\"}"}),
                     nullptr, &detail),
            TokenError::kInvalidJwks);
  EXPECT_NE(detail.find("key \"a?b?xxx"), std::string::npos) << detail;
  EXPECT_LT(detail.size(), 200u) << detail;
}

// Keys that would make forgery trivial refuse the whole set, not just themselves.
TEST(JwksParse, RefusesWeakRsaKeys) {
  const t::RsaKey real = t::GenerateRsa("real");
  const std::string n = t::BnBytes(real.pkey.get(), OSSL_PKEY_PARAM_RSA_N);
  ASSERT_EQ(n.size(), 256u);
  const std::string zero("\0", 1);
  const std::vector<std::pair<std::string, std::string>> weak = {
      {"e = 1", RsaJwk("w", n, "\x01")},
      {"e = 1 padded", RsaJwk("w", n, zero + zero + "\x01")},
      {"e = 2", RsaJwk("w", n, "\x02")},
      {"e = 0", RsaJwk("w", n, zero)},
      {"e empty", RsaJwk("w", n, "")},
      {"e = 4", RsaJwk("w", n, "\x04")},
      {"e = 65536", RsaJwk("w", n, std::string("\x01\x00\x00", 3))},
      {"e = 2^64 + 1", RsaJwk("w", n, "\x01" + std::string(7, '\0') + "\x01")},
      {"e = 2^65 - 1", RsaJwk("w", n, "\x01" + std::string(8, '\xff'))},
      {"1024-bit key", t::Jwk(t::GenerateRsa("w", 1024))},
      {"2047 bits", RsaJwk("w", Modulus(2047), kE65537)},
      {"2047 bits behind a zero byte", RsaJwk("w", zero + Modulus(2047), kE65537)},
      {"8193 bits", RsaJwk("w", Modulus(8193), kE65537)},
      {"16384 bits", RsaJwk("w", Modulus(16384), kE65537)},
      {"even modulus", RsaJwk("w", n.substr(0, 255) + "\x02", kE65537)},
      {"n empty", RsaJwk("w", "", kE65537)},
      {"n missing", "{\"kty\":\"RSA\",\"kid\":\"w\",\"e\":\"AQAB\"}"},
      {"e missing", "{\"kty\":\"RSA\",\"kid\":\"w\",\"n\":\"" + B64(n) + "\"}"},
      {"n not base64url",
       "{\"kty\":\"RSA\",\"kid\":\"w\",\"e\":\"AQAB\",\"n\":\"" + B64(n) + "=\"}"},
      {"e a number", "{\"kty\":\"RSA\",\"kid\":\"w\",\"e\":65537,\"n\":\"" + B64(n) + "\"}"},
  };
  for (const auto &[name, jwk] : weak) {
    std::string detail;
    EXPECT_EQ(ParseSet(Set({t::Jwk(real), jwk}), nullptr, &detail), TokenError::kInvalidJwks)
        << name;
    EXPECT_NE(detail.find("key \"w\""), std::string::npos) << name << ": " << detail;
    EXPECT_EQ(detail.find(B64(n).substr(0, 16)), std::string::npos) << detail;
  }
  std::string detail;
  ParseSet(Set({RsaJwk("w", Modulus(8193), kE65537)}), nullptr, &detail);
  EXPECT_NE(detail.find("8193 bits"), std::string::npos) << detail;
  ParseSet(Set({RsaJwk("w", n, "\x01")}), nullptr, &detail);
  EXPECT_NE(detail.find("weak public exponent"), std::string::npos) << detail;

  // Accepted: e = 3, 65537 (also with leading zero bytes), 2^64 - 1; moduli of
  // exactly 2048 and 8192 bits; a real modulus behind leading zero bytes
  // (measured by its real length), which still verifies.
  const std::vector<std::string> fine = {
      RsaJwk("f", n, "\x03"),
      RsaJwk("f", n, kE65537),
      RsaJwk("f", n, zero + zero + kE65537),
      RsaJwk("f", n, std::string(8, '\xff')),
      RsaJwk("f", Modulus(2048), kE65537),
      RsaJwk("f", Modulus(8192), kE65537),
      RsaJwk("f", zero + zero + Modulus(2048), kE65537),
  };
  for (const std::string &jwk : fine) {
    EXPECT_EQ(ParseSet(Set({jwk}), nullptr, &detail), TokenError::kOk) << detail;
  }
  KeySet set;
  ASSERT_EQ(ParseSet(Set({RsaJwk("real", zero + zero + n, zero + kE65537)}), &set),
            TokenError::kOk);
  TokenPolicy policy;
  policy.issuers = {kIss};
  std::string claims;
  EXPECT_EQ(VerifyToken(t::Token(real, t::Header(real),
                                 "{\"sub\":\"u\",\"iss\":\"" + kIss +
                                     "\",\"exp\":" + std::to_string(kNow + 60) + "}"),
                        set, policy, kNow, &claims),
            TokenError::kOk);
}

TEST(JwksParse, DuplicateKidsAmongUsableKeysAreRefused) {
  const t::RsaKey a = t::GenerateRsa("same");
  const t::RsaKey b = t::GenerateRsa("same");
  std::string detail;
  EXPECT_EQ(ParseSet(Set({t::Jwk(a), t::Jwk(b)}), nullptr, &detail), TokenError::kInvalidJwks);
  EXPECT_NE(detail.find("\"same\" appears twice"), std::string::npos) << detail;
}

namespace {

// A set with EC P-256 keys (one naming alg ES256, one naming none) beside an
// RSA key.
class Es256Test : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ec_ = new t::EcKey(t::GenerateEc("ins_ec"));
    ec_alg_ = new t::EcKey(t::GenerateEc("ins_ec_alg"));
    rsa_ = new t::RsaKey(t::GenerateRsa("ins_rsa"));
    keys_ = new KeySet();
    std::string detail;
    ASSERT_EQ(KeySet::Parse(Set({t::Jwk(*ec_, ""), t::Jwk(*ec_alg_, "ES256"), t::Jwk(*rsa_)}),
                            keys_, &detail),
              TokenError::kOk)
        << detail;
    ASSERT_EQ(keys_->size(), 3u);
  }
  static void TearDownTestSuite() {
    delete keys_;
    delete ec_;
    delete ec_alg_;
    delete rsa_;
  }
  static std::string Claims() {
    return "{\"sub\":\"user_1\",\"iss\":\"" + kIss + "\",\"exp\":" + std::to_string(kNow + 60) +
           ",\"v\":2,\"o\":{\"id\":\"org_1\",\"rol\":\"admin\"}}";
  }
  static TokenError Check(const std::string &token) {
    TokenPolicy policy;
    policy.issuers = {kIss};
    std::string out;
    return VerifyToken(token, *keys_, policy, kNow, &out);
  }
  // A token whose signature part is `sig` (raw bytes), over a valid ES256 input.
  static std::string WithSignature(const std::string &sig) {
    const std::string good = t::Token(*ec_, t::Header(*ec_), Claims());
    return good.substr(0, good.rfind('.') + 1) + B64(sig);
  }
  static std::string SigningInput(const std::string &token) {
    return token.substr(0, token.rfind('.'));
  }
  static std::string SignatureOf(const std::string &token) {
    std::string sig;
    jnx::core::Base64UrlDecode(token.substr(token.rfind('.') + 1), &sig);
    return sig;
  }

  static t::EcKey *ec_;
  static t::EcKey *ec_alg_;
  static t::RsaKey *rsa_;
  static KeySet *keys_;
};
t::EcKey *Es256Test::ec_ = nullptr;
t::EcKey *Es256Test::ec_alg_ = nullptr;
t::RsaKey *Es256Test::rsa_ = nullptr;
KeySet *Es256Test::keys_ = nullptr;

}  // namespace

TEST_F(Es256Test, ValidTokensVerify) {
  EXPECT_EQ(Check(t::Token(*ec_, t::Header(*ec_), Claims())), TokenError::kOk);
  EXPECT_EQ(Check(t::Token(*ec_alg_, t::Header(*ec_alg_), Claims())), TokenError::kOk);
  EXPECT_EQ(Check(t::Token(*rsa_, t::Header(*rsa_), Claims())), TokenError::kOk);
  TokenPolicy policy;
  policy.issuers = {kIss};
  std::string claims;
  jnx::core::TokenIdentity who;
  ASSERT_EQ(
      VerifyToken(t::Token(*ec_, t::Header(*ec_), Claims()), *keys_, policy, kNow, &claims, &who),
      TokenError::kOk);
  EXPECT_EQ(who.sub, "user_1");
  EXPECT_EQ(who.org_role, "org:admin");
  // r and s are fixed-width in JWS but minimal in DER: a component with a
  // leading zero byte (1 in 128 signatures) and one with its top bit set (1
  // in 2) must both convert. Sign until each has been seen.
  bool short_seen = false, high_seen = false;
  for (int i = 0; i < 5000 && !(short_seen && high_seen); ++i) {
    const std::string token = t::Token(*ec_, t::Header(*ec_),
                                       "{\"sub\":\"u" + std::to_string(i) + "\",\"iss\":\"" + kIss +
                                           "\",\"exp\":" + std::to_string(kNow + 60) + "}");
    const std::string sig = SignatureOf(token);
    const bool is_short = sig[0] == '\0' || sig[32] == '\0';
    const bool is_high = (sig[0] & 0x80) != 0 || (sig[32] & 0x80) != 0;
    if ((is_short && !short_seen) || (is_high && !high_seen)) {
      EXPECT_EQ(Check(token), TokenError::kOk) << i;
      short_seen = short_seen || is_short;
      high_seen = high_seen || is_high;
    }
  }
  EXPECT_TRUE(short_seen && high_seen);
}

TEST_F(Es256Test, BadSignaturesAreRefused) {
  const std::string good = t::Token(*ec_, t::Header(*ec_), Claims());
  const std::string sig = SignatureOf(good);
  ASSERT_EQ(sig.size(), 64u);
  std::string flipped = sig;
  flipped[40] = static_cast<char>(flipped[40] ^ 0x01);
  const std::string der = t::SignWithOpenSsl(*ec_, "ES256", SigningInput(good));
  const std::string zero32(32, '\0');
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"flipped bit", WithSignature(flipped)},
      {"63 bytes", WithSignature(sig.substr(0, 63))},
      {"65 bytes", WithSignature(sig + '\0')},
      {"65 bytes, zero first", WithSignature('\0' + sig)},
      {"128 bytes", WithSignature(sig + sig)},
      {"DER of the same signature", good.substr(0, good.rfind('.') + 1) + B64(der)},
      {"r = 0", WithSignature(zero32 + sig.substr(32))},
      {"s = 0", WithSignature(sig.substr(0, 32) + zero32)},
      {"all ones", WithSignature(std::string(64, '\xff'))},
      {"s and r swapped", WithSignature(sig.substr(32) + sig.substr(0, 32))},
      {"another key's signature", t::Token(*ec_alg_, t::Header(*ec_), Claims())},
      {"another payload", SigningInput(good).substr(0, good.find('.') + 1) +
                              B64("{\"sub\":\"admin\"}") + "." + B64(sig)},
  };
  for (const auto &[name, token] : bad) EXPECT_EQ(Check(token), TokenError::kBadSignature) << name;
}

// OpenSSL accepts (r, n - s) as well as (r, s); JWS (RFC 7518) does not ask
// for low s, and nothing here keys on signature bytes, so we accept it too.
TEST_F(Es256Test, HighSIsAccepted) {
  const std::string good = t::Token(*ec_, t::Header(*ec_), Claims());
  const std::string sig = SignatureOf(good);
  BIGNUM *order = nullptr;
  ASSERT_NE(BN_hex2bn(&order, "FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551"),
            0);
  BIGNUM *s = BN_bin2bn(reinterpret_cast<const unsigned char *>(sig.data()) + 32, 32, nullptr);
  BIGNUM *other = BN_new();
  ASSERT_EQ(BN_sub(other, order, s), 1);
  std::string flipped = sig.substr(0, 32) + std::string(32, '\0');
  BN_bn2binpad(other, reinterpret_cast<unsigned char *>(flipped.data()) + 32, 32);
  EXPECT_NE(flipped, sig);
  EXPECT_EQ(Check(WithSignature(flipped)), TokenError::kOk);
  // s + n does not fit 32 bytes' range of valid values: refused.
  BIGNUM *beyond = BN_new();
  ASSERT_EQ(BN_add(beyond, order, s), 1);
  if (BN_num_bytes(beyond) <= 32) {
    std::string out_of_range = sig.substr(0, 32) + std::string(32, '\0');
    BN_bn2binpad(beyond, reinterpret_cast<unsigned char *>(out_of_range.data()) + 32, 32);
    EXPECT_EQ(Check(WithSignature(out_of_range)), TokenError::kBadSignature);
  }
  BN_free(beyond);
  BN_free(other);
  BN_free(s);
  BN_free(order);
}

// The key decides the algorithm: an EC key verifies ES256 only, an RSA key
// RS256/384/512 only.
TEST_F(Es256Test, AlgorithmFollowsTheKey) {
  const std::string claims = Claims();
  const std::vector<std::pair<std::string, std::string>> refused = {
      {"RS256 header, EC kid", t::Token(*ec_, t::Header(*ec_, "RS256"), claims, "ES256")},
      {"RS256 header, EC kid, RSA signature",
       t::Token(*rsa_, "{\"alg\":\"RS256\",\"kid\":\"ins_ec\"}", claims)},
      {"RS512 header, EC kid", t::Token(*ec_, t::Header(*ec_, "RS512"), claims, "ES256")},
      {"ES256 header, RSA kid", t::Token(*rsa_, t::Header(*rsa_, "ES256"), claims, "RS256")},
      {"ES256 header, RSA kid, EC signature",
       t::Token(*ec_, "{\"alg\":\"ES256\",\"kid\":\"ins_rsa\"}", claims)},
      {"ES384", t::Token(*ec_, t::Header(*ec_, "ES384"), claims, "ES256")},
      {"ES512", t::Token(*ec_, t::Header(*ec_, "ES512"), claims, "ES256")},
      {"ES256K", t::Token(*ec_, t::Header(*ec_, "ES256K"), claims, "ES256")},
      {"es256", t::Token(*ec_, t::Header(*ec_, "es256"), claims, "ES256")},
      {"EdDSA", t::Token(*ec_, t::Header(*ec_, "EdDSA"), claims, "ES256")},
      {"HS256", t::Token(*ec_, t::Header(*ec_, "HS256"), claims, "ES256")},
      {"none", t::Token(*ec_, t::Header(*ec_, "none"), claims, "ES256")},
      {"PS256", t::Token(*ec_, t::Header(*ec_, "PS256"), claims, "ES256")},
  };
  for (const auto &[name, token] : refused) {
    EXPECT_EQ(Check(token), TokenError::kAlgorithmNotAllowed) << name;
  }
}

TEST(JwksParse, EcKeys) {
  const t::EcKey ec = t::GenerateEc("ec");
  const t::RsaKey rsa = t::GenerateRsa("rsa");
  const std::string x = t::BnBytes(ec.pkey.get(), OSSL_PKEY_PARAM_EC_PUB_X, 32);
  const std::string y = t::BnBytes(ec.pkey.get(), OSSL_PKEY_PARAM_EC_PUB_Y, 32);
  const auto jwk = [](const std::string &kid, const std::string &xb, const std::string &yb,
                      const std::string &extra = ",\"crv\":\"P-256\"") {
    return "{\"kty\":\"EC\",\"kid\":\"" + kid + "\",\"x\":\"" + B64(xb) + "\",\"y\":\"" + B64(yb) +
           "\"" + extra + "}";
  };
  // Usable: alg ES256 or absent, use sig or absent.
  for (const std::string &extra :
       {std::string(",\"crv\":\"P-256\""), std::string(",\"crv\":\"P-256\",\"alg\":\"ES256\""),
        std::string(",\"crv\":\"P-256\",\"use\":\"sig\"")}) {
    KeySet set;
    std::string detail;
    EXPECT_EQ(ParseSet(Set({jwk("ec", x, y, extra)}), &set, &detail), TokenError::kOk) << detail;
    EXPECT_EQ(set.size(), 1u);
  }
  // Skipped: another curve, alg, use, kty spelling; no crv; no kid.
  const std::vector<std::string> skipped = {
      jwk("p384", x, y, ",\"crv\":\"P-384\""),
      jwk("p521", x, y, ",\"crv\":\"P-521\""),
      jwk("k1", x, y, ",\"crv\":\"secp256k1\""),
      jwk("lower", x, y, ",\"crv\":\"p-256\""),
      jwk("nocrv", x, y, ""),
      jwk("es384", x, y, ",\"crv\":\"P-256\",\"alg\":\"ES384\""),
      jwk("rs256", x, y, ",\"crv\":\"P-256\",\"alg\":\"RS256\""),
      jwk("ecdh", x, y, ",\"crv\":\"P-256\",\"alg\":\"ECDH-ES\""),
      jwk("enc", x, y, ",\"crv\":\"P-256\",\"use\":\"enc\""),
      jwk("", x, y),
      "{\"kty\":\"ec\",\"kid\":\"lower_kty\",\"crv\":\"P-256\",\"x\":\"" + B64(x) + "\",\"y\":\"" +
          B64(y) + "\"}",
      // A P-384 key with real 48-byte coordinates.
      "{\"kty\":\"EC\",\"kid\":\"real384\",\"crv\":\"P-384\",\"x\":\"" + B64(std::string(48, 'x')) +
          "\",\"y\":\"" + B64(std::string(48, 'y')) + "\"}",
  };
  for (const std::string &s : skipped) {
    KeySet set;
    std::string detail;
    ASSERT_EQ(ParseSet(Set({s, t::Jwk(rsa)}), &set, &detail), TokenError::kOk) << s << detail;
    EXPECT_EQ(set.size(), 1u) << s;
    EXPECT_EQ(ParseSet(Set({s}), nullptr, &detail), TokenError::kInvalidJwks) << s;
    EXPECT_NE(detail.find("no key in the set can verify"), std::string::npos) << detail;
  }
  // Refused: broken coordinates or a point that is not on the curve.
  std::string y_off = y;
  y_off[31] = static_cast<char>(y_off[31] ^ 0x01);
  const std::string zero("\0", 1);
  const std::vector<std::pair<std::string, std::string>> refused = {
      {"off the curve", jwk("bad", x, y_off)},
      {"x and y swapped", jwk("bad", y, x)},
      {"zero point", jwk("bad", std::string(32, '\0'), std::string(32, '\0'))},
      {"x of 31 bytes", jwk("bad", x.substr(1), y)},
      {"y of 31 bytes", jwk("bad", x, y.substr(1))},
      {"x of 33 bytes (leading zero)", jwk("bad", zero + x, y)},
      {"y of 33 bytes", jwk("bad", x, y + zero)},
      {"x and y of 64 bytes", jwk("bad", x + y, x + y)},
      {"coordinates of P-384's width", jwk("bad", std::string(48, 'x'), std::string(48, 'y'))},
      {"y missing", "{\"kty\":\"EC\",\"kid\":\"bad\",\"crv\":\"P-256\",\"x\":\"" + B64(x) + "\"}"},
      {"x not base64url", "{\"kty\":\"EC\",\"kid\":\"bad\",\"crv\":\"P-256\",\"x\":\"" + B64(x) +
                              "=\",\"y\":\"" + B64(y) + "\"}"},
      {"x a number",
       "{\"kty\":\"EC\",\"kid\":\"bad\",\"crv\":\"P-256\",\"x\":1,\"y\":\"" + B64(y) + "\"}"},
  };
  for (const auto &[name, s] : refused) {
    std::string detail;
    EXPECT_EQ(ParseSet(Set({t::Jwk(rsa), s}), nullptr, &detail), TokenError::kInvalidJwks) << name;
    EXPECT_NE(detail.find("EC key \"bad\""), std::string::npos) << name << ": " << detail;
    EXPECT_EQ(detail.find(B64(x).substr(0, 12)), std::string::npos) << detail;
  }
  std::string detail;
  ParseSet(Set({jwk("bad", x, y_off)}), nullptr, &detail);
  EXPECT_NE(detail.find("not a point on P-256"), std::string::npos) << detail;
  // Duplicate kids across kinds are still duplicates.
  EXPECT_EQ(ParseSet(Set({jwk("rsa", x, y), t::Jwk(rsa)})), TokenError::kInvalidJwks);
}
