// A strict, allocation-light JSON reader for session tokens: a token's header
// and claims are parsed on every full verification, and jansson's general
// parser (building every value, hashing every key) cost a fifth of it.
//
// Parse() validates one JSON text whose top level is an object, as RFC 8259
// and as jansson with JSON_REJECT_DUPLICATES would: whitespace only around
// tokens, strings valid UTF-8 without control characters, \u escapes paired
// correctly and never \u0000, integers within int64, reals finite, member
// names unique (after decoding) in every object at every depth, nesting at
// most kMaxJsonDepth. It keeps a view of each top-level member's value;
// nothing is copied unless a member name has escapes.
#pragma once

#include <cstddef>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

namespace jnx::core {

inline constexpr int kMaxJsonDepth = 2048;  // as jansson

enum class JsonKind { kString, kNumber, kObject, kArray, kTrue, kFalse, kNull };

struct JsonMember {
  std::string_view name;  // decoded
  JsonKind kind;
  std::string_view
      raw;  // a string's contents between its quotes (undecoded), else the value's text
  std::string_view raw_name;  // the name between its quotes as written (a view into the text)
};

class JsonObjectReader {
 public:
  // false: not a valid JSON text whose top level is an object (see above).
  bool Parse(std::string_view text);
  // The top-level member `name`, nullptr when absent.
  const JsonMember *Find(std::string_view name) const;
  // Decodes a string member's contents (escapes resolved); false only when
  // `raw` did not come from a successful Parse.
  static bool DecodeString(std::string_view raw, std::string *out);

 private:
  std::vector<JsonMember> members_;
  std::deque<std::string> decoded_names_;  // names that had escapes (stable addresses)
};

}  // namespace jnx::core
