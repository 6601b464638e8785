#include <gtest/gtest.h>

#include <string>

#include "core/json_scan.h"

using jnx::core::JsonKind;
using jnx::core::JsonObjectReader;

namespace {

bool Parses(const std::string &text) {
  JsonObjectReader reader;
  return reader.Parse(text);
}

}  // namespace

// What jansson (JSON_REJECT_DUPLICATES, an object at the top) accepts and
// refuses; test/fuzz/fuzz_json.cpp compares the two on arbitrary input.
TEST(JsonScan, AcceptsWhatJanssonAccepts) {
  for (const char *ok :
       {"{}", " {\"a\":1} ", "{\"a\":1}\n", "{\"a\":-0}", "{\"a\":1e5}", "{\"a\":1E+2}",
        "{\"a\":0.5e-3}", "{\"a\":1e-400}", "{\"a\":9223372036854775807}",
        "{\"a\":-9223372036854775808}", "{\"a\":\"\\ud83d\\ude00\"}", "{\"a\":\"\xc3\xa9\"}",
        "{\"a\":true,\"b\":false,\"c\":null}", "{\"a\":[1,[2,{\"x\":[]}]]}", "{\"a\" : [ ] }",
        "{\"a\":[\"a\",\"a\"]}", "{\"\":1}", "{\"a\":\"\\/\"}"}) {
    EXPECT_TRUE(Parses(ok)) << ok;
  }
}

TEST(JsonScan, RefusesWhatJanssonRefuses) {
  for (const char *bad : {"",
                          "[1]",
                          "{\"a\":1,\"a\":2}",
                          "{\"a\":{\"b\":1,\"b\":2}}",
                          "{\"a\\u0062\":1,\"ab\":2}",
                          "{\"a\":01}",
                          "{\"a\":1.}",
                          "{\"a\":-}",
                          "{\"a\":9223372036854775808}",
                          "{\"a\":-9223372036854775809}",
                          "{\"a\":1e400}",
                          "{\"a\":\"\\u0000\"}",
                          "{\"a\":\"\\ud800\"}",
                          "{\"a\":\"\\udc00\"}",
                          "{\"a\":\"\xed\xa0\x80\"}",
                          "{\"a\":\"\xc0\xaf\"}",
                          "{\"a\":\"\x01\"}",
                          "{\"a\":1} x",
                          "{,}",
                          "{\"a\":[1,]}",
                          "{\"a\":tru}",
                          "{\"a\":\"\\x\"}",
                          "{\"a\":\"\t\"}",
                          "\xef\xbb\xbf{}"}) {
    EXPECT_FALSE(Parses(bad)) << bad;
  }
  const std::string nested_ok = "{\"a\":" + std::string(2047, '[') + std::string(2047, ']') + "}";
  const std::string nested_deep = "{\"a\":" + std::string(2048, '[') + std::string(2048, ']') + "}";
  EXPECT_TRUE(Parses(nested_ok));
  EXPECT_FALSE(Parses(nested_deep));
}

TEST(JsonScan, MembersAndDecoding) {
  JsonObjectReader reader;
  ASSERT_TRUE(reader.Parse("{\"s\\u0075b\":\"a\\\"b\\u00e9\",\"n\":-1.5,\"o\":{\"id\":\"x\"}}"));
  const auto *sub = reader.Find("sub");
  ASSERT_NE(sub, nullptr);
  EXPECT_EQ(sub->kind, JsonKind::kString);
  std::string value;
  ASSERT_TRUE(JsonObjectReader::DecodeString(sub->raw, &value));
  EXPECT_EQ(value, "a\"b\xc3\xa9");
  ASSERT_NE(reader.Find("n"), nullptr);
  EXPECT_EQ(reader.Find("n")->raw, "-1.5");
  ASSERT_NE(reader.Find("o"), nullptr);
  EXPECT_EQ(reader.Find("o")->kind, JsonKind::kObject);
  EXPECT_EQ(reader.Find("o")->raw, "{\"id\":\"x\"}");
  EXPECT_EQ(reader.Find("id"), nullptr);  // top level only
}
