// jnx-shim configuration, read once from the environment.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace jnx::shim {

struct Config {
  std::string database_url = "dbname=jnx";      // JNX_DATABASE_URL, a libpq conninfo or URI
  std::string host = "127.0.0.1";               // JNX_LISTEN host part
  int port = 8787;                              // JNX_LISTEN port part
  int pool_size = 8;                            // JNX_POOL_SIZE: database connections
  int workers = 128;                            // JNX_WORKERS: HTTP worker threads
  size_t max_body_bytes = size_t{1024} * 1024;  // JNX_MAX_BODY_BYTES
  int acquire_timeout_ms = 2000;                // wait for a free connection before 503
  int connect_timeout_ms = 3000;                // a new database connection, start to ready
  // JNX_STATEMENT_TIMEOUT_MS: the server's statement_timeout on our connections.
  // Svix gives up on a delivery after 15 s; the slowest answer we can give is
  // acquire (2 s) + connect (3 s) + statement (5 s) + client margin (1 s) = 11 s,
  // so even a stuck query is answered 503 before Svix counts a timeout. A
  // webhook or /api/me normally takes a few milliseconds.
  int statement_timeout_ms = 5000;
  // Beyond the statement timeout, how long we still wait for the server's own
  // answer before cancelling the query and dropping the connection.
  int statement_margin_ms = 1000;
  // JNX_CORS_ORIGINS: the browser origins (scheme://host[:port], exactly as
  // browsers send them) allowed to call the session routes. Empty: no CORS.
  std::vector<std::string> cors_origins;
  // JNX_STATS_CACHE_SECONDS: how long /metrics serves jnx.stats() from its
  // cache before one scrape asks the database again (0: every scrape asks).
  int stats_cache_seconds = 10;
  // JNX_TRANSACTION_POOLING=on: JNX_DATABASE_URL points at a pooler in
  // transaction mode (PgBouncer pool_mode = transaction), where consecutive
  // transactions of one connection may run on different server sessions.
  // Nothing session-level is used then: statements are sent unnamed and the
  // statement timeout is set inside each transaction (SET LOCAL), not at
  // connection start. Off: named statements prepared once per connection.
  bool transaction_pooling = false;
};

// Fills *config from the environment; on a bad value returns false and sets *error
// (which names the variable, never its value: a URL may hold a password).
bool LoadConfig(Config *config, std::string *error);

}  // namespace jnx::shim
