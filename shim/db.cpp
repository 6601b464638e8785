#include "db.h"

#include <poll.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstring>
#include <random>
#include <thread>

#include "log.h"

namespace jnx::shim {

using Clock = std::chrono::steady_clock;

bool IsTransientSqlstate(const std::string &s) {
  return s.rfind("08", 0) == 0  // connection exception
         || s == "40001"        // serialization_failure
         || s == "40P01"        // deadlock_detected
         || s == "53300"        // too_many_connections
         || s == "57P01"        // admin_shutdown
         || s == "57P02"        // crash_shutdown
         || s == "57P03"        // cannot_connect_now (starting up)
         || s == kReadOnlySqlstate;
}

namespace {

constexpr const char *kConnectionLost = "08006";
// PQcancel() blocks while it connects to the server; it runs on a detached
// thread, and no more than this many at once.
constexpr int kMaxCancelsInFlight = 4;
// Behind a transaction pooler, the first statement of every transaction: the
// statement timeout for the rest of it (SET LOCAL; ends with the transaction).
constexpr const char *kSetTimeoutSql =
    "SELECT pg_catalog.set_config('statement_timeout'::pg_catalog.text, $1::pg_catalog.text, true)";

// libpq prints server notices (such as "terminating connection due to
// immediate shutdown") raw on stderr; log them as JSON instead, with their
// severity and SQLSTATE only: a notice's text may quote data.
void LogNotice(void * /*arg*/, const PGresult *res) {
  const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
  const char *sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);
  WriteEventLog("warning", std::string("database ") + (severity != nullptr ? severity : "NOTICE") +
                               " " + (sqlstate != nullptr ? sqlstate : "-----"));
}

enum class Wait { kReady, kTimeout, kError };

// Waits until `fd` reports one of `events` (or an error or hang-up, which the
// caller then meets in libpq), or until the deadline.
Wait WaitFor(int fd, short events, Clock::time_point deadline, short *revents = nullptr) {
  if (fd < 0) return Wait::kError;
  for (;;) {
    // Rounded up, so that the last fraction of a millisecond is slept, not spun.
    const long long left =
        std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
    pollfd p{fd, events, 0};
    const int n = poll(&p, 1, left > 0 ? static_cast<int>(std::min<long long>(left, INT_MAX)) : 0);
    if (n > 0) {
      if (revents != nullptr) *revents = p.revents;
      return Wait::kReady;
    }
    if (n == 0 && Clock::now() >= deadline) return Wait::kTimeout;
    if (n < 0 && errno != EINTR) return Wait::kError;
  }
}

enum class Io { kOk, kBroken, kTimedOut };

// Sends what libpq holds (non-blocking mode), reading meanwhile so that a
// server writing to us cannot deadlock against our writing to it.
Io Flush(PGconn *conn, Clock::time_point deadline) {
  for (;;) {
    const int pending = PQflush(conn);
    if (pending == 0) return Io::kOk;
    if (pending < 0) return Io::kBroken;
    short revents = 0;
    switch (WaitFor(PQsocket(conn), POLLIN | POLLOUT, deadline, &revents)) {
      case Wait::kTimeout: return Io::kTimedOut;
      case Wait::kError: return Io::kBroken;
      case Wait::kReady: break;
    }
    if ((revents & POLLIN) != 0 && PQconsumeInput(conn) == 0) return Io::kBroken;
  }
}

// The next result without ever blocking in libpq: PQgetResult() is called
// only once PQisBusy() says it will not wait. *out may be nullptr (the end of
// one command's results).
Io NextResult(PGconn *conn, Clock::time_point deadline, PGresult **out) {
  *out = nullptr;
  while (PQisBusy(conn) != 0) {
    if (PQstatus(conn) != CONNECTION_OK) return Io::kBroken;
    const int pending = PQflush(conn);
    if (pending < 0) return Io::kBroken;
    const short events = pending == 1 ? (POLLIN | POLLOUT) : POLLIN;
    switch (WaitFor(PQsocket(conn), events, deadline)) {
      case Wait::kTimeout: return Io::kTimedOut;
      case Wait::kError: return Io::kBroken;
      case Wait::kReady: break;
    }
    if (PQconsumeInput(conn) == 0) return Io::kBroken;
  }
  *out = PQgetResult(conn);
  return Io::kOk;
}

// Asks the server to cancel what `conn` runs, without waiting for it.
void CancelInBackground(PGconn *conn) {
  static std::atomic<int> in_flight{0};
  if (in_flight.fetch_add(1) >= kMaxCancelsInFlight) {
    in_flight.fetch_sub(1);
    return;
  }
  PGcancel *cancel = PQgetCancel(conn);
  if (cancel == nullptr) {
    in_flight.fetch_sub(1);
    return;
  }
  try {
    std::thread([cancel] {
      char error[256];
      PQcancel(cancel, error, sizeof error);
      PQfreeCancel(cancel);
      in_flight.fetch_sub(1);
    }).detach();
  } catch (...) {  // no thread to be had: the statement timeout still ends the query
    PQfreeCancel(cancel);
    in_flight.fetch_sub(1);
  }
}

// Records the first failed result: its SQLSTATE, and whether trying again
// may help.
void SetError(const PGresult *res, DbResult *result) {
  const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
  result->sqlstate = state != nullptr ? state : kConnectionLost;
  result->kind = state == nullptr || IsTransientSqlstate(result->sqlstate)
                     ? DbResult::Kind::kUnavailable
                     : DbResult::Kind::kSqlError;
}

void CopyFirstRow(const PGresult *res, DbResult *result) {
  result->columns.clear();
  result->has_row = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) > 0;
  if (!result->has_row) return;
  for (int c = 0; c < PQnfields(res); ++c) {
    if (PQgetisnull(res, 0, c)) {
      result->columns.emplace_back(std::nullopt);
    } else {
      result->columns.emplace_back(
          std::string(PQgetvalue(res, 0, c), static_cast<size_t>(PQgetlength(res, 0, c))));
    }
  }
}

bool SendStep(PGconn *conn, const Step &step, bool named) {
  const size_t n = step.params.size();
  std::vector<const char *> values(n);
  std::vector<int> lengths(n), formats(n);
  for (size_t i = 0; i < n; ++i) {
    values[i] = step.params[i].data;
    lengths[i] = step.params[i].length;
    formats[i] = step.params[i].binary ? 1 : 0;
  }
  const int count = static_cast<int>(n);
  return named && step.name != nullptr
             ? PQsendQueryPrepared(conn, step.name, count, values.data(), lengths.data(),
                                   formats.data(), 0) == 1
             : PQsendQueryParams(conn, step.sql, count, nullptr, values.data(), lengths.data(),
                                 formats.data(), 0) == 1;
}

std::vector<std::string> SplitList(const std::string &list) {
  std::vector<std::string> items;
  size_t start = 0;
  for (;;) {
    const size_t comma = list.find(',', start);
    items.push_back(
        list.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) return items;
    start = comma + 1;
  }
}

}  // namespace

// libpq's rules: host and hostaddr list the servers (equally long when both
// are given); port has one entry for all or one per server. Anything else is
// left whole to libpq, which reports it.
std::vector<Pool::Host> Pool::SplitHosts(const std::vector<std::string> &keys,
                                         const std::vector<std::string> &values) {
  std::vector<std::string> host, hostaddr, port;
  for (size_t i = 0; i < keys.size(); ++i) {
    if (keys[i] == "host") host = SplitList(values[i]);
    if (keys[i] == "hostaddr") hostaddr = SplitList(values[i]);
    if (keys[i] == "port") port = SplitList(values[i]);
  }
  const size_t n = std::max(host.size(), hostaddr.size());
  if (n < 2 || (!host.empty() && host.size() != n) || (!hostaddr.empty() && hostaddr.size() != n) ||
      (port.size() > 1 && port.size() != n)) {
    return {};
  }
  std::vector<Host> hosts(n);
  for (size_t i = 0; i < n; ++i) {
    if (!host.empty()) hosts[i].host = host[i];
    if (!hostaddr.empty()) hosts[i].hostaddr = hostaddr[i];
    if (!port.empty()) hosts[i].port = port.size() == 1 ? port[0] : port[i];
  }
  return hosts;
}

std::unique_ptr<Pool> Pool::Create(const Config &config, std::string *error) {
  char *parse_error = nullptr;
  PQconninfoOption *options = PQconninfoParse(config.database_url.c_str(), &parse_error);
  if (options == nullptr) {
    if (parse_error != nullptr) PQfreemem(parse_error);
    *error = "JNX_DATABASE_URL is not a valid libpq conninfo";
    return nullptr;
  }
  std::vector<std::string> keys, values;
  std::string server_options;
  for (const PQconninfoOption *o = options; o->keyword != nullptr; ++o) {
    if (o->val == nullptr) continue;
    if (std::strcmp(o->keyword, "options") == 0) {
      server_options = o->val;
    } else {
      keys.emplace_back(o->keyword);
      values.emplace_back(o->val);
    }
  }
  PQconninfoFree(options);
  // The servers of a multi-host conninfo, one by one (see Pool::hosts_).
  std::vector<Pool::Host> hosts = SplitHosts(keys, values);
  if (hosts.size() > 1) {
    for (size_t i = keys.size(); i-- > 0;) {
      if (keys[i] == "host" || keys[i] == "hostaddr" || keys[i] == "port") {
        keys.erase(keys.begin() + static_cast<std::ptrdiff_t>(i));
        values.erase(values.begin() + static_cast<std::ptrdiff_t>(i));
      }
    }
  } else {
    hosts.clear();
  }
  // Named in pg_stat_activity unless the caller names it otherwise.
  keys.emplace_back("fallback_application_name");
  values.emplace_back("jnx-shim");
  std::unique_ptr<Pool> pool(
      new Pool(config, std::move(keys), std::move(values), std::move(server_options)));
  pool->hosts_ = std::move(hosts);
  return pool;
}

Pool::Pool(const Config &config, std::vector<std::string> keys, std::vector<std::string> values,
           std::string caller_options)
    : keys_(std::move(keys)),
      values_(std::move(values)),
      caller_options_(std::move(caller_options)),
      // Direct, the timeout is sent at connection start rather than by SET:
      // nothing to run per request, and the caller's own options are kept
      // (ours comes last, so it wins).
      direct_options_(caller_options_ + (caller_options_.empty() ? "" : " ") +
                      "-c statement_timeout=" + std::to_string(config.statement_timeout_ms)),
      statement_timeout_(std::to_string(config.statement_timeout_ms)),
      transaction_pooling_(config.transaction_pooling),
      acquire_timeout_(config.acquire_timeout_ms),
      connect_timeout_(config.connect_timeout_ms),
      statement_deadline_(config.statement_timeout_ms + config.statement_margin_ms),
      slots_(static_cast<size_t>(config.pool_size)) {}

Pool::~Pool() {
  for (Slot &slot : slots_) Drop(&slot);
}

Pool::Slot *Pool::FreeSlot() {
  // Prefer a slot that already has a connection.
  for (Slot &s : slots_) {
    if (!s.busy && s.conn != nullptr) return &s;
  }
  for (Slot &s : slots_) {
    if (!s.busy) return &s;
  }
  return nullptr;
}

Pool::Slot *Pool::Acquire(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (waiters_.empty()) {
    if (Slot *slot = FreeSlot(); slot != nullptr) {
      slot->busy = true;
      return slot;
    }
  }
  // One per thread, never freed (one per worker thread): Release signals it
  // after letting go of the mutex, when this call may have returned and even
  // its thread ended.
  thread_local Waiter &me = *new Waiter();  // NOLINT(cppcoreguidelines-owning-memory)
  me.slot = nullptr;
  waiters_.push_back(&me);
  if (!me.handed.wait_for(lock, timeout, [&] { return me.slot != nullptr; })) {
    waiters_.erase(std::find(waiters_.begin(), waiters_.end(), &me));
    return nullptr;
  }
  return me.slot;  // still marked busy: handed over by Release
}

PoolSnapshot Pool::Snapshot() {
  PoolSnapshot snapshot;
  std::lock_guard<std::mutex> lock(mutex_);
  snapshot.size = static_cast<int>(slots_.size());
  for (const Slot &slot : slots_) snapshot.in_use += slot.busy ? 1 : 0;
  snapshot.waiting = static_cast<int>(waiters_.size());
  return snapshot;
}

void Pool::Release(Slot *slot) {
  Waiter *next = nullptr;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (waiters_.empty()) {
      slot->busy = false;
      return;
    }
    next = waiters_.front();
    waiters_.pop_front();
    next->slot = slot;
  }
  // Signalled after the mutex is free: a waiter woken while it is held wakes
  // only to wait for the mutex, two more system calls and a context switch on
  // every hand-over of a busy pool.
  next->handed.notify_one();
}

void Pool::Drop(Slot *slot) {
  if (slot->conn != nullptr) PQfinish(slot->conn);
  slot->conn = nullptr;
  slot->prepared.clear();
}

void Pool::UseTransactionPooling(const char *why) {
  if (transaction_pooling_.exchange(true)) return;
  WriteEventLog("warning", std::string(why) +
                               ": a transaction pooler is in front of the database; statements "
                               "are sent unnamed from now on (set JNX_TRANSACTION_POOLING=on)");
}

// Non-blocking connect: PQconnectPoll() driven by poll() with a deadline
// (libpq's own connect_timeout applies only to its blocking connect).
bool Pool::Connect(Slot *slot) {
  Drop(slot);
  if (hosts_.empty()) return ConnectTo(slot, nullptr, connect_timeout_);
  const size_t n = hosts_.size();
  const size_t first = preferred_host_.load(std::memory_order_relaxed) % n;
  const auto deadline = Clock::now() + connect_timeout_;
  const auto share = std::max<std::chrono::milliseconds>(connect_timeout_ / static_cast<int>(n),
                                                         std::chrono::milliseconds(250));
  for (size_t k = 0; k < n; ++k) {
    const size_t i = (first + k) % n;
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) break;
    if (ConnectTo(slot, &hosts_[i], std::min(left, share))) {
      preferred_host_.store(i, std::memory_order_relaxed);
      return true;
    }
  }
  return false;
}

bool Pool::ConnectTo(Slot *slot, const Host *host, std::chrono::milliseconds budget) {
  const bool pooled = transaction_pooling_.load(std::memory_order_relaxed);
  std::vector<const char *> keys, values;
  for (size_t i = 0; i < keys_.size(); ++i) {
    keys.push_back(keys_[i].c_str());
    values.push_back(values_[i].c_str());
  }
  if (!pooled || !caller_options_.empty()) {
    keys.push_back("options");
    values.push_back(pooled ? caller_options_.c_str() : direct_options_.c_str());
  }
  if (host != nullptr) {
    const std::pair<const char *, const std::string *> fields[] = {
        {"host", &host->host}, {"hostaddr", &host->hostaddr}, {"port", &host->port}};
    for (const auto &[key, value] : fields) {
      if (value->empty()) continue;
      keys.push_back(key);
      values.push_back(value->c_str());
    }
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);
  PGconn *conn = PQconnectStartParams(keys.data(), values.data(), 0);
  if (conn == nullptr) return false;
  const auto deadline = Clock::now() + budget;
  PostgresPollingStatusType state = PGRES_POLLING_WRITING;  // as libpq documents for the start
  while (PQstatus(conn) != CONNECTION_BAD &&
         (state == PGRES_POLLING_READING || state == PGRES_POLLING_WRITING)) {
    const short events = state == PGRES_POLLING_READING ? POLLIN : POLLOUT;
    if (WaitFor(PQsocket(conn), events, deadline) != Wait::kReady) {
      state = PGRES_POLLING_FAILED;
      break;
    }
    state = PQconnectPoll(conn);
  }
  if (state != PGRES_POLLING_OK || PQstatus(conn) != CONNECTION_OK ||
      PQsetnonblocking(conn, 1) != 0) {
    // PgBouncer refuses startup parameters it does not know, `options` among
    // them: the next connection goes without (the timeout then per transaction).
    if (!pooled && std::strstr(PQerrorMessage(conn), "unsupported startup parameter") != nullptr) {
      UseTransactionPooling("the server refused the startup parameter options");
    }
    PQfinish(conn);
    return false;
  }
  PQsetNoticeReceiver(conn, LogNotice, nullptr);
  slot->conn = conn;
  return true;
}

Pool::Outcome Pool::Attempt(Slot *slot, const std::vector<Step> &steps, DbResult *result) {
  *result = DbResult();
  // An idle connection has nothing to say. If it became readable, the server
  // wrote before it went away (a FATAL or a warning at shutdown or crash)
  // and closed it: find out now, and connect afresh instead of failing the
  // request on it. libpq sees the EOF only on a read that finds nothing
  // else, hence reading until the socket is quiet (a few reads at most).
  if (slot->conn != nullptr) {
    bool healthy = PQstatus(slot->conn) == CONNECTION_OK && PQsocket(slot->conn) >= 0;
    for (int reads = 0; healthy && reads < 8; ++reads) {
      pollfd p{PQsocket(slot->conn), POLLIN, 0};
      if (poll(&p, 1, 0) <= 0) break;
      healthy = PQconsumeInput(slot->conn) == 1 && PQstatus(slot->conn) == CONNECTION_OK;
    }
    if (!healthy || PQisBusy(slot->conn) != 0 || PQtransactionStatus(slot->conn) != PQTRANS_IDLE) {
      Drop(slot);
    }
  }
  if (slot->conn == nullptr && !Connect(slot)) {
    result->sqlstate = kConnectionLost;
    return Outcome::kBroken;
  }
  PGconn *conn = slot->conn;

  // Whatever goes wrong from here on leaves the connection in an unknown
  // state: it is closed, never reused, never waited on again.
  auto abandon = [&](Io io) {
    result->kind = DbResult::Kind::kUnavailable;
    if (io == Io::kTimedOut) {
      CancelInBackground(conn);
      result->sqlstate = kQueryCanceledSqlstate;
    } else if (!IsTransientSqlstate(result->sqlstate)) {
      result->sqlstate = kConnectionLost;
    }
    Drop(slot);
    return io == Io::kTimedOut ? Outcome::kTimedOut : Outcome::kBroken;
  };

  // One round trip: prepares for statements new to this connection, the
  // steps, then a sync (libpq pipeline mode). The steps are one transaction
  // without BEGIN or COMMIT: in the extended protocol the server commits at
  // the sync, or, after an error, skips the remaining steps and rolls back
  // there. Parameters travel apart from the statement text, so a failed
  // authentication never writes a token into the server's log.
  // Behind a transaction pooler nothing outlives the transaction: every
  // statement is unnamed, and the statement timeout is its first statement.
  struct Command {
    enum Kind { kPrepare, kStep, kSetTimeout } kind;
    size_t step;
  };
  const bool pooled = transaction_pooling_.load(std::memory_order_relaxed);
  std::vector<Command> commands;
  bool sent = PQenterPipelineMode(conn) == 1;
  if (pooled && sent) {
    const char *timeout[] = {statement_timeout_.c_str()};
    sent = PQsendQueryParams(conn, kSetTimeoutSql, 1, nullptr, timeout, nullptr, nullptr, 0) == 1;
    commands.push_back({Command::kSetTimeout, 0});
  }
  for (size_t i = 0; sent && i < steps.size(); ++i) {
    const char *name = steps[i].name;
    if (pooled || name == nullptr ||
        std::find(slot->prepared.begin(), slot->prepared.end(), name) != slot->prepared.end()) {
      continue;
    }
    sent = PQsendPrepare(conn, name, steps[i].sql, static_cast<int>(steps[i].params.size()),
                         nullptr) == 1;
    commands.push_back({Command::kPrepare, i});
  }
  for (size_t i = 0; sent && i < steps.size(); ++i) {
    sent = SendStep(conn, steps[i], !pooled);
    commands.push_back({Command::kStep, i});
  }
  sent = sent && PQpipelineSync(conn) == 1;
  if (!sent) return abandon(Io::kBroken);
  const auto deadline = Clock::now() + statement_deadline_;
  if (const Io io = Flush(conn, deadline); io != Io::kOk) return abandon(io);

  // Each command's results end with a NULL; the sync's result ends it all.
  // Counting both bounds the loop even if the connection misbehaves. An
  // error after the last command's results is the commit's own (a deferred
  // constraint, a serialization failure found at commit): the transaction's
  // error, on a connection that is fine.
  size_t finished = 0, results = 0;
  bool failed = false, commit_failed = false, commit_finished = false;
  for (;;) {
    PGresult *res = nullptr;
    if (const Io io = NextResult(conn, deadline, &res); io != Io::kOk) return abandon(io);
    if (res == nullptr) {
      if (PQstatus(conn) != CONNECTION_OK) return abandon(Io::kBroken);
      if (finished < commands.size()) {
        ++finished;
      } else if (commit_failed && !commit_finished) {
        commit_finished = true;
      } else {
        return abandon(Io::kBroken);
      }
      continue;
    }
    const ExecStatusType status = PQresultStatus(res);
    if (status == PGRES_PIPELINE_SYNC) {
      PQclear(res);
      break;
    }
    if (finished >= commands.size() && status == PGRES_FATAL_ERROR && !commit_failed) {
      commit_failed = true;
      if (!failed) SetError(res, result);
      failed = true;
      PQclear(res);
      continue;
    }
    if (++results > commands.size() || finished >= commands.size()) {
      PQclear(res);
      return abandon(Io::kBroken);
    }
    const Command &command = commands[finished];
    if (status == PGRES_FATAL_ERROR) {
      if (!failed) SetError(res, result);
      failed = true;
    } else if (status == PGRES_PIPELINE_ABORTED) {
      if (!failed) result->sqlstate = kConnectionLost;  // cannot happen without an error first
      failed = true;
    } else if (command.kind == Command::kPrepare && status == PGRES_COMMAND_OK) {
      slot->prepared.emplace_back(steps[command.step].name);
    } else if (command.kind == Command::kStep && command.step + 1 == steps.size()) {
      CopyFirstRow(res, result);
    }
    PQclear(res);
  }
  // After the sync the transaction is over, committed or rolled back. A
  // connection left in one anyway is never reused.
  if (PQexitPipelineMode(conn) != 1 || PQtransactionStatus(conn) != PQTRANS_IDLE) {
    if (!failed) return abandon(Io::kBroken);
    Drop(slot);  // the error stands; only the connection is lost
  }
  if (!failed) {
    result->kind = DbResult::Kind::kOk;
    return Outcome::kDone;
  }
  // A named statement the server session does not have, or has already: a
  // transaction pooler gave this connection another session than the one it
  // was prepared on. Unnamed from now on, on new connections, and tried again.
  if (!pooled && (result->sqlstate == "26000" || result->sqlstate == "42P05")) {
    UseTransactionPooling("a prepared statement was missing or already there");
    Drop(slot);
    result->kind = DbResult::Kind::kUnavailable;
    result->sqlstate = kConnectionLost;  // the connection is dropped: retried
    return Outcome::kBroken;
  }
  // A server that takes no writes: it is not the primary (any more). A new
  // connection lets libpq look for the one that is.
  if (result->sqlstate == kReadOnlySqlstate) {
    Drop(slot);
    return Outcome::kBroken;
  }
  return Outcome::kDone;
}

// A connection found broken means the server restarted or the network broke:
// every idle connection is then most likely broken too. Closing them all lets
// the next attempts connect afresh instead of each finding another dead one.
void Pool::CloseIdle() {
  std::lock_guard<std::mutex> lock(mutex_);
  for (Slot &slot : slots_) {
    if (!slot.busy) Drop(&slot);
  }
}

DbResult Pool::Call(const char *name, const char *sql, const std::vector<Param> &params,
                    const RetryPolicy &policy) {
  Step step;
  step.name = name;
  step.sql = sql;
  step.params = params;
  return Run({step}, policy);
}

DbResult Pool::Transaction(const std::vector<Step> &steps, const RetryPolicy &policy) {
  return Run(steps, policy);
}

DbResult Pool::Run(const std::vector<Step> &steps, const RetryPolicy &policy) {
  thread_local std::minstd_rand rng(std::random_device{}());
  const auto deadline = Clock::now() + policy.budget;
  DbResult result;
  for (int attempt = 1; attempt <= policy.max_attempts; ++attempt) {
    Slot *slot =
        Acquire(policy.acquire_timeout.count() < 0 ? acquire_timeout_ : policy.acquire_timeout);
    if (slot == nullptr) {
      result = DbResult();
      result.sqlstate = "53300";  // no free connection in time
    } else {
      Outcome outcome = Outcome::kDone;
      try {
        outcome = Attempt(slot, steps, &result);
      } catch (...) {  // out of memory mid-exchange: the connection's state is unknown
        Drop(slot);
        Release(slot);
        throw;
      }
      Release(slot);
      if (outcome == Outcome::kBroken) CloseIdle();
    }
    // A query that timed out is not tried again: it would most likely time
    // out again, and the caller's own deadline (Svix's 15 s) would pass.
    if (result.kind != DbResult::Kind::kUnavailable || !IsTransientSqlstate(result.sqlstate) ||
        attempt == policy.max_attempts) {
      break;
    }
    // Full jitter: sleep a random time up to base * 2^(attempt-1).
    const auto cap = policy.base_delay * (1 << (attempt - 1));
    std::uniform_int_distribution<long> dist(0, static_cast<long>(cap.count()));
    const auto delay = std::chrono::milliseconds(dist(rng));
    if (Clock::now() + delay >= deadline) break;
    std::this_thread::sleep_for(delay);
  }
  return result;
}

}  // namespace jnx::shim
