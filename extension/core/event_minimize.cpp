#include "event_minimize.h"

#include <utility>
#include <vector>

#include "json_scan.h"
#include "no_postgres.h"

namespace jnx::core {
namespace {

using Span = std::pair<size_t, size_t>;  // [begin, end) in the event

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

// A member's span grows to take the comma that separated it from its
// neighbour: the one after it (and the space up to the next member), or for
// the last member the one before it.
void Widen(std::string_view text, Span *span) {
  size_t after = span->second;
  while (after < text.size() && IsSpace(text[after])) ++after;
  if (after < text.size() && text[after] == ',') {
    span->second = after + 1;
    while (span->second < text.size() && IsSpace(text[span->second])) ++span->second;
    return;
  }
  size_t before = span->first;
  while (before > 0 && IsSpace(text[before - 1])) --before;
  if (before > 0 && text[before - 1] == ',') span->first = before - 1;
}

// The text without the spans (in order, not overlapping).
void Cut(std::string_view text, const std::vector<Span> &spans, std::string *out) {
  out->clear();
  size_t at = 0;
  for (const Span &span : spans) {
    // Two neighbours may both have claimed the comma between them.
    const size_t from = span.first < at ? at : span.first;
    out->append(text.substr(at, from - at));
    if (span.second > at) at = span.second;
  }
  out->append(text.substr(at));
}

// For a text the strict reader refuses (a \u0000 or a lone surrogate in some
// string, a byte-order mark, nesting deeper than it allows): follows only the
// structure of the top-level object and of its "event_attributes" objects.
// Strings are skipped by their quotes and backslashes, other values by
// bracket depth without recursion, so any depth is fine. Names are compared
// as written. Collects every "http_request" member found there.
class Lenient {
 public:
  explicit Lenient(std::string_view text) : s_(text) {}

  // false when the structure breaks.
  bool Scan(std::vector<Span> *spans) {
    if (s_.substr(0, 3) == "\xEF\xBB\xBF") i_ = 3;
    if (!Object(0, spans)) return false;
    Space();
    return i_ == s_.size();
  }

 private:
  void Space() {
    while (i_ < s_.size() && IsSpace(s_[i_])) ++i_;
  }

  // A string at s_[i_] == '"'; *raw gets its contents as written.
  bool String(std::string_view *raw) {
    const size_t start = ++i_;
    while (i_ < s_.size()) {
      if (s_[i_] == '\\') {
        i_ += 2;
        continue;
      }
      if (s_[i_] == '"') {
        *raw = s_.substr(start, i_ - start);
        ++i_;
        return true;
      }
      ++i_;
    }
    return false;
  }

  // Any value: a string, a bracketed value of any depth, or a scalar.
  bool Value() {
    if (i_ >= s_.size()) return false;
    std::string_view ignored;
    if (s_[i_] == '"') return String(&ignored);
    if (s_[i_] != '{' && s_[i_] != '[') {
      const size_t start = i_;
      while (i_ < s_.size() && s_[i_] != ',' && s_[i_] != '}' && s_[i_] != ']' &&
             !IsSpace(s_[i_])) {
        ++i_;
      }
      return i_ > start;
    }
    size_t depth = 0;
    while (i_ < s_.size()) {
      const char c = s_[i_];
      if (c == '"') {
        if (!String(&ignored)) return false;
        continue;
      }
      if (c == '{' || c == '[') ++depth;
      if ((c == '}' || c == ']') && --depth == 0) {
        ++i_;
        return true;
      }
      ++i_;
    }
    return false;
  }

  // An object at s_[i_]: the top (level 0) or an "event_attributes" (level 1).
  bool Object(int level, std::vector<Span> *spans) {
    Space();
    if (i_ >= s_.size() || s_[i_] != '{') return false;
    ++i_;
    Space();
    if (i_ < s_.size() && s_[i_] == '}') {
      ++i_;
      return true;
    }
    for (;;) {
      if (i_ >= s_.size() || s_[i_] != '"') return false;
      const size_t name_start = i_;
      std::string_view name;
      if (!String(&name)) return false;
      Space();
      if (i_ >= s_.size() || s_[i_] != ':') return false;
      ++i_;
      Space();
      if (level == 0 && name == "event_attributes" && i_ < s_.size() && s_[i_] == '{') {
        if (!Object(1, spans)) return false;
      } else {
        if (!Value()) return false;
        if (level == 1 && name == "http_request") spans->emplace_back(name_start, i_);
      }
      Space();
      if (i_ >= s_.size()) return false;
      if (s_[i_] == '}') {
        ++i_;
        return true;
      }
      if (s_[i_] != ',') return false;
      ++i_;
      Space();
    }
  }

  std::string_view s_;
  size_t i_ = 0;
};

}  // namespace

Minimized MinimizeEvent(std::string_view event, std::string *out) {
  JsonObjectReader top;
  if (!top.Parse(event)) {
    std::vector<Span> spans;
    if (!Lenient(event).Scan(&spans) || spans.empty()) return Minimized::kUnknown;
    for (Span &span : spans) Widen(event, &span);
    Cut(event, spans, out);
    return Minimized::kStrippedLeniently;
  }
  const JsonMember *attributes = top.Find("event_attributes");
  if (attributes == nullptr || attributes->kind != JsonKind::kObject) return Minimized::kUnchanged;
  // The object's text is a view into `event`, and so are its members' views.
  JsonObjectReader inner;
  if (!inner.Parse(attributes->raw)) return Minimized::kUnknown;  // valid above: cannot happen
  const JsonMember *http = inner.Find("http_request");
  if (http == nullptr) return Minimized::kUnchanged;

  // The member: from its name's opening quote to the end of its value (a
  // string's raw view leaves out its closing quote).
  const char *const base = event.data();
  Span span{static_cast<size_t>(http->raw_name.data() - base) - 1,
            static_cast<size_t>(http->raw.data() - base) + http->raw.size() +
                (http->kind == JsonKind::kString ? 1 : 0)};
  Widen(event, &span);
  Cut(event, {span}, out);
  return Minimized::kStripped;
}

}  // namespace jnx::core
