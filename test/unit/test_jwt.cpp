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
