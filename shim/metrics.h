// The shim's Prometheus metrics (GET /metrics, text exposition format 0.0.4).
//
// Every label takes its value from a fixed set: route patterns from the route
// table (or "unmatched"), a handful of method names, three-digit statuses,
// the reasons and outcomes the shim itself answers with, SQLSTATE classes. No
// label ever holds a path, a user id, an email, a token, a svix id or an
// address, and the number of series is bounded whatever clients send.
//
// Counting is lock-free: one relaxed atomic add per counter touched, a few
// per request. Rendering reads the same atomics; it never blocks a request.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "db.h"

namespace jnx::shim {

// The fields of jnx.stats() exposed as gauges, as one row of columns.
struct StatsSnapshot {
  static constexpr size_t kFields = 11;
  bool attempted = false;  // a refresh has run at least once
  bool up = false;         // the last refresh succeeded
  // From the last refresh, when it succeeded; std::nullopt for SQL NULL.
  std::array<std::optional<long long>, kFields> values;
  std::chrono::steady_clock::time_point refreshed_at;  // of those values
};

class Metrics {
 public:
  // `routes`: the route table's patterns (string literals), in its order.
  // Route index routes.size() stands for "unmatched".
  explicit Metrics(std::vector<const char *> routes);
  Metrics(const Metrics &) = delete;
  Metrics &operator=(const Metrics &) = delete;

  size_t unmatched_route() const { return routes_.size(); }

  // One answered request: its route index, method, status and duration.
  void ObserveRequest(size_t route, std::string_view method, int status,
                      std::chrono::nanoseconds duration);
  // The status jnx.ingest_clerk_webhook answered (processed, duplicate, ...).
  void WebhookOutcome(std::string_view status);
  // The reason of a 4xx answer on the webhook route (bad_signature, ...).
  void WebhookRejected(std::string_view reason);
  // A failed database call. `unavailable`: no usable answer from the server
  // (DbResult::Kind::kUnavailable).
  void DbError(std::string_view sqlstate, bool unavailable);
  // A 401 on a session route: the SQLSTATE that caused it (JX101..JX111,
  // JX201), or empty with the answered reason (missing_token, invalid_token).
  void TokenFailure(std::string_view sqlstate, std::string_view reason);

  // The exposition, with the pool's occupancy and the cached jnx.stats().
  std::string Render(const PoolSnapshot &pool, const StatsSnapshot &stats) const;

 private:
  static constexpr size_t kMethods = 5;            // GET, HEAD, POST, OPTIONS, other
  static constexpr size_t kStatuses = 500;         // 100..599
  static constexpr size_t kBuckets = 15;           // 14 bounds and +Inf
  static constexpr size_t kClasses = 36 * 36 + 1;  // [0-9A-Z]{2}, and "unavailable"

  struct Histogram {
    std::array<std::atomic<uint64_t>, kBuckets> buckets{};  // not cumulative
    std::atomic<uint64_t> sum_ns{0};
  };

  std::vector<const char *> routes_;
  // [route][method][status - 100]
  std::unique_ptr<std::atomic<uint64_t>[]> requests_;
  std::unique_ptr<Histogram[]> durations_;  // [route]
  std::array<std::atomic<uint64_t>, 5> webhook_outcomes_{};
  std::array<std::atomic<uint64_t>, 12> webhook_rejected_{};
  std::array<std::atomic<uint64_t>, kClasses> db_errors_{};
  std::array<std::atomic<uint64_t>, 12> token_failures_{};
  std::atomic<uint64_t> out_of_range_status_{0};
  double start_time_seconds_;
};

// jnx.stats(), cached for a few seconds (JNX_STATS_CACHE_SECONDS). A
// scrape never waits on the database for longer than kScrapeWait: it asks a
// refresher thread of its own for new values when the cached ones are older
// than the cache period, waits that long for them, and otherwise answers with
// what it has. One refresh runs at a time, with one attempt and at most 100 ms
// of waiting for a pooled connection. A database that is down, slow, or
// reached through a pooler that queues the query holds up only the refresher;
// up turns false once that refresh fails.
class StatsCache {
 public:
  static constexpr std::chrono::milliseconds kScrapeWait{250};

  StatsCache(Pool &pool, Metrics &metrics, std::chrono::seconds ttl);
  ~StatsCache();  // stops the refresher, after the refresh in flight if any
  StatsCache(const StatsCache &) = delete;
  StatsCache &operator=(const StatsCache &) = delete;
  StatsSnapshot Get();

 private:
  void Refresher();
  StatsSnapshot Fetch();

  Pool &pool_;
  Metrics &metrics_;
  std::chrono::seconds ttl_;
  std::mutex mutex_;  // guards the fields below
  std::condition_variable wake_, done_;
  bool requested_ = false, stopping_ = false;
  uint64_t completed_ = 0;  // refreshes finished, successful or not
  StatsSnapshot snapshot_;
  std::chrono::steady_clock::time_point last_attempt_;
  // Started by the first scrape, on a serving thread: it inherits the mask
  // that keeps SIGTERM for main()'s signal thread.
  std::thread thread_;
};

}  // namespace jnx::shim
