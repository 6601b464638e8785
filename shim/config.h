// jnx-shim configuration, read once from the environment.
#pragma once

#include <cstddef>
#include <string>

namespace jnx::shim {

struct Config {
  std::string database_url = "dbname=jnx";      // JNX_DATABASE_URL, a libpq conninfo or URI
  std::string host = "127.0.0.1";               // JNX_LISTEN host part
  int port = 8787;                              // JNX_LISTEN port part
  int pool_size = 16;                           // JNX_POOL_SIZE: database connections
  int workers = 32;                             // JNX_WORKERS: HTTP worker threads
  size_t max_body_bytes = size_t{1024} * 1024;  // JNX_MAX_BODY_BYTES
  int acquire_timeout_ms = 2000;                // wait for a free connection before 503
};

// Fills *config from the environment; on a bad value returns false and sets *error
// (which names the variable, never its value: a URL may hold a password).
bool LoadConfig(Config *config, std::string *error);

}  // namespace jnx::shim
