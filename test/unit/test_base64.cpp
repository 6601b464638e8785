#include <gtest/gtest.h>

#include <string>

#include "core/base64.h"

using jnx::core::Base64Decode;
using jnx::core::Base64Encode;

namespace {

std::string Decoded(std::string_view in, bool *ok) {
  std::string out;
  *ok = Base64Decode(in, &out);
  return out;
}

}  // namespace

TEST(Base64, Rfc4648Vectors) {
  const std::pair<const char *, const char *> vectors[] = {{"", ""},
                                                           {"f", "Zg=="},
                                                           {"fo", "Zm8="},
                                                           {"foo", "Zm9v"},
                                                           {"foob", "Zm9vYg=="},
                                                           {"fooba", "Zm9vYmE="},
                                                           {"foobar", "Zm9vYmFy"}};
  for (const auto &[plain, encoded] : vectors) {
    EXPECT_EQ(Base64Encode(plain), encoded);
    bool ok = false;
    EXPECT_EQ(Decoded(encoded, &ok), plain);
    EXPECT_TRUE(ok) << encoded;
  }
}

TEST(Base64, RoundTripsEveryByte) {
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  for (size_t len = 0; len <= all.size(); len += 7) {
    bool ok = false;
    EXPECT_EQ(Decoded(Base64Encode(all.substr(0, len)), &ok), all.substr(0, len));
    EXPECT_TRUE(ok);
  }
}

TEST(Base64, RejectsNonCanonicalInput) {
  const char *bad[] = {
      "Zg",        // missing padding
      "Zg=",       // short padding
      "Zm9v\n",    // whitespace
      "Zm 9v",     // space inside
      "Zh==",      // non-zero discarded bits
      "Zm9=",      // non-zero discarded bits (one pad)
      "Zm-_",      // base64url alphabet
      "=Zg=",      // padding first
      "Zg==Zg==",  // padding in the middle
      "Z===",      // three pads
      "====",      // only padding
      "Zm9v=",     // length not a multiple of 4
  };
  for (const char *in : bad) {
    std::string out = "kept";
    EXPECT_FALSE(Base64Decode(in, &out)) << in;
    EXPECT_EQ(out, "kept") << "output touched on failure: " << in;
  }
}

TEST(Base64, RejectsEmbeddedNul) {
  std::string with_nul("Zm9v\0\0\0\0", 8);
  std::string out;
  EXPECT_FALSE(Base64Decode(with_nul, &out));
}
