// A fixed pool of libpq connections. Each Call() is one statement in its own
// transaction (autocommit) on one borrowed connection. Transient failures
// (connection lost, server shutting down or starting, serialization failure,
// deadlock, insufficient resources such as too many connections) are retried with exponential
// backoff and full jitter, bounded in count and in time; then the caller answers 503.
//
// Every wait on the database is bounded: connecting, sending and each result
// read wait on the socket with poll() and a deadline, never inside a blocking
// libpq call. A connection that broke, or did not answer in time, is dropped.
#pragma once

#include <libpq-fe.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "config.h"

namespace jnx::shim {

struct Param {
  const char *data = nullptr;  // nullptr: SQL NULL
  int length = 0;
  bool binary = false;
};

struct DbResult {
  enum class Kind { kOk, kSqlError, kUnavailable };
  Kind kind = Kind::kUnavailable;
  bool has_row = false;  // the last statement returned at least one row
  // The first row, text format; std::nullopt for SQL NULL, so that a NULL
  // where a document is expected is never mistaken for an empty one.
  std::vector<std::optional<std::string>> columns;
  std::string sqlstate;  // kSqlError / kUnavailable, when known

  // The first column of the first row when it is not NULL, else nullptr.
  const std::string *Document() const {
    return has_row && !columns.empty() && columns[0].has_value() ? &*columns[0] : nullptr;
  }
};

// SQLSTATE of a query the shim gave up on (the server did not answer before
// the client-side deadline); the same code as the server's statement_timeout.
constexpr const char *kQueryCanceledSqlstate = "57014";

// One statement: with a name, prepared once per connection; without, or
// behind a transaction pooler, sent unnamed (parsed each time). Parameters are
// always bound, never inlined.
struct Step {
  const char *name = nullptr;
  const char *sql = nullptr;
  std::vector<Param> params;
};

struct RetryPolicy {
  int max_attempts = 4;
  std::chrono::milliseconds base_delay{50};
  std::chrono::milliseconds budget{2000};  // no new attempt after this
  // How long each attempt waits for a free connection; negative: the pool's
  // own acquire timeout. A short bound for callers that must not queue
  // behind requests (the /metrics scrape).
  std::chrono::milliseconds acquire_timeout{-1};
};

// The pool's occupancy at one instant.
struct PoolSnapshot {
  int size = 0;     // connection slots (JNX_POOL_SIZE)
  int in_use = 0;   // slots lent to a request right now
  int waiting = 0;  // threads waiting for a slot
};

class Pool {
 public:
  // Fails (with *error naming the variable) when the conninfo cannot be parsed.
  static std::unique_ptr<Pool> Create(const Config &config, std::string *error);
  ~Pool();
  Pool(const Pool &) = delete;
  Pool &operator=(const Pool &) = delete;

  // Prepares `sql` as `name` once per connection and executes it.
  DbResult Call(const char *name, const char *sql, const std::vector<Param> &params,
                const RetryPolicy &policy = RetryPolicy());

  // Runs the steps in one transaction on one connection, in one round trip
  // (one pipeline, committed at its sync); the result is the last step's
  // first row. Any error rolls back and is returned; transient ones are
  // retried as a whole.
  DbResult Transaction(const std::vector<Step> &steps, const RetryPolicy &policy = RetryPolicy());

  // Thread-safe; holds the pool's mutex only to count.
  PoolSnapshot Snapshot();

 private:
  struct Slot {
    PGconn *conn = nullptr;
    std::vector<std::string> prepared;
    bool busy = false;
  };
  enum class Outcome { kDone, kBroken, kTimedOut };

  Pool(const Config &config, std::vector<std::string> keys, std::vector<std::string> values,
       std::string caller_options);
  Slot *Acquire(std::chrono::milliseconds timeout);
  void Release(Slot *slot);
  Outcome Attempt(Slot *slot, const std::vector<Step> &steps, DbResult *result);
  // One server of a multi-host conninfo: host, hostaddr and port as given.
  struct Host {
    std::string host, hostaddr, port;
  };
  static std::vector<Host> SplitHosts(const std::vector<std::string> &keys,
                                      const std::vector<std::string> &values);
  bool Connect(Slot *slot);
  bool ConnectTo(Slot *slot, const Host *host, std::chrono::milliseconds budget);
  static void Drop(Slot *slot);
  void CloseIdle();
  DbResult Run(const std::vector<Step> &steps, const RetryPolicy &policy);

  // Behind a transaction pooler from now on (JNX_TRANSACTION_POOLING, or
  // found out: see Attempt and Connect). Logs why, once.
  void UseTransactionPooling(const char *why);

  // The connection parameters: the caller's conninfo, parsed, with our defaults
  // where it is silent, except `options`: the caller's alone (behind a
  // transaction pooler), or with the statement timeout appended (direct).
  std::vector<std::string> keys_, values_;
  std::string caller_options_, direct_options_;
  std::string statement_timeout_;  // milliseconds, as text, for SET LOCAL
  std::atomic<bool> transaction_pooling_;
  // Several servers (failover): libpq's non-blocking connect has no per-host
  // timeout, so one that hangs would take the whole connect deadline and the
  // next would never be tried. Each is tried in turn with a share of it,
  // starting with the one that last answered. Empty for a single server.
  std::vector<Host> hosts_;
  std::atomic<size_t> preferred_host_{0};
  std::chrono::milliseconds acquire_timeout_, connect_timeout_, statement_deadline_;
  // Threads waiting for a slot, served first come, first served: a released
  // slot goes straight to the oldest waiter (a thread arriving meanwhile
  // cannot take it first, which made the p99 of a busy pool long).
  struct Waiter {
    std::condition_variable handed;
    Slot *slot = nullptr;
  };
  Slot *FreeSlot();  // with mutex_ held
  std::mutex mutex_;
  std::deque<Waiter *> waiters_;
  std::vector<Slot> slots_;
};

// read_only_sql_transaction: the server no longer takes writes (an old primary
// fenced with default_transaction_read_only, or a standby). The connection is
// dropped and the attempt retried, so that libpq's target_session_attrs can
// find the server that does.
constexpr const char *kReadOnlySqlstate = "25006";

// True for SQLSTATEs worth retrying on a new attempt.
bool IsTransientSqlstate(const std::string &sqlstate);

}  // namespace jnx::shim
