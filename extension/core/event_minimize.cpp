#include "event_minimize.h"

#include "json_scan.h"
#include "no_postgres.h"

namespace jnx::core {
namespace {

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

}  // namespace

Minimized MinimizeEvent(std::string_view event, std::string *out) {
  JsonObjectReader top;
  if (!top.Parse(event)) return Minimized::kUnknown;
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
  size_t begin = static_cast<size_t>(http->raw_name.data() - base) - 1;
  size_t end = static_cast<size_t>(http->raw.data() - base) + http->raw.size() +
               (http->kind == JsonKind::kString ? 1 : 0);
  // With the comma after it, and the space up to the next member; the last
  // member takes the comma before it instead.
  size_t after = end;
  while (after < event.size() && IsSpace(event[after])) ++after;
  if (after < event.size() && event[after] == ',') {
    end = after + 1;
    while (end < event.size() && IsSpace(event[end])) ++end;
  } else {
    size_t before = begin;
    while (before > 0 && IsSpace(event[before - 1])) --before;
    if (before > 0 && event[before - 1] == ',') begin = before - 1;
  }
  out->assign(event.substr(0, begin));
  out->append(event.substr(end));
  return Minimized::kStripped;
}

}  // namespace jnx::core
