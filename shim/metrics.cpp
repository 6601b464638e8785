#include "metrics.h"

#include <cstdio>
#include <cstdlib>
#include <system_error>

#ifndef JNX_EXTVERSION
#error "JNX_EXTVERSION must be defined by the build"
#endif

namespace jnx::shim {
namespace {

using Clock = std::chrono::steady_clock;

constexpr const char *kMethodNames[] = {"GET", "HEAD", "POST", "OPTIONS", "other"};

// Upper bounds of the latency buckets: the shim answers in 1-50 ms; the tail
// reaches the acquire (2 s) and statement (5 s + 1 s) deadlines.
constexpr uint64_t kBucketBoundsNs[] = {500'000,       1'000'000,     2'500'000,     5'000'000,
                                        10'000'000,    25'000'000,    50'000'000,    100'000'000,
                                        250'000'000,   500'000'000,   1'000'000'000, 2'500'000'000,
                                        5'000'000'000, 10'000'000'000};
constexpr const char *kBucketLabels[] = {"0.0005", "0.001", "0.0025", "0.005", "0.01",
                                         "0.025",  "0.05",  "0.1",    "0.25",  "0.5",
                                         "1",      "2.5",   "5",      "10",    "+Inf"};

constexpr const char *kWebhookOutcomes[] = {"processed", "duplicate", "stale", "ignored",
                                            "dead_letter"};
// The 4xx reasons the shim answers on the webhook route; the last is "other".
constexpr const char *kWebhookRejections[] = {
    "malformed_headers",      "bad_signature", "stale_timestamp", "payload_too_large",
    "unsupported_media_type", "bad_request",   "bad_framing",     "headers_too_large",
    "request_timeout",        "uri_too_long",  "not_found",       "other"};

// Why a session route answered 401: the token's SQLSTATE (docs/API.md,
// "Errors"), or what the shim refused before the database.
struct TokenReason {
  const char *sqlstate;  // nullptr: matched by the answered reason instead
  const char *label;
};
constexpr TokenReason kTokenReasons[] = {
    {"JX101", "malformed"},
    {"JX102", "unknown_key"},
    {"JX103", "algorithm"},
    {"JX104", "signature"},
    {"JX105", "expired"},
    {"JX106", "not_yet_valid"},
    {"JX107", "issuer"},
    {"JX108", "party"},
    {"JX111", "wrong_type"},
    {"JX201", "not_authenticated"},
    {nullptr, "missing_token"},
    // A token too large for a header line, or any 401 not listed above.
    {nullptr, "invalid_token"}};

// The jnx.stats() fields exposed, in column order: the JSON path, the metric,
// its label (name="value"), and whether it is an age in seconds (advanced by
// the time the value has been cached, so that it stays true between refreshes).
struct StatsField {
  const char *path;
  const char *metric;
  const char *label;
  bool age;
};
constexpr StatsField kStatsFields[] = {
    {"{webhook_events_24h,processing}", "jnx_webhook_events_24h", "status=\"processing\"", false},
    {"{webhook_events_24h,processed}", "jnx_webhook_events_24h", "status=\"processed\"", false},
    {"{webhook_events_24h,stale}", "jnx_webhook_events_24h", "status=\"stale\"", false},
    {"{webhook_events_24h,ignored}", "jnx_webhook_events_24h", "status=\"ignored\"", false},
    {"{webhook_events_24h,dead_letter}", "jnx_webhook_events_24h", "status=\"dead_letter\"", false},
    {"{dead_letters_waiting}", "jnx_dead_letters_waiting", nullptr, false},
    {"{oldest_dead_letter_age_seconds}", "jnx_oldest_dead_letter_age_seconds", nullptr, true},
    {"{provisional_users_over_1h}", "jnx_provisional_users_over_1h", nullptr, false},
    {"{erasures_waiting}", "jnx_erasures_waiting", nullptr, false},
    {"{config_age_seconds,webhook_secrets}", "jnx_config_age_seconds",
     "setting=\"webhook_secrets\"", true},
    {"{config_age_seconds,token_config}", "jnx_config_age_seconds", "setting=\"token_config\"",
     true},
};
static_assert(sizeof kStatsFields / sizeof kStatsFields[0] == StatsSnapshot::kFields);

struct StatsHelp {
  const char *metric;
  const char *help;
};
constexpr StatsHelp kStatsHelp[] = {
    {"jnx_webhook_events_24h",
     "Webhook deliveries received in the last 24 hours, by ledger status (jnx.stats())."},
    {"jnx_dead_letters_waiting", "Dead letters not yet replayed (jnx.stats())."},
    {"jnx_oldest_dead_letter_age_seconds",
     "Age of the oldest dead letter waiting; absent when none waits (jnx.stats())."},
    {"jnx_provisional_users_over_1h",
     "Users created from a session token over an hour ago whose user.created never came "
     "(jnx.stats())."},
    {"jnx_erasures_waiting", "Users deleted in Clerk awaiting hard erasure (jnx.stats())."},
    {"jnx_config_age_seconds",
     "Seconds since each setting was last written; absent when never set (jnx.stats())."},
};

// Every name qualified, as in main.cpp: the login role's search_path must not
// be able to redirect an operator, a type or the function.
std::string StatsSql() {
  std::string sql = "SELECT ";
  for (size_t i = 0; i < StatsSnapshot::kFields; ++i) {
    if (i > 0) sql += ", ";
    sql += "(s OPERATOR(pg_catalog.#>>) '";
    sql += kStatsFields[i].path;
    sql += "'::pg_catalog.text[])::pg_catalog.int8";
  }
  sql += " FROM jnx.stats() AS s";
  return sql;
}

size_t MethodIndex(std::string_view method) {
  for (size_t i = 0; i + 1 < std::size(kMethodNames); ++i) {
    if (method == kMethodNames[i]) return i;
  }
  return std::size(kMethodNames) - 1;
}

// [0-9A-Z] -> 0..35, else -1.
int ClassChar(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'Z') return c - 'A' + 10;
  return -1;
}

char ClassCharOf(size_t i) {
  return static_cast<char>(i < 10 ? '0' + i : 'A' + (i - 10));
}

void Family(std::string &out, const char *name, const char *type, const char *help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

// name{labels} value
void Sample(std::string &out, std::string_view name, std::string_view labels,
            std::string_view value) {
  out += name;
  if (!labels.empty()) {
    out += '{';
    out += labels;
    out += '}';
  }
  out += ' ';
  out += value;
  out += '\n';
}

std::string Label(const char *name, std::string_view value) {
  std::string out = name;
  out += "=\"";
  out += value;  // every value is one of ours: nothing to escape
  out += '"';
  return out;
}

std::string Seconds(double seconds) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.9g", seconds);
  return buf;
}

}  // namespace

Metrics::Metrics(std::vector<const char *> routes)
    : routes_(std::move(routes)),
      requests_(new std::atomic<uint64_t>[(routes_.size() + 1) * kMethods * kStatuses]()),
      durations_(new Histogram[routes_.size() + 1]()),
      start_time_seconds_(
          std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
              .count()) {}

void Metrics::ObserveRequest(size_t route, std::string_view method, int status,
                             std::chrono::nanoseconds duration) {
  if (route > routes_.size()) route = routes_.size();
  if (status >= 100 && status < 600) {
    const size_t index =
        (route * kMethods + MethodIndex(method)) * kStatuses + static_cast<size_t>(status - 100);
    requests_[index].fetch_add(1, std::memory_order_relaxed);
  } else {
    out_of_range_status_.fetch_add(1, std::memory_order_relaxed);
  }
  const uint64_t ns = duration.count() > 0 ? static_cast<uint64_t>(duration.count()) : 0;
  size_t bucket = 0;
  while (bucket < std::size(kBucketBoundsNs) && ns > kBucketBoundsNs[bucket]) ++bucket;
  Histogram &h = durations_[route];
  h.buckets[bucket].fetch_add(1, std::memory_order_relaxed);
  h.sum_ns.fetch_add(ns, std::memory_order_relaxed);
}

void Metrics::WebhookOutcome(std::string_view status) {
  for (size_t i = 0; i < std::size(kWebhookOutcomes); ++i) {
    if (status == kWebhookOutcomes[i]) {
      webhook_outcomes_[i].fetch_add(1, std::memory_order_relaxed);
      return;
    }
  }
}

void Metrics::WebhookRejected(std::string_view reason) {
  size_t i = 0;
  while (i + 1 < std::size(kWebhookRejections) && reason != kWebhookRejections[i]) ++i;
  webhook_rejected_[i].fetch_add(1, std::memory_order_relaxed);
}

void Metrics::DbError(std::string_view sqlstate, bool unavailable) {
  // No connection, or it broke: class 08 (which the shim also reports when
  // the server sent no SQLSTATE) and 53300 (which it also reports when no
  // pooled connection was free in time) count as "unavailable".
  size_t index = kClasses - 1;
  const bool no_connection = sqlstate.substr(0, 2) == "08" || (unavailable && sqlstate == "53300");
  if (sqlstate.size() == 5 && !no_connection) {
    const int a = ClassChar(sqlstate[0]), b = ClassChar(sqlstate[1]);
    if (a >= 0 && b >= 0) index = static_cast<size_t>(a) * 36 + static_cast<size_t>(b);
  }
  db_errors_[index].fetch_add(1, std::memory_order_relaxed);
}

void Metrics::TokenFailure(std::string_view sqlstate, std::string_view reason) {
  size_t i = 0;
  for (; i + 1 < std::size(kTokenReasons); ++i) {
    const TokenReason &r = kTokenReasons[i];
    if (r.sqlstate != nullptr ? sqlstate == r.sqlstate : sqlstate.empty() && reason == r.label) {
      break;
    }
  }
  token_failures_[i].fetch_add(1, std::memory_order_relaxed);
}

std::string Metrics::Render(const PoolSnapshot &pool, const StatsSnapshot &stats) const {
  std::string out;
  out.reserve(size_t{24} * 1024);
  const auto load = [](const std::atomic<uint64_t> &a) {
    return std::to_string(a.load(std::memory_order_relaxed));
  };
  const auto route_name = [this](size_t r) {
    return r < routes_.size() ? std::string_view(routes_[r]) : std::string_view("unmatched");
  };

  Family(out, "jnx_http_requests_total", "counter",
         "HTTP requests answered, by route pattern (or unmatched), method and status.");
  for (size_t r = 0; r <= routes_.size(); ++r) {
    for (size_t m = 0; m < kMethods; ++m) {
      for (size_t s = 0; s < kStatuses; ++s) {
        const uint64_t n =
            requests_[(r * kMethods + m) * kStatuses + s].load(std::memory_order_relaxed);
        if (n == 0) continue;
        Sample(out, "jnx_http_requests_total",
               Label("route", route_name(r)) + "," + Label("method", kMethodNames[m]) + "," +
                   Label("status", std::to_string(s + 100)),
               std::to_string(n));
      }
    }
  }

  Family(out, "jnx_http_request_duration_seconds", "histogram",
         "Time from a request's header section to its answer, by route pattern.");
  for (size_t r = 0; r <= routes_.size(); ++r) {
    const Histogram &h = durations_[r];
    const std::string route = Label("route", route_name(r));
    uint64_t cumulative = 0;
    for (size_t b = 0; b < kBuckets; ++b) {
      cumulative += h.buckets[b].load(std::memory_order_relaxed);
      Sample(out, "jnx_http_request_duration_seconds_bucket",
             route + "," + Label("le", kBucketLabels[b]), std::to_string(cumulative));
    }
    Sample(out, "jnx_http_request_duration_seconds_sum", route,
           Seconds(static_cast<double>(h.sum_ns.load(std::memory_order_relaxed)) / 1e9));
    Sample(out, "jnx_http_request_duration_seconds_count", route, std::to_string(cumulative));
  }

  Family(out, "jnx_webhook_outcomes_total", "counter",
         "Webhook deliveries the database answered 200, by its status.");
  for (size_t i = 0; i < std::size(kWebhookOutcomes); ++i) {
    Sample(out, "jnx_webhook_outcomes_total", Label("outcome", kWebhookOutcomes[i]),
           load(webhook_outcomes_[i]));
  }
  Family(out, "jnx_webhook_rejected_total", "counter",
         "Webhook deliveries answered 4xx, by the reason answered.");
  for (size_t i = 0; i < std::size(kWebhookRejections); ++i) {
    Sample(out, "jnx_webhook_rejected_total", Label("reason", kWebhookRejections[i]),
           load(webhook_rejected_[i]));
  }
  Family(out, "jnx_token_failures_total", "counter",
         "Session-route requests answered 401, by the token's failure.");
  for (size_t i = 0; i < std::size(kTokenReasons); ++i) {
    Sample(out, "jnx_token_failures_total", Label("reason", kTokenReasons[i].label),
           load(token_failures_[i]));
  }
  Family(out, "jnx_db_errors_total", "counter",
         "Failed database calls, by SQLSTATE class; unavailable: no connection or it broke.");
  Sample(out, "jnx_db_errors_total", Label("class", "unavailable"), load(db_errors_[kClasses - 1]));
  for (size_t i = 0; i + 1 < kClasses; ++i) {
    const uint64_t n = db_errors_[i].load(std::memory_order_relaxed);
    if (n == 0) continue;
    const char cls[] = {ClassCharOf(i / 36), ClassCharOf(i % 36), '\0'};
    Sample(out, "jnx_db_errors_total", Label("class", cls), std::to_string(n));
  }

  Family(out, "jnx_db_pool_size", "gauge", "Database connection slots (JNX_POOL_SIZE).");
  Sample(out, "jnx_db_pool_size", "", std::to_string(pool.size));
  Family(out, "jnx_db_pool_in_use", "gauge", "Database connections lent to a request.");
  Sample(out, "jnx_db_pool_in_use", "", std::to_string(pool.in_use));
  Family(out, "jnx_db_pool_waiting", "gauge", "Requests waiting for a database connection.");
  Sample(out, "jnx_db_pool_waiting", "", std::to_string(pool.waiting));

  Family(out, "jnx_stats_up", "gauge",
         "1 when the last refresh of jnx.stats() succeeded, else 0 (its gauges are then absent).");
  Sample(out, "jnx_stats_up", "", stats.up ? "1" : "0");
  if (stats.up) {
    const double age = std::chrono::duration<double>(Clock::now() - stats.refreshed_at).count();
    Family(out, "jnx_stats_age_seconds", "gauge",
           "Seconds since the jnx.stats() values below were read (JNX_STATS_CACHE_SECONDS).");
    Sample(out, "jnx_stats_age_seconds", "", Seconds(age));
    const auto whole_age = static_cast<long long>(age);
    for (const StatsHelp &family : kStatsHelp) {
      bool any = false;
      for (size_t i = 0; i < StatsSnapshot::kFields; ++i) {
        any = any || (stats.values[i].has_value() &&
                      std::string_view(kStatsFields[i].metric) == family.metric);
      }
      if (!any) continue;  // NULL: absent, never a made-up number
      Family(out, family.metric, "gauge", family.help);
      for (size_t i = 0; i < StatsSnapshot::kFields; ++i) {
        const StatsField &field = kStatsFields[i];
        if (!stats.values[i].has_value() || std::string_view(field.metric) != family.metric) {
          continue;
        }
        const long long value = *stats.values[i] + (field.age ? whole_age : 0);
        Sample(out, field.metric, field.label != nullptr ? field.label : "", std::to_string(value));
      }
    }
  }

  Family(out, "jnx_build_info", "gauge", "The shim's version (built for this extension version).");
  Sample(out, "jnx_build_info", Label("version", JNX_EXTVERSION), "1");
  Family(out, "jnx_process_start_time_seconds", "gauge",
         "When the shim started, in seconds since the Unix epoch.");
  char start[32];
  std::snprintf(start, sizeof start, "%.3f", start_time_seconds_);
  Sample(out, "jnx_process_start_time_seconds", "", start);
  Family(out, "jnx_up", "gauge", "1 while the shim serves.");
  Sample(out, "jnx_up", "", "1");
  return out;
}

StatsCache::StatsCache(Pool &pool, Metrics &metrics, std::chrono::seconds ttl)
    : pool_(pool), metrics_(metrics), ttl_(ttl) {}

StatsCache::~StatsCache() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

StatsSnapshot StatsCache::Get() {
  std::unique_lock<std::mutex> lock(mutex_);
  if (snapshot_.attempted && Clock::now() - last_attempt_ < ttl_) return snapshot_;
  if (!thread_.joinable()) {
    try {
      thread_ = std::thread(&StatsCache::Refresher, this);
    } catch (const std::system_error &) {
      return snapshot_;  // no thread to be had: answer without fresh stats
    }
  }
  const uint64_t seen = completed_;
  requested_ = true;
  wake_.notify_one();
  done_.wait_for(lock, kScrapeWait, [&] { return completed_ != seen; });
  return snapshot_;
}

void StatsCache::Refresher() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    wake_.wait(lock, [this] { return requested_ || stopping_; });
    if (stopping_) return;
    requested_ = false;
    lock.unlock();
    StatsSnapshot next;
    try {
      next = Fetch();
    } catch (...) {  // out of memory: nothing may leave this thread
      next = StatsSnapshot();
      next.attempted = true;
    }
    lock.lock();
    snapshot_ = next;
    last_attempt_ = Clock::now();
    ++completed_;
    done_.notify_all();
  }
}

StatsSnapshot StatsCache::Fetch() {
  static const std::string sql = StatsSql();  // built once, on this thread
  RetryPolicy once;
  once.max_attempts = 1;
  // Not the pool's 2 s: the refresh never queues behind the requests for long.
  once.acquire_timeout = std::chrono::milliseconds(100);
  const DbResult r = pool_.Call("jnx_stats", sql.c_str(), {}, once);
  const bool ok =
      r.kind == DbResult::Kind::kOk && r.has_row && r.columns.size() == StatsSnapshot::kFields;
  StatsSnapshot next;
  next.attempted = true;
  next.up = ok;
  if (ok) {
    next.refreshed_at = Clock::now();
    for (size_t i = 0; i < StatsSnapshot::kFields; ++i) {
      if (!r.columns[i].has_value()) continue;
      char *end = nullptr;
      const long long v = std::strtoll(r.columns[i]->c_str(), &end, 10);
      if (end != r.columns[i]->c_str() && *end == '\0') next.values[i] = v;
    }
  } else if (r.kind != DbResult::Kind::kOk) {
    metrics_.DbError(r.sqlstate, r.kind == DbResult::Kind::kUnavailable);
  }
  return next;
}

}  // namespace jnx::shim
