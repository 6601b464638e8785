#include "config.h"

#include <cerrno>
#include <cstdlib>
#include <limits>
#include <string>
#include <string_view>

namespace jnx::shim {
namespace {

bool ParseInt(const char *text, long long min, long long max, long long *out) {
  if (text == nullptr || *text == '\0') return false;
  errno = 0;
  char *end = nullptr;
  long long v = std::strtoll(text, &end, 10);
  if (errno != 0 || *end != '\0' || v < min || v > max) return false;
  *out = v;
  return true;
}

bool IsLowerAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

// One origin as a browser serializes it (RFC 6454, section 6.2): http or
// https, a lowercase host name, IPv4 or bracketed IPv6 address, and a port
// only when it is not the scheme's default; no path, not even "/". The
// header is compared byte for byte, so anything else could never match.
bool IsOrigin(std::string_view o) {
  std::string_view scheme_default;
  if (o.substr(0, 8) == "https://") {
    o.remove_prefix(8);
    scheme_default = "443";
  } else if (o.substr(0, 7) == "http://") {
    o.remove_prefix(7);
    scheme_default = "80";
  } else {
    return false;
  }
  size_t host_end = 0;
  if (!o.empty() && o[0] == '[') {
    host_end = o.find(']');
    if (host_end == std::string_view::npos || host_end < 3) return false;
    for (char c : o.substr(1, host_end - 1)) {
      const bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
      if (!hex && c != ':' && c != '.') return false;
    }
    ++host_end;
  } else {
    // Labels of [a-z0-9-], none empty, none starting or ending with '-'.
    size_t label = 0;
    for (; host_end < o.size() && o[host_end] != ':'; ++host_end) {
      const char c = o[host_end];
      if (c == '.') {
        if (label == 0 || o[host_end - 1] == '-') return false;
        label = 0;
      } else if (IsLowerAlnum(c) || (c == '-' && label > 0)) {
        ++label;
      } else {
        return false;
      }
    }
    if (label == 0 || o[host_end - 1] == '-') return false;
  }
  const std::string_view rest = o.substr(host_end);
  if (rest.empty()) return true;
  long long port = 0;
  const std::string digits(rest.substr(1));
  return rest[0] == ':' && digits[0] != '0' && digits != scheme_default &&
         ParseInt(digits.c_str(), 1, 65535, &port);
}

// JNX_CORS_ORIGINS: origins separated by commas, nothing else (no spaces).
bool ParseOrigins(std::string_view list, std::vector<std::string> *out, std::string *error) {
  constexpr size_t kMaxOrigins = 64;
  size_t item = 0;
  for (;;) {
    ++item;
    const size_t comma = list.find(',');
    const std::string_view origin = list.substr(0, comma);
    if (item > kMaxOrigins) {
      *error = "JNX_CORS_ORIGINS holds more than 64 origins";
      return false;
    }
    if (!IsOrigin(origin)) {
      // The item's number, not its text: the log stays free of what was typed.
      *error = "JNX_CORS_ORIGINS item " + std::to_string(item) +
               " is not an origin: write scheme://host[:port] as browsers send it "
               "(http or https, lowercase, no default port, no path or trailing slash), "
               "comma-separated without spaces; '*' and 'null' are refused";
      return false;
    }
    out->emplace_back(origin);
    if (comma == std::string_view::npos) return true;
    list.remove_prefix(comma + 1);
  }
}

}  // namespace

bool LoadConfig(Config *config, std::string *error) {
  if (const char *url = std::getenv("JNX_DATABASE_URL"); url != nullptr && *url != '\0') {
    config->database_url = url;
  }
  if (const char *listen = std::getenv("JNX_LISTEN"); listen != nullptr && *listen != '\0') {
    std::string value = listen;
    size_t colon = value.rfind(':');
    long long port = 0;
    if (colon == std::string::npos || colon == 0 ||
        !ParseInt(value.c_str() + colon + 1, 1, 65535, &port)) {
      *error = "JNX_LISTEN must be host:port";
      return false;
    }
    config->host = value.substr(0, colon);
    config->port = static_cast<int>(port);
  }
  struct IntVar {
    const char *name;
    long long min, max;
    long long *value;
  };
  long long pool = config->pool_size, workers = config->workers,
            body = static_cast<long long>(config->max_body_bytes),
            statement_timeout = config->statement_timeout_ms,
            stats_cache = config->stats_cache_seconds;
  const IntVar vars[] = {{"JNX_POOL_SIZE", 1, 256, &pool},
                         {"JNX_WORKERS", 1, 1024, &workers},
                         {"JNX_MAX_BODY_BYTES", 1, 64LL * 1024 * 1024, &body},
                         {"JNX_STATEMENT_TIMEOUT_MS", 100, 60000, &statement_timeout},
                         {"JNX_STATS_CACHE_SECONDS", 0, 3600, &stats_cache}};
  for (const IntVar &var : vars) {
    const char *text = std::getenv(var.name);
    if (text == nullptr || *text == '\0') continue;
    if (!ParseInt(text, var.min, var.max, var.value)) {
      *error = std::string(var.name) + " must be an integer between " + std::to_string(var.min) +
               " and " + std::to_string(var.max);
      return false;
    }
  }
  if (const char *pooling = std::getenv("JNX_TRANSACTION_POOLING");
      pooling != nullptr && *pooling != '\0') {
    const std::string value = pooling;
    if (value == "on" || value == "true" || value == "1") {
      config->transaction_pooling = true;
    } else if (value == "off" || value == "false" || value == "0") {
      config->transaction_pooling = false;
    } else {
      *error = "JNX_TRANSACTION_POOLING must be on or off";
      return false;
    }
  }
  config->pool_size = static_cast<int>(pool);
  config->workers = static_cast<int>(workers);
  config->max_body_bytes = static_cast<size_t>(body);
  config->statement_timeout_ms = static_cast<int>(statement_timeout);
  config->stats_cache_seconds = static_cast<int>(stats_cache);
  // Unset or empty, like every variable here: no CORS.
  if (const char *origins = std::getenv("JNX_CORS_ORIGINS"); origins != nullptr && *origins) {
    config->cors_origins.clear();
    if (!ParseOrigins(origins, &config->cors_origins, error)) return false;
  }
  return true;
}

}  // namespace jnx::shim
