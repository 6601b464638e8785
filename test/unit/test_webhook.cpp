#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/webhook.h"

using jnx::core::DecodeWebhookSecret;
using jnx::core::ParseWebhookTimestamp;
using jnx::core::SignWebhook;
using jnx::core::VerifyWebhook;
using jnx::core::WebhookError;

namespace {

// The public Svix test vector.
constexpr const char *kSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
constexpr const char *kMsgId = "msg_p5jXN8AQM9LWM0D4loKWxJek";
constexpr int64_t kTimestamp = 1614265330;
constexpr const char *kBody = "{\"test\": 2432232314}";
constexpr const char *kSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

std::string Key(const char *secret = kSecret) {
  std::string key;
  EXPECT_EQ(DecodeWebhookSecret(secret, &key), WebhookError::kOk);
  return key;
}

WebhookError Verify(const std::string &header, int64_t now = kTimestamp,
                    const std::string &body = kBody, const std::string &ts = "1614265330",
                    const std::string &id = kMsgId) {
  const std::string key = Key();
  const std::string_view keys[] = {key};
  return VerifyWebhook(id, ts, header, body, keys, 1, now);
}

}  // namespace

TEST(WebhookSign, MatchesSvixVector) {
  std::string sig;
  ASSERT_EQ(SignWebhook(Key(), kMsgId, kTimestamp, kBody, &sig), WebhookError::kOk);
  EXPECT_EQ(sig, kSignature);
}

TEST(WebhookSign, PrefixIsOptional) {
  std::string with, without;
  EXPECT_EQ(DecodeWebhookSecret(kSecret, &with), WebhookError::kOk);
  EXPECT_EQ(DecodeWebhookSecret(kSecret + 6, &without), WebhookError::kOk);
  EXPECT_EQ(with, without);
  EXPECT_EQ(with.size(), 24u);
}

TEST(WebhookSign, RejectsBadInput) {
  std::string sig;
  EXPECT_EQ(SignWebhook("", kMsgId, kTimestamp, kBody, &sig), WebhookError::kInvalidSecret);
  EXPECT_EQ(SignWebhook(Key(), "", kTimestamp, kBody, &sig), WebhookError::kMalformedHeader);
  EXPECT_EQ(SignWebhook(Key(), kMsgId, -1, kBody, &sig), WebhookError::kMalformedHeader);
  EXPECT_TRUE(sig.empty());
}

TEST(WebhookSecret, RejectsEmptyUndecodableAndOversized) {
  std::string key = "untouched";
  for (const char *bad : {"", "whsec_", "whsec_!!!!", "whsec_QQ",
                          "whsec_QR==", "whsec_ QQ==", "WHSEC_QQ==", "whsec_whsec_QQ=="}) {
    EXPECT_EQ(DecodeWebhookSecret(bad, &key), WebhookError::kInvalidSecret) << bad;
  }
  EXPECT_EQ(key, "untouched");
  const std::string big = "whsec_" + std::string(1500, 'A');
  EXPECT_EQ(DecodeWebhookSecret(big, &key), WebhookError::kInvalidSecret);
  const std::string max_ok = "whsec_" + std::string(1364, 'A');  // 1023 bytes
  EXPECT_EQ(DecodeWebhookSecret(max_ok, &key), WebhookError::kOk);
}

TEST(WebhookTimestamp, DigitsOnly) {
  int64_t v = 0;
  EXPECT_EQ(ParseWebhookTimestamp("1614265330", &v), WebhookError::kOk);
  EXPECT_EQ(v, 1614265330);
  EXPECT_EQ(ParseWebhookTimestamp("0001", &v), WebhookError::kOk);
  EXPECT_EQ(v, 1);
  for (const char *bad :
       {"", "-1", "+1", "1.5", " 1", "1 ", "1e9", "0x10", "1234567890123456789"}) {
    EXPECT_EQ(ParseWebhookTimestamp(bad, &v), WebhookError::kMalformedHeader) << bad;
  }
}

TEST(WebhookVerify, AcceptsVector) {
  EXPECT_EQ(Verify(kSignature), WebhookError::kOk);
}

TEST(WebhookVerify, AnyV1EntryMatches) {
  const std::string other = "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
  EXPECT_EQ(Verify(other + " " + kSignature), WebhookError::kOk);
  EXPECT_EQ(Verify(std::string(kSignature) + " " + other), WebhookError::kOk);
  EXPECT_EQ(Verify("v1a,abc v2,xyz " + std::string(kSignature)), WebhookError::kOk);
  EXPECT_EQ(Verify(std::string("   ") + kSignature + "   "), WebhookError::kOk);
}

TEST(WebhookVerify, AnySecretMatchesDuringRotation) {
  const std::string old_key = Key(), new_key = "a brand new key of 24 by";
  const std::string_view keys[] = {new_key, old_key};
  EXPECT_EQ(VerifyWebhook(kMsgId, "1614265330", kSignature, kBody, keys, 2, kTimestamp),
            WebhookError::kOk);
  EXPECT_EQ(VerifyWebhook(kMsgId, "1614265330", kSignature, kBody, keys, 1, kTimestamp),
            WebhookError::kBadSignature);
}

TEST(WebhookVerify, WindowIsPlusMinus300Inclusive) {
  EXPECT_EQ(Verify(kSignature, kTimestamp + 300), WebhookError::kOk);
  EXPECT_EQ(Verify(kSignature, kTimestamp - 300), WebhookError::kOk);
  EXPECT_EQ(Verify(kSignature, kTimestamp + 301), WebhookError::kTimestampTooOld);
  EXPECT_EQ(Verify(kSignature, kTimestamp - 301), WebhookError::kTimestampTooNew);
  EXPECT_EQ(Verify(kSignature, 0), WebhookError::kTimestampTooNew);
  EXPECT_EQ(Verify(kSignature, INT64_C(4000000000)), WebhookError::kTimestampTooOld);
}

TEST(WebhookVerify, SignsTheParsedInteger) {
  EXPECT_EQ(Verify(kSignature, kTimestamp, kBody, "01614265330"), WebhookError::kOk);
}

TEST(WebhookVerify, BadSignatures) {
  const std::string sig = kSignature;
  const std::string b64 = sig.substr(3);
  std::string flipped = sig;
  flipped[10] = flipped[10] == 'A' ? 'B' : 'A';
  std::string base64url = sig;
  for (char &c : base64url) c = c == '+' ? '-' : c == '/' ? '_' : c;
  const std::vector<std::string> bad = {
      flipped,
      "V1," + b64,                // version is case-sensitive
      "v1," + b64.substr(0, 43),  // stripped padding
      base64url,                  // base64url alphabet
      "v1, " + b64,               // space after the comma
      "v1,AAAA\t" + sig,          // tab is not a separator
      "v1,AAAA\n" + sig,          // nor is a newline
      "v2," + b64,                // only another version
      "v1," + b64 + "A",          // one character more
      "v1," + b64.substr(0, 20),  // truncated
      "v1,",                      // empty signature
  };
  for (const std::string &h : bad) EXPECT_EQ(Verify(h), WebhookError::kBadSignature) << h;
  EXPECT_EQ(Verify(sig, kTimestamp, "{\"test\": 2432232315}"), WebhookError::kBadSignature);
  EXPECT_EQ(Verify(sig, kTimestamp, std::string(kBody) + " "), WebhookError::kBadSignature);
  EXPECT_EQ(Verify(sig, kTimestamp, kBody, "1614265330", "msg_other"), WebhookError::kBadSignature);
}

TEST(WebhookVerify, MalformedHeaders) {
  const std::string sig = kSignature;
  EXPECT_EQ(Verify(""), WebhookError::kMalformedHeader);
  EXPECT_EQ(Verify("v1"), WebhookError::kMalformedHeader);
  EXPECT_EQ(Verify("nocomma nospace"), WebhookError::kMalformedHeader);
  EXPECT_EQ(Verify("v1," + std::string(9000, 'A')), WebhookError::kMalformedHeader);
  EXPECT_EQ(Verify(sig, kTimestamp, kBody, ""), WebhookError::kMalformedHeader);
  EXPECT_EQ(Verify(sig, kTimestamp, kBody, "abc"), WebhookError::kMalformedHeader);
  EXPECT_EQ(Verify(sig, kTimestamp, kBody, "-1614265330"), WebhookError::kMalformedHeader);
  EXPECT_EQ(Verify(sig, kTimestamp, kBody, "1614265330", ""), WebhookError::kMalformedHeader);
  EXPECT_EQ(Verify(sig, kTimestamp, kBody, "1614265330", "msg 1"), WebhookError::kMalformedHeader);
  EXPECT_EQ(Verify(sig, kTimestamp, kBody, "1614265330", std::string("msg\0x", 5)),
            WebhookError::kMalformedHeader);
  EXPECT_EQ(Verify(sig, kTimestamp, kBody, "1614265330", std::string(257, 'm')),
            WebhookError::kMalformedHeader);
}

TEST(WebhookVerify, NoSecretOrEmptyKey) {
  EXPECT_EQ(VerifyWebhook(kMsgId, "1614265330", kSignature, kBody, nullptr, 0, kTimestamp),
            WebhookError::kNoSecret);
  const std::string_view keys[] = {std::string_view()};
  EXPECT_EQ(VerifyWebhook(kMsgId, "1614265330", kSignature, kBody, keys, 1, kTimestamp),
            WebhookError::kInvalidSecret);
}

TEST(WebhookVerify, BinaryBodyIsSignedByteForByte) {
  const std::string body("\0\xff\x01{}", 5);
  std::string sig;
  ASSERT_EQ(SignWebhook(Key(), kMsgId, kTimestamp, body, &sig), WebhookError::kOk);
  EXPECT_EQ(Verify(sig, kTimestamp, body), WebhookError::kOk);
  EXPECT_EQ(Verify(sig, kTimestamp, body.substr(0, 4)), WebhookError::kBadSignature);
}

TEST(WebhookErrors, EveryErrorHasAName) {
  for (int e = 0; e <= static_cast<int>(WebhookError::kInternal); ++e) {
    EXPECT_STRNE(jnx::core::WebhookErrorName(static_cast<WebhookError>(e)), "unknown");
  }
}

// The per-thread HMAC context stays keyed with the last key: switching keys
// back and forth must never verify with a stale one.
TEST(WebhookVerify, InterleavedKeysNeverReuseAStaleKey) {
  const std::string a = Key(), b = "another key of some bytes", c = "k";
  for (int i = 0; i < 50; ++i) {
    const std::string &signer = (i % 3 == 0) ? a : (i % 3 == 1) ? b : c;
    std::string sig;
    ASSERT_EQ(SignWebhook(signer, kMsgId, kTimestamp, kBody, &sig), WebhookError::kOk);
    for (const std::string *k : {&a, &b, &c}) {
      const std::string_view keys[] = {*k};
      const WebhookError want = (k == &signer) ? WebhookError::kOk : WebhookError::kBadSignature;
      EXPECT_EQ(VerifyWebhook(kMsgId, "1614265330", sig, kBody, keys, 1, kTimestamp), want);
    }
  }
}
