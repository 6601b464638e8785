#include <gtest/gtest.h>

#include <string>

#include "core/event_minimize.h"
#include "core/json_scan.h"

using jnx::core::Minimized;
using jnx::core::MinimizeEvent;

namespace {

// The minimized text, or a marker naming the other outcome.
std::string Minimize(const std::string &event) {
  std::string out = "(untouched)";
  switch (MinimizeEvent(event, &out)) {
    case Minimized::kStripped: return out;
    case Minimized::kStrippedLeniently: return "(lenient) " + out;
    case Minimized::kUnchanged: return out == "(untouched)" ? "(unchanged)" : "(wrote out)";
    case Minimized::kUnknown: return out == "(untouched)" ? "(unknown)" : "(wrote out)";
  }
  return "(?)";
}

}  // namespace

TEST(EventMinimize, RemovesTheRequestAndKeepsEveryOtherByte) {
  const std::string clerk =
      R"({"data":{"id":"user_1","first_name":"Ada"},"event_attributes":{"http_request":)"
      R"({"client_ip":"203.0.113.9","user_agent":"Mozilla/5.0 X11"}},"object":"event",)"
      R"("timestamp":1700000000000,"type":"user.created"})";
  EXPECT_EQ(Minimize(clerk),
            R"({"data":{"id":"user_1","first_name":"Ada"},"event_attributes":{},"object":"event",)"
            R"("timestamp":1700000000000,"type":"user.created"})");
}

TEST(EventMinimize, TakesTheRightCommaWhereverTheMemberIs) {
  // First, middle, last, alone; with and without space around.
  EXPECT_EQ(Minimize(R"({"event_attributes":{"http_request":{"a":1},"other":2}})"),
            R"({"event_attributes":{"other":2}})");
  EXPECT_EQ(Minimize(R"({"event_attributes":{"x":1,"http_request":[1,2],"y":2}})"),
            R"({"event_attributes":{"x":1,"y":2}})");
  EXPECT_EQ(Minimize(R"({"event_attributes":{"x":1,"http_request":"s"}})"),
            R"({"event_attributes":{"x":1}})");
  EXPECT_EQ(Minimize(R"({"event_attributes":{"http_request":null}})"),
            R"({"event_attributes":{}})");
  EXPECT_EQ(Minimize("{\"event_attributes\" : { \"x\" : 1 ,\n \"http_request\" : { } \n} }"),
            "{\"event_attributes\" : { \"x\" : 1  \n} }");  // the space around stays
  EXPECT_EQ(Minimize("{\"event_attributes\":{ \"http_request\" : \"a\\\"b\" , \"y\":true }}"),
            "{\"event_attributes\":{ \"y\":true }}");
}

TEST(EventMinimize, FindsEscapedNamesAsAParserWould) {
  // "event\u005fattributes" and "http\u005frequest" are the same names to
  // PostgreSQL's jsonb: an escape must not smuggle the address past us.
  EXPECT_EQ(Minimize(R"({"event\u005fattributes":{"http\u005frequest":{"client_ip":"x"},"k":1}})"),
            R"({"event\u005fattributes":{"k":1}})");
}

TEST(EventMinimize, LeavesAloneWhatHasNothingToRemove) {
  for (const char *event :
       {R"({"type":"user.created"})", R"({"event_attributes":{}})",
        R"({"event_attributes":{"other":{"http_request":1}}})",
        R"({"event_attributes":"http_request"})", R"({"event_attributes":[{"http_request":1}]})",
        R"({"data":{"event_attributes":{"http_request":1}}})",
        R"({"http_request":{"client_ip":"x"}})"}) {
    EXPECT_EQ(Minimize(event), "(unchanged)") << event;
  }
}

TEST(EventMinimize, AsksAFullParserWhenNotEvenTheStructureHolds) {
  for (const std::string &event :
       {std::string(R"({"event_attributes":{"http_request":1})"), std::string("[1]"),
        std::string(""), std::string("{\"a\":1}\0", 8), std::string("{\"a\":\"\xff\"}"),
        std::string(R"({"event_attributes":{"http_request":"unterminated}})")}) {
    EXPECT_EQ(Minimize(event), "(unknown)") << event;
  }
}

// What the strict reader refuses but PostgreSQL may still store as a dead
// letter: the structure is followed, the member goes all the same.
TEST(EventMinimize, FollowsTheStructureOfWhatTheStrictReaderRefuses) {
  EXPECT_EQ(Minimize(R"({"event_attributes":{"http_request":1},"event_attributes":{}})"),
            R"((lenient) {"event_attributes":{},"event_attributes":{}})");
  EXPECT_EQ(Minimize(R"({"event_attributes":{"http_request":1,"http_request":2}})"),
            R"((lenient) {"event_attributes":{}})");
  EXPECT_EQ(Minimize(R"({"event_attributes":{"a":0,"http_request":1,"http_request":2,"b":3}})"),
            R"((lenient) {"event_attributes":{"a":0,"b":3}})");
  EXPECT_EQ(Minimize(R"({"data":{"x":"\u0000"},"event_attributes":{"http_request":{"ip":"1"}}})"),
            R"((lenient) {"data":{"x":"\u0000"},"event_attributes":{}})");
  EXPECT_EQ(Minimize("\xEF\xBB\xBF{\"event_attributes\":{\"http_request\":\"x\\\"}\"}}"),
            "(lenient) \xEF\xBB\xBF{\"event_attributes\":{}}");
  const std::string deep = std::string(5000, '[') + std::string(5000, ']');
  EXPECT_EQ(Minimize(R"({"event_attributes":{"http_request":"a"},"d":)" + deep + "}"),
            "(lenient) {\"event_attributes\":{},\"d\":" + deep + "}");
}

TEST(EventMinimize, TheResultIsValidAndHoldsNoRequest) {
  const std::string event =
      R"({ "event_attributes" : { "a" : [ 1 , { "b" : 2 } ] , "http_request" : { "client_ip" : )"
      R"("203.0.113.9" } , "c" : "d" } , "z" : 1 })";
  const std::string out = Minimize(event);
  jnx::core::JsonObjectReader top;
  ASSERT_TRUE(top.Parse(out)) << out;
  const jnx::core::JsonMember *attributes = top.Find("event_attributes");
  ASSERT_NE(attributes, nullptr);
  jnx::core::JsonObjectReader inner;
  ASSERT_TRUE(inner.Parse(attributes->raw));
  EXPECT_EQ(inner.Find("http_request"), nullptr);
  EXPECT_NE(inner.Find("a"), nullptr);
  EXPECT_NE(inner.Find("c"), nullptr);
  EXPECT_EQ(out.find("203.0.113.9"), std::string::npos);
}
