#include <gtest/gtest.h>

#include <string>

#include "core/jwt.h"
#include "core/token_cache.h"

using jnx::core::CachedToken;
using jnx::core::CheckTokenTimes;
using jnx::core::TokenCache;
using jnx::core::TokenError;
using jnx::core::TokenIdentity;
using jnx::core::TokenTimes;

namespace {

constexpr int64_t kNow = 1764150000;
constexpr int64_t kLeeway = 5;

TokenIdentity Who(const std::string &sub, double exp) {
  TokenIdentity who;
  who.sub = sub;
  who.times.exp = exp;
  return who;
}

}  // namespace

TEST(TokenCache, AHitGivesWhatWasVerified) {
  TokenCache cache;
  EXPECT_EQ(cache.Find("tok.a.b", 1, kNow, kLeeway), nullptr);
  cache.Insert("tok.a.b", 1, "{\"sub\":\"user_1\"}", Who("user_1", kNow + 60));
  const CachedToken *hit = cache.Find("tok.a.b", 1, kNow, kLeeway);
  ASSERT_NE(hit, nullptr);
  EXPECT_EQ(hit->claims, "{\"sub\":\"user_1\"}");
  EXPECT_EQ(hit->identity.sub, "user_1");
}

// The image belongs to one entry: set only where token and generation match,
// and gone when a newcomer takes the slot.
TEST(TokenCache, AnImageStaysWithItsEntryOnly) {
  TokenCache cache(1);  // one slot: every token shares it
  cache.Insert("tok.a.b", 1, "{}", Who("user_1", kNow + 60));
  EXPECT_EQ(cache.Find("tok.a.b", 1, kNow, kLeeway)->image, "");
  cache.SetImage("tok.a.c", 1, "other token");
  cache.SetImage("tok.a.b", 2, "other generation");
  EXPECT_EQ(cache.Find("tok.a.b", 1, kNow, kLeeway)->image, "");
  cache.SetImage("tok.a.b", 1, std::string("\x01\x00jsonb", 7));
  EXPECT_EQ(cache.Find("tok.a.b", 1, kNow, kLeeway)->image, std::string("\x01\x00jsonb", 7));
  cache.Insert("tok.x.y", 1, "{}", Who("user_2", kNow + 60));
  EXPECT_EQ(cache.Find("tok.a.b", 1, kNow, kLeeway), nullptr);
  EXPECT_EQ(cache.Find("tok.x.y", 1, kNow, kLeeway)->image, "");
  cache.Insert("tok.x.y", 1, "{}", Who("user_2", kNow + 60));  // verified again: no stale image
  cache.SetImage("tok.x.y", 1, "y");
  cache.Insert("tok.x.y", 1, "{}", Who("user_2", kNow + 60));
  EXPECT_EQ(cache.Find("tok.x.y", 1, kNow, kLeeway)->image, "");
}

// What the cache holds stays bounded: an image beyond kMaxImageBytes is not
// kept (the caller makes it again on the next hit).
TEST(TokenCache, AnOversizeImageIsNotKept) {
  TokenCache cache;
  cache.Insert("tok.a.b", 1, "{}", Who("user_1", kNow + 60));
  cache.SetImage("tok.a.b", 1, std::string(jnx::core::kMaxImageBytes + 1, 'x'));
  EXPECT_EQ(cache.Find("tok.a.b", 1, kNow, kLeeway)->image, "");
  cache.SetImage("tok.a.b", 1, std::string(jnx::core::kMaxImageBytes, 'x'));
  EXPECT_EQ(cache.Find("tok.a.b", 1, kNow, kLeeway)->image.size(), jnx::core::kMaxImageBytes);
}

TEST(TokenCache, AnotherTokenNeverHits) {
  TokenCache cache;
  cache.Insert("tok.a.b", 1, "{}", Who("user_1", kNow + 60));
  EXPECT_EQ(cache.Find("tok.a.c", 1, kNow, kLeeway), nullptr);  // one byte differs
  EXPECT_EQ(cache.Find("tok.a.b ", 1, kNow, kLeeway), nullptr);
  EXPECT_EQ(cache.Find("", 1, kNow, kLeeway), nullptr);
}

TEST(TokenCache, AnotherConfigurationNeverHits) {
  TokenCache cache;
  cache.Insert("tok.a.b", 7, "{}", Who("user_1", kNow + 60));
  EXPECT_EQ(cache.Find("tok.a.b", 8, kNow, kLeeway), nullptr);
  EXPECT_EQ(cache.Find("tok.a.b", 6, kNow, kLeeway), nullptr);
  EXPECT_NE(cache.Find("tok.a.b", 7, kNow, kLeeway), nullptr);
}

// A hit follows the time rule of a full verification to the second.
TEST(TokenCache, TimeClaimsAreCheckedOnEveryHit) {
  TokenCache cache;
  const double exp = kNow + 60;
  cache.Insert("tok.a.b", 1, "{}", Who("user_1", exp));
  for (int64_t now = kNow; now <= kNow + 70; ++now) {
    const bool valid = CheckTokenTimes(Who("", exp).times, now, kLeeway) == TokenError::kOk;
    EXPECT_EQ(cache.Find("tok.a.b", 1, now, kLeeway) != nullptr, valid) << now;
  }
  EXPECT_NE(cache.Find("tok.a.b", 1, kNow + 64, kLeeway), nullptr);  // exp + leeway - 1
  EXPECT_EQ(cache.Find("tok.a.b", 1, kNow + 65, kLeeway), nullptr);  // exp + leeway
  EXPECT_EQ(cache.Find("tok.a.b", 1, kNow + 61, 0), nullptr);        // no leeway

  TokenIdentity early = Who("user_2", kNow + 60);
  early.times.has_nbf = true;
  early.times.nbf = kNow + 30;
  cache.Insert("tok.c.d", 1, "{}", early);
  EXPECT_EQ(cache.Find("tok.c.d", 1, kNow, kLeeway), nullptr);
  EXPECT_NE(cache.Find("tok.c.d", 1, kNow + 25, kLeeway), nullptr);
}

TEST(TokenCache, BoundedAndReplacedBySlot) {
  TokenCache one(1);
  one.Insert("tok.a.b", 1, "{}", Who("user_1", kNow + 60));
  one.Insert("tok.c.d", 1, "{}", Who("user_2", kNow + 60));
  EXPECT_EQ(one.size(), 1u);
  EXPECT_EQ(one.Find("tok.a.b", 1, kNow, kLeeway), nullptr);
  ASSERT_NE(one.Find("tok.c.d", 1, kNow, kLeeway), nullptr);

  TokenCache many(8);
  for (int i = 0; i < 1000; ++i) {
    many.Insert("tok." + std::to_string(i), 1, "{}", Who("user", kNow + 60));
  }
  EXPECT_LE(many.size(), 8u);
  many.Clear();
  EXPECT_EQ(many.size(), 0u);
}

TEST(TokenCache, CheckTokenTimesIsTheVerifierRule) {
  TokenTimes times;
  times.exp = kNow;
  EXPECT_EQ(CheckTokenTimes(times, kNow - 1, 0), TokenError::kOk);
  EXPECT_EQ(CheckTokenTimes(times, kNow, 0), TokenError::kExpired);
  times.exp = kNow + 60;
  times.has_iat = true;
  times.iat = kNow + 6;
  EXPECT_EQ(CheckTokenTimes(times, kNow, 5), TokenError::kNotYetValid);
  EXPECT_EQ(CheckTokenTimes(times, kNow + 1, 5), TokenError::kOk);
}
