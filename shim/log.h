// One JSON line per request on stdout. Only what is safe to keep: no body, no
// token, no email, no IP address, no query string.
#pragma once

#include <string>
#include <string_view>

namespace jnx::shim {

struct RequestLog {
  std::string request_id;
  std::string method;
  std::string route;  // the route pattern, never the raw path
  int status = 0;
  double duration_ms = -1;  // negative: not measured (rejected before routing)
  std::string svix_id;      // only after the database accepted it as well-formed
  std::string outcome;      // webhook status or error reason
  std::string sqlstate;
};

void WriteRequestLog(const RequestLog &entry);
void WriteEventLog(std::string_view level, std::string_view message);

// Escapes a string for a JSON string literal; drops control characters and
// non-ASCII bytes (ids and reasons are ASCII; anything else is not logged).
std::string JsonEscape(std::string_view in);

}  // namespace jnx::shim
