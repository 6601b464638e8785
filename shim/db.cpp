#include "db.h"

#include <algorithm>
#include <random>
#include <thread>

#include "log.h"

namespace jnx::shim {

bool IsTransientSqlstate(const std::string &s) {
  return s.rfind("08", 0) == 0  // connection exception
         || s == "40001"        // serialization_failure
         || s == "40P01"        // deadlock_detected
         || s == "53300"        // too_many_connections
         || s == "57P01"        // admin_shutdown
         || s == "57P02"        // crash_shutdown
         || s == "57P03";       // cannot_connect_now (starting up)
}

namespace {

// libpq prints server notices (such as "terminating connection due to
// immediate shutdown") raw on stderr; log them as JSON instead, with their
// severity and SQLSTATE only: a notice's text may quote data.
void LogNotice(void * /*arg*/, const PGresult *res) {
  const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
  const char *sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);
  WriteEventLog("warning", std::string("database ") + (severity != nullptr ? severity : "NOTICE") +
                               " " + (sqlstate != nullptr ? sqlstate : "-----"));
}

}  // namespace

Pool::Pool(const Config &config)
    : conninfo_(config.database_url),
      acquire_timeout_(config.acquire_timeout_ms),
      slots_(static_cast<size_t>(config.pool_size)) {}

Pool::~Pool() {
  for (Slot &slot : slots_) {
    if (slot.conn != nullptr) PQfinish(slot.conn);
  }
}

Pool::Slot *Pool::Acquire() {
  std::unique_lock<std::mutex> lock(mutex_);
  Slot *found = nullptr;
  auto free_slot = [&] {
    // Prefer a slot that already has a connection.
    for (Slot &s : slots_) {
      if (!s.busy && s.conn != nullptr) return found = &s, true;
    }
    for (Slot &s : slots_) {
      if (!s.busy) return found = &s, true;
    }
    return false;
  };
  if (!available_.wait_for(lock, acquire_timeout_, free_slot)) return nullptr;
  found->busy = true;
  return found;
}

void Pool::Release(Slot *slot) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    slot->busy = false;
  }
  available_.notify_one();
}

bool Pool::Connect(Slot *slot) {
  if (slot->conn != nullptr && PQstatus(slot->conn) == CONNECTION_OK) return true;
  if (slot->conn != nullptr) PQfinish(slot->conn);
  slot->prepared.clear();
  // Our defaults first: the caller's conninfo (expanded from dbname) overrides them.
  const char *keys[] = {"application_name", "connect_timeout", "dbname", nullptr};
  const char *values[] = {"jnx-shim", "3", conninfo_.c_str(), nullptr};
  slot->conn = PQconnectdbParams(keys, values, 1);
  if (slot->conn == nullptr || PQstatus(slot->conn) != CONNECTION_OK) return false;
  PQsetNoticeReceiver(slot->conn, LogNotice, nullptr);
  return true;
}

namespace {

// Fills `result` from a failed PGresult; the connection decides transient.
void SetError(PGconn *conn, const PGresult *res, DbResult *result) {
  const char *state = res != nullptr ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
  if (state == nullptr || PQstatus(conn) != CONNECTION_OK) {
    // libpq's own failure: the connection is gone (server stopped, network).
    result->kind = DbResult::Kind::kUnavailable;
    result->sqlstate = state != nullptr ? state : "08006";
  } else {
    result->sqlstate = state;
    result->kind = IsTransientSqlstate(result->sqlstate) ? DbResult::Kind::kUnavailable
                                                         : DbResult::Kind::kSqlError;
  }
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

bool Simple(PGconn *conn, const char *sql, DbResult *result) {
  PGresult *res = PQexec(conn, sql);
  const bool ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;
  if (!ok) SetError(conn, res, result);
  PQclear(res);
  return ok;
}

}  // namespace

DbResult Pool::Attempt(Slot *slot, const std::vector<Step> &steps, bool transaction) {
  DbResult result;
  if (!Connect(slot)) {
    result.kind = DbResult::Kind::kUnavailable;
    result.sqlstate = "08006";
    return result;
  }
  PGconn *conn = slot->conn;
  // Named steps are prepared once per connection, before the pipeline.
  for (const Step &step : steps) {
    if (step.name == nullptr || std::find(slot->prepared.begin(), slot->prepared.end(),
                                          step.name) != slot->prepared.end()) {
      continue;
    }
    PGresult *prep =
        PQprepare(conn, step.name, step.sql, static_cast<int>(step.params.size()), nullptr);
    const bool prepared = PQresultStatus(prep) == PGRES_COMMAND_OK;
    if (!prepared) SetError(conn, prep, &result);
    PQclear(prep);
    if (!prepared) return result;
    slot->prepared.emplace_back(step.name);
  }
  if (transaction) {
    // BEGIN, the steps and COMMIT in one round trip (libpq pipeline mode).
    // Parameters travel apart from the statement text, so a failed
    // authentication never writes a token into the server's log.
    bool sent = PQenterPipelineMode(conn) == 1 &&
                PQsendQueryParams(conn, "BEGIN", 0, nullptr, nullptr, nullptr, nullptr, 0) == 1;
    for (const Step &step : steps) {
      if (!sent) break;
      std::vector<const char *> values(step.params.size());
      std::vector<int> lengths(step.params.size()), formats(step.params.size());
      for (size_t i = 0; i < step.params.size(); ++i) {
        values[i] = step.params[i].data;
        lengths[i] = step.params[i].length;
        formats[i] = step.params[i].binary ? 1 : 0;
      }
      const int n = static_cast<int>(step.params.size());
      sent = step.name != nullptr ? PQsendQueryPrepared(conn, step.name, n, values.data(),
                                                        lengths.data(), formats.data(), 0) == 1
                                  : PQsendQueryParams(conn, step.sql, n, nullptr, values.data(),
                                                      lengths.data(), formats.data(), 0) == 1;
    }
    sent = sent &&
           PQsendQueryParams(conn, "COMMIT", 0, nullptr, nullptr, nullptr, nullptr, 0) == 1 &&
           PQpipelineSync(conn) == 1;
    bool ok = sent;
    if (!sent) SetError(conn, nullptr, &result);
    // Results: BEGIN, each step, COMMIT (each followed by a NULL), then the sync.
    for (size_t index = 0; sent && index <= steps.size() + 1; ++index) {
      PGresult *res = PQgetResult(conn);
      if (res == nullptr) {
        SetError(conn, nullptr, &result);
        ok = false;
        break;
      }
      const ExecStatusType status = PQresultStatus(res);
      if (status == PGRES_FATAL_ERROR) {
        if (ok) SetError(conn, res, &result);
        ok = false;
      } else if (ok && index == steps.size()) {
        CopyFirstRow(res, &result);
      }
      PQclear(res);
      while (PGresult *extra = PQgetResult(conn)) PQclear(extra);  // the NULL after each command
    }
    // The sync marks the end of the pipeline.
    while (sent) {
      PGresult *res = PQgetResult(conn);
      if (res == nullptr) {
        if (PQstatus(conn) != CONNECTION_OK) break;  // the connection died: no sync will come
        continue;
      }
      const bool done = PQresultStatus(res) == PGRES_PIPELINE_SYNC;
      PQclear(res);
      if (done || PQstatus(conn) != CONNECTION_OK) break;
    }
    if (PQstatus(conn) == CONNECTION_OK) PQexitPipelineMode(conn);
    if (!ok && PQstatus(conn) == CONNECTION_OK && PQtransactionStatus(conn) != PQTRANS_IDLE) {
      DbResult ignored;
      Simple(conn, "ROLLBACK", &ignored);
    }
    if (ok && PQstatus(conn) != CONNECTION_OK) {
      SetError(conn, nullptr, &result);
      ok = false;
    }
    if (ok) result.kind = DbResult::Kind::kOk;
    return result;
  }
  for (const Step &step : steps) {
    const int n = static_cast<int>(step.params.size());
    if (std::find(slot->prepared.begin(), slot->prepared.end(), step.name) ==
        slot->prepared.end()) {
      PGresult *prep = PQprepare(conn, step.name, step.sql, n, nullptr);
      const bool prepared = PQresultStatus(prep) == PGRES_COMMAND_OK;
      if (!prepared) SetError(conn, prep, &result);
      PQclear(prep);
      if (!prepared) return result;
      slot->prepared.emplace_back(step.name);
    }
    std::vector<const char *> values(step.params.size());
    std::vector<int> lengths(step.params.size()), formats(step.params.size());
    for (size_t i = 0; i < step.params.size(); ++i) {
      values[i] = step.params[i].data;
      lengths[i] = step.params[i].length;
      formats[i] = step.params[i].binary ? 1 : 0;
    }
    PGresult *res =
        PQexecPrepared(conn, step.name, n, values.data(), lengths.data(), formats.data(), 0);
    const ExecStatusType status = PQresultStatus(res);
    if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
      SetError(conn, res, &result);
      PQclear(res);
      return result;
    }
    CopyFirstRow(res, &result);
    PQclear(res);
  }
  result.kind = DbResult::Kind::kOk;
  return result;
}

// A connection found broken means the server restarted or the network broke:
// every idle connection is then most likely broken too. Closing them all lets
// the next attempts connect afresh instead of each finding another dead one.
void Pool::CloseIdle() {
  std::lock_guard<std::mutex> lock(mutex_);
  for (Slot &slot : slots_) {
    if (!slot.busy && slot.conn != nullptr) {
      PQfinish(slot.conn);
      slot.conn = nullptr;
      slot.prepared.clear();
    }
  }
}

DbResult Pool::Call(const char *name, const char *sql, const std::vector<Param> &params,
                    const RetryPolicy &policy) {
  Step step;
  step.name = name;
  step.sql = sql;
  step.params = params;
  return Run({step}, false, policy);
}

DbResult Pool::Transaction(const std::vector<Step> &steps, const RetryPolicy &policy) {
  return Run(steps, true, policy);
}

DbResult Pool::Run(const std::vector<Step> &steps, bool transaction, const RetryPolicy &policy) {
  thread_local std::minstd_rand rng(std::random_device{}());
  const auto deadline = std::chrono::steady_clock::now() + policy.budget;
  DbResult result;
  for (int attempt = 1; attempt <= policy.max_attempts; ++attempt) {
    Slot *slot = Acquire();
    if (slot == nullptr) {
      result = DbResult();
      result.sqlstate = "53300";  // no free connection in time
    } else {
      result = Attempt(slot, steps, transaction);
      const bool broken = result.kind == DbResult::Kind::kUnavailable && slot->conn != nullptr &&
                          PQstatus(slot->conn) != CONNECTION_OK;
      if (broken) {
        PQfinish(slot->conn);
        slot->conn = nullptr;
        slot->prepared.clear();
      }
      Release(slot);
      if (broken) CloseIdle();
    }
    if (result.kind != DbResult::Kind::kUnavailable || attempt == policy.max_attempts) break;
    // Full jitter: sleep a random time up to base * 2^(attempt-1).
    const auto cap = policy.base_delay * (1 << (attempt - 1));
    std::uniform_int_distribution<long> dist(0, static_cast<long>(cap.count()));
    const auto delay = std::chrono::milliseconds(dist(rng));
    if (std::chrono::steady_clock::now() + delay >= deadline) break;
    std::this_thread::sleep_for(delay);
  }
  return result;
}

}  // namespace jnx::shim
