#include "log.h"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace jnx::shim {
namespace {

std::mutex log_mutex;

std::string NowIso8601() {
  using namespace std::chrono;
  const auto now = system_clock::now();
  const auto ms = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
  const std::time_t t = system_clock::to_time_t(now);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  return buf;
}

void Emit(const std::string &line) {
  std::lock_guard<std::mutex> lock(log_mutex);
  std::fwrite(line.data(), 1, line.size(), stdout);
  std::fflush(stdout);
}

}  // namespace

std::string JsonEscape(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (char c : in) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c >= 0x20 && c < 0x7f) {
      out.push_back(c);
    }
  }
  return out;
}

void WriteRequestLog(const RequestLog &e) {
  std::string line = "{\"ts\":\"" + NowIso8601() + "\",\"level\":\"info\",\"request_id\":\"" +
                     JsonEscape(e.request_id) + "\",\"method\":\"" + JsonEscape(e.method) +
                     "\",\"route\":\"" + JsonEscape(e.route) +
                     "\",\"status\":" + std::to_string(e.status);
  if (e.duration_ms >= 0) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3f", e.duration_ms);
    line += ",\"duration_ms\":";
    line += buf;
  }
  if (!e.svix_id.empty()) line += ",\"svix_id\":\"" + JsonEscape(e.svix_id) + "\"";
  if (!e.outcome.empty()) line += ",\"outcome\":\"" + JsonEscape(e.outcome) + "\"";
  if (!e.sqlstate.empty()) line += ",\"sqlstate\":\"" + JsonEscape(e.sqlstate) + "\"";
  line += "}\n";
  Emit(line);
}

void WriteEventLog(std::string_view level, std::string_view message) {
  Emit("{\"ts\":\"" + NowIso8601() + "\",\"level\":\"" + JsonEscape(level) + "\",\"msg\":\"" +
       JsonEscape(message) + "\"}\n");
}

}  // namespace jnx::shim
