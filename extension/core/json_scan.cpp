#include "json_scan.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "no_postgres.h"

namespace jnx::core {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool Hex4(std::string_view s, size_t at, uint32_t *out) {
  if (at + 4 > s.size()) return false;
  uint32_t v = 0;
  for (size_t k = 0; k < 4; ++k) {
    const int h = HexValue(s[at + k]);
    if (h < 0) return false;
    v = (v << 4) | static_cast<uint32_t>(h);
  }
  *out = v;
  return true;
}

void AppendUtf8(uint32_t cp, std::string *out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Length of the valid UTF-8 sequence starting at s[i] (a byte >= 0x80), 0
// when invalid: overlong forms, surrogates and code points past U+10FFFF are.
size_t Utf8Length(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const auto cont = [&](size_t k) { return i + k < s.size() && (b(k) & 0xC0) == 0x80; };
  const unsigned char c = b(0);
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (!cont(1) || !cont(2)) return 0;
    if (c == 0xE0 && b(1) < 0xA0) return 0;  // overlong
    if (c == 0xED && b(1) > 0x9F) return 0;  // surrogate
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    if (c == 0xF0 && b(1) < 0x90) return 0;  // overlong
    if (c == 0xF4 && b(1) > 0x8F) return 0;  // past U+10FFFF
    return 4;
  }
  return 0;
}

class Scanner {
 public:
  Scanner(std::string_view text, std::deque<std::string> *names) : s_(text), names_(names) {}

  // The top-level object; its members go to *members.
  bool TopObject(std::vector<JsonMember> *members) {
    Space();
    if (!Object(members, 1)) return false;
    Space();
    return i_ == s_.size();
  }

 private:
  void Space() {
    while (i_ < s_.size() &&
           (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) {
      ++i_;
    }
  }

  // A string at s_[i_] == '"': *raw gets its contents, *escaped whether they
  // hold a backslash.
  bool String(std::string_view *raw, bool *escaped) {
    const size_t start = ++i_;
    *escaped = false;
    while (i_ < s_.size()) {
      const auto c = static_cast<unsigned char>(s_[i_]);
      if (c == '"') {
        *raw = s_.substr(start, i_ - start);
        ++i_;
        return true;
      }
      if (c < 0x20) return false;
      if (c == '\\') {
        *escaped = true;
        if (++i_ >= s_.size()) return false;
        const char e = s_[i_];
        if (e == 'u') {
          uint32_t unit = 0;
          if (!Hex4(s_, i_ + 1, &unit) || unit == 0) return false;
          i_ += 5;
          if (unit >= 0xDC00 && unit <= 0xDFFF) return false;  // a lone low surrogate
          if (unit >= 0xD800 && unit <= 0xDBFF) {
            uint32_t low = 0;
            if (i_ + 1 >= s_.size() || s_[i_] != '\\' || s_[i_ + 1] != 'u' ||
                !Hex4(s_, i_ + 2, &low) || low < 0xDC00 || low > 0xDFFF) {
              return false;
            }
            i_ += 6;
          }
          continue;
        }
        if (e != '"' && e != '\\' && e != '/' && e != 'b' && e != 'f' && e != 'n' && e != 'r' &&
            e != 't') {
          return false;
        }
        ++i_;
        continue;
      }
      if (c < 0x80) {
        ++i_;
        continue;
      }
      const size_t n = Utf8Length(s_, i_);
      if (n == 0) return false;
      i_ += n;
    }
    return false;
  }

  // -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?, an integer within int64,
  // a real that does not overflow.
  bool Number(std::string_view *raw) {
    const size_t start = i_;
    const auto digit = [&] { return i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9'; };
    const bool negative = i_ < s_.size() && s_[i_] == '-';
    if (negative) ++i_;
    if (!digit()) return false;
    if (s_[i_] == '0') {
      ++i_;
    } else {
      while (digit()) ++i_;
    }
    bool real = false;
    if (i_ < s_.size() && s_[i_] == '.') {
      real = true;
      ++i_;
      if (!digit()) return false;
      while (digit()) ++i_;
    }
    if (i_ < s_.size() && (s_[i_] == 'e' || s_[i_] == 'E')) {
      real = true;
      ++i_;
      if (i_ < s_.size() && (s_[i_] == '+' || s_[i_] == '-')) ++i_;
      if (!digit()) return false;
      while (digit()) ++i_;
    }
    *raw = s_.substr(start, i_ - start);
    if (!real) {
      // Within int64: at most 19 digits, compared as text beyond that.
      std::string_view digits = raw->substr(negative ? 1 : 0);
      if (digits.size() > 19) return false;
      if (digits.size() == 19) {
        const std::string_view limit = negative ? "9223372036854775808" : "9223372036854775807";
        if (digits > limit) return false;
      }
      return true;
    }
    const std::string copy(*raw);
    errno = 0;
    const double value = std::strtod(copy.c_str(), nullptr);
    return !(errno == ERANGE && std::isinf(value));
  }

  bool Value(JsonKind *kind, std::string_view *raw, int depth) {
    if (i_ >= s_.size()) return false;
    const size_t start = i_;
    switch (s_[i_]) {
      case '"': {
        bool escaped = false;
        *kind = JsonKind::kString;
        return String(raw, &escaped);
      }
      case '{':
        *kind = JsonKind::kObject;
        if (!Object(nullptr, depth + 1)) return false;
        break;
      case '[':
        *kind = JsonKind::kArray;
        if (!Array(depth + 1)) return false;
        break;
      case 't':
        *kind = JsonKind::kTrue;
        if (s_.substr(i_, 4) != "true") return false;
        i_ += 4;
        break;
      case 'f':
        *kind = JsonKind::kFalse;
        if (s_.substr(i_, 5) != "false") return false;
        i_ += 5;
        break;
      case 'n':
        *kind = JsonKind::kNull;
        if (s_.substr(i_, 4) != "null") return false;
        i_ += 4;
        break;
      default: *kind = JsonKind::kNumber; return Number(raw);
    }
    *raw = s_.substr(start, i_ - start);
    return true;
  }

  bool Array(int depth) {
    if (depth > kMaxJsonDepth) return false;
    ++i_;  // '['
    Space();
    if (i_ < s_.size() && s_[i_] == ']') {
      ++i_;
      return true;
    }
    for (;;) {
      JsonKind kind;
      std::string_view raw;
      if (!Value(&kind, &raw, depth)) return false;
      Space();
      if (i_ >= s_.size()) return false;
      if (s_[i_] == ']') {
        ++i_;
        return true;
      }
      if (s_[i_] != ',') return false;
      ++i_;
      Space();
    }
  }

  // An object at s_[i_] == '{'. Its member names must be unique (decoded);
  // with `members`, its members are kept there.
  bool Object(std::vector<JsonMember> *members, int depth) {
    if (depth > kMaxJsonDepth || i_ >= s_.size() || s_[i_] != '{') return false;
    ++i_;
    Space();
    std::vector<JsonMember> local;
    std::vector<JsonMember> &out = members != nullptr ? *members : local;
    out.clear();
    if (i_ < s_.size() && s_[i_] == '}') {
      ++i_;
      return true;
    }
    for (;;) {
      if (i_ >= s_.size() || s_[i_] != '"') return false;
      std::string_view name;
      bool escaped = false;
      if (!String(&name, &escaped)) return false;
      const std::string_view raw_name = name;
      if (escaped) {  // decoded into the reader's storage, whatever the depth
        names_->emplace_back();
        if (!JsonObjectReader::DecodeString(name, &names_->back())) return false;
        name = names_->back();
      }
      Space();
      if (i_ >= s_.size() || s_[i_] != ':') return false;
      ++i_;
      Space();
      JsonMember member{name, JsonKind::kNull, {}, raw_name};
      if (!Value(&member.kind, &member.raw, depth)) return false;
      out.push_back(member);
      Space();
      if (i_ >= s_.size()) return false;
      if (s_[i_] == '}') {
        ++i_;
        break;
      }
      if (s_[i_] != ',') return false;
      ++i_;
      Space();
    }
    // Duplicates by sorting (no quadratic case); the members' order does not matter.
    const auto by_name = [](const JsonMember &a, const JsonMember &b) { return a.name < b.name; };
    const auto same_name = [](const JsonMember &a, const JsonMember &b) {
      return a.name == b.name;
    };
    std::sort(out.begin(), out.end(), by_name);
    return std::adjacent_find(out.begin(), out.end(), same_name) == out.end();
  }

  std::string_view s_;
  size_t i_ = 0;
  std::deque<std::string> *names_;
};

}  // namespace

bool JsonObjectReader::Parse(std::string_view text) {
  members_.clear();
  decoded_names_.clear();
  Scanner scanner(text, &decoded_names_);
  if (!scanner.TopObject(&members_)) {
    members_.clear();
    return false;
  }
  return true;
}

const JsonMember *JsonObjectReader::Find(std::string_view name) const {
  for (const JsonMember &m : members_) {
    if (m.name == name) return &m;
  }
  return nullptr;
}

bool JsonObjectReader::DecodeString(std::string_view raw, std::string *out) {
  out->clear();
  out->reserve(raw.size());
  for (size_t i = 0; i < raw.size();) {
    if (raw[i] != '\\') {
      out->push_back(raw[i++]);
      continue;
    }
    if (i + 1 >= raw.size()) return false;
    const char e = raw[i + 1];
    if (e != 'u') {
      const char *from = "\"\\/bfnrt";
      const char *to = "\"\\/\b\f\n\r\t";
      const char *at = std::char_traits<char>::find(from, 8, e);
      if (at == nullptr) return false;
      out->push_back(to[at - from]);
      i += 2;
      continue;
    }
    uint32_t unit = 0;
    if (!Hex4(raw, i + 2, &unit)) return false;
    i += 6;
    if (unit >= 0xD800 && unit <= 0xDBFF) {
      uint32_t low = 0;
      if (i + 1 >= raw.size() || raw[i] != '\\' || raw[i + 1] != 'u' || !Hex4(raw, i + 2, &low)) {
        return false;
      }
      i += 6;
      unit = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
    }
    AppendUtf8(unit, out);
  }
  return true;
}

}  // namespace jnx::core
