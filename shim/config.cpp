#include "config.h"

#include <cerrno>
#include <cstdlib>
#include <limits>
#include <string>

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
            statement_timeout = config->statement_timeout_ms;
  const IntVar vars[] = {{"JNX_POOL_SIZE", 1, 256, &pool},
                         {"JNX_WORKERS", 1, 1024, &workers},
                         {"JNX_MAX_BODY_BYTES", 1, 64LL * 1024 * 1024, &body},
                         {"JNX_STATEMENT_TIMEOUT_MS", 100, 60000, &statement_timeout}};
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
  return true;
}

}  // namespace jnx::shim
