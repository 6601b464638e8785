#include "core/uuid.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>

namespace jnx::core {
namespace {

UuidRandom Fill(uint8_t byte) {
  UuidRandom r;
  r.fill(byte);
  return r;
}

// RFC 9562, appendix A.6: 2022-02-22 19:22:22 UTC = 0x017F22E279B0 ms.
TEST(UuidV7, MatchesTheRfcExampleLayout) {
  const UuidRandom random = {0xFC, 0xC3, 0x98, 0xC4, 0xDC, 0x0C, 0x0C, 0x07, 0x39, 0x8F};
  const Uuid u = UuidV7(0x017F22E279B0ULL, random);
  const Uuid want = {0x01, 0x7F, 0x22, 0xE2, 0x79, 0xB0, 0x7C, 0xC3,
                     0x98, 0xC4, 0xDC, 0x0C, 0x0C, 0x07, 0x39, 0x8F};
  EXPECT_EQ(u, want);
}

TEST(UuidV7, VersionAndVariantBitsWhateverTheRandomBytes) {
  for (const uint8_t byte : {0x00, 0xFF, 0x5A, 0xA5}) {
    const Uuid u = UuidV7(0, Fill(byte));
    EXPECT_EQ(u[6] >> 4, 0x7) << static_cast<int>(byte);
    EXPECT_EQ(u[8] >> 6, 0x2) << static_cast<int>(byte);
  }
}

TEST(UuidV7, OnlyTheLow48BitsOfTheTimeAreUsed) {
  const Uuid a = UuidV7(0xFFFF000000000001ULL, Fill(0));
  const Uuid b = UuidV7(0x0000000000000001ULL, Fill(0));
  EXPECT_EQ(a, b);
  EXPECT_EQ(a[5], 0x01);
}

// Later milliseconds sort later (byte order is what uuid's btree compares),
// whatever the random bits: new keys go to the right edge of the index.
TEST(UuidV7, OrderedByTimeAcrossMilliseconds) {
  std::mt19937_64 gen(7);
  uint64_t ms = 1764150000000ULL;
  Uuid previous = UuidV7(ms, Fill(0xFF));
  for (int i = 0; i < 10000; ++i) {
    ms += 1 + gen() % 1000;
    UuidRandom r;
    for (auto &b : r) b = static_cast<uint8_t>(gen());
    const Uuid next = UuidV7(ms, r);
    ASSERT_TRUE(
        std::lexicographical_compare(previous.begin(), previous.end(), next.begin(), next.end()))
        << i;
    previous = next;
  }
}

TEST(UuidV7, SeventyFourRandomBitsReachTheUuid) {
  // Flipping any one of the used random bits changes the UUID; the unused
  // ones (the high nibble of byte 0, the top two bits of byte 2) do not.
  const Uuid base = UuidV7(1, Fill(0));
  int used = 0;
  for (size_t byte = 0; byte < 10; ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      UuidRandom r = Fill(0);
      r[byte] = static_cast<uint8_t>(1U << bit);
      used += UuidV7(1, r) != base ? 1 : 0;
    }
  }
  EXPECT_EQ(used, 74);
}

}  // namespace
}  // namespace jnx::core
