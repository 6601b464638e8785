// jnx-shim: forwards Clerk webhooks to jnx.ingest_clerk_webhook and maps the
// database's answer to HTTP. It verifies nothing and parses no body itself:
// the database decides, the shim translates SQLSTATEs into status codes.
#include <httplib.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <thread>

#include "config.h"
#include "db.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "refresh_jwks.h"
#include "status.h"

#ifndef JNX_EXTVERSION
#error "JNX_EXTVERSION must be defined by the build"
#endif
// 0 builds a shim that counts nothing per request (its /metrics still
// answers): for test/bench/metrics_cost.sh, which measures what counting costs.
#ifndef JNX_METRICS_BOOKKEEPING
#define JNX_METRICS_BOOKKEEPING 1
#endif

namespace jnx::shim {
namespace {

// Every name qualified: these statements are parsed under the login role's
// search_path ("$user", public), where any role with CREATE on public could
// add, say, a ->>(jsonb, jsonb) that reads 'status' as jsonb and fails every
// delivery.
constexpr const char *kIngestSql =
    "SELECT r::pg_catalog.text, r OPERATOR(pg_catalog.->>) 'status'::pg_catalog.text "
    "FROM jnx.ingest_clerk_webhook($1::pg_catalog.text, $2::pg_catalog.text, "
    "$3::pg_catalog.text, $4::pg_catalog.bytea) AS r";
constexpr const char *kVersionSql =
    "SELECT extversion FROM pg_catalog.pg_extension "
    "WHERE extname OPERATOR(pg_catalog.=) 'jnx_auth'::pg_catalog.name";
// Authenticates and switches to the authenticated role in one statement:
// set_config('role', ..., true) is SET LOCAL ROLE, with the same membership
// check, as a function. If authenticate() fails, the statement fails and the
// transaction ends without the switch.
constexpr const char *kAuthenticateSql =
    "SELECT jnx.authenticate($1::pg_catalog.text) IS NOT NULL, "
    "pg_catalog.set_config('role'::pg_catalog.text, 'authenticated'::pg_catalog.text, true)";
constexpr const char *kMeSql = "SELECT jnx.me()::pg_catalog.text";
constexpr const char *kExportMeSql = "SELECT jnx.export_me()::pg_catalog.text";
// An absent limit is the default page size (100). COALESCE is syntax, not a
// function: no search path can reach it.
constexpr const char *kAdminUsersSql =
    "SELECT jnx.admin_list_users($1::pg_catalog.text, "
    "COALESCE($2::pg_catalog.int4, 100), $3::pg_catalog.text)::pg_catalog.text";
constexpr const char *kGoneBody =
    R"({"error":"gone","detail":"This route was retired; see docs/API.md, section \"Retired routes\"."})";
constexpr const char *kRetryAfterSeconds = "5";
constexpr int kListenBacklog = 1024;
constexpr const char *kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

// CORS, on the session routes only, and only for the origins JNX_CORS_ORIGINS
// lists. Tokens travel in Authorization, which the page's script sets; the
// shim reads no cookie, so Access-Control-Allow-Credentials is never sent
// (and a browser then never sends cookies along: nothing ambient to abuse).
constexpr const char *kCorsAllowMethods = "GET, HEAD";
// X-Request-Id: a page may send its own request id (docs/API.md), kept by the shim.
constexpr const char *kCorsAllowHeaders = "Authorization, Content-Type, X-Request-Id";
constexpr const char *kCorsExposeHeaders =
    "X-Request-Id, Retry-After, Content-Disposition, WWW-Authenticate";
constexpr const char *kCorsMaxAge = "600";
constexpr const char *kCorsPreflightVary =
    "Origin, Access-Control-Request-Method, Access-Control-Request-Headers";

enum class RouteKind { kWebhook, kMe, kMeExport, kAdminUsers, kHealth, kReady, kMetrics, kRetired };

struct Route {
  const char *path;
  RouteKind kind;
};

// Every route the shim knows. The screen below refuses what does not fit a
// route before any body is read; the handlers are registered from it.
constexpr Route kRoutes[] = {
    {"/api/webhooks/clerk", RouteKind::kWebhook},
    {"/api/me", RouteKind::kMe},
    {"/api/me/export", RouteKind::kMeExport},
    {"/api/admin/users", RouteKind::kAdminUsers},
    {"/healthz", RouteKind::kHealth},
    {"/readyz", RouteKind::kReady},
    // Prometheus text; the edge never serves it (404 there).
    {"/metrics", RouteKind::kMetrics},
    // The old Next.js routes are retired, not silently missing: 410 whatever
    // the method.
    {"/api/auth/login", RouteKind::kRetired},
    {"/api/auth/signup", RouteKind::kRetired},
    {"/api/auth/user", RouteKind::kRetired},
};

const Route *FindRoute(const std::string &path) {
  for (const Route &route : kRoutes) {
    if (path == route.path) return &route;
  }
  return nullptr;
}

bool MethodAllowed(const Route &route, const std::string &method) {
  if (route.kind == RouteKind::kWebhook) return method == "POST";
  return method == "GET" || method == "HEAD";
}

bool IsSessionRoute(const Route *route) {
  return route != nullptr &&
         (route->kind == RouteKind::kMe || route->kind == RouteKind::kMeExport ||
          route->kind == RouteKind::kAdminUsers);
}

// Per-request facts gathered by the handlers and written by the logger.
struct RequestContext {
  std::chrono::steady_clock::time_point start;
  bool started = false;
  std::string request_id;
  const Route *route = nullptr;
  Framing framing;
  std::string svix_id;
  std::string outcome;
  std::string sqlstate;
  bool db_failed = false;       // a database call failed (sqlstate says how)
  bool db_unavailable = false;  // ... without a usable answer from the server
};
// Default construction allocates nothing and cannot throw.
thread_local RequestContext context;  // NOLINT(cert-err58-cpp)

std::string NewRequestId() {
  thread_local std::mt19937_64 rng(std::random_device{}());
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(rng()));
  return buf;
}

// A caller's X-Request-Id is kept when it is short and plain; otherwise ours.
std::string RequestIdFor(const httplib::Request &req) {
  std::string given = req.get_header_value("X-Request-Id");
  if (given.empty() || given.size() > 64) return NewRequestId();
  for (char c : given) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') {
      return NewRequestId();
    }
  }
  return given;
}

// The path of a request target, for requests cpp-httplib could not parse
// (it sets the target before it checks the method).
std::string TargetPath(const httplib::Request &req) {
  if (!req.path.empty()) return req.path;
  return req.target.substr(0, req.target.find('?'));
}

// The request's Origin when it is sent once and is one of JNX_CORS_ORIGINS,
// byte for byte (read as sent, not %XX-decoded); else empty.
std::string AllowedOrigin(const Config &config) {
  const ConnectionStream *conn = CurrentConnection();
  if (conn == nullptr) return "";
  const std::vector<std::string_view> values = HeaderValues(conn->raw_headers(), "origin");
  if (values.size() != 1) return "";
  for (const std::string &origin : config.cors_origins) {
    if (values[0] == origin) return origin;
  }
  return "";
}

// On a session route with CORS configured, every answer varies by Origin
// (caches must keep a listed origin's answer from another's); a listed
// origin is allowed to read it. Nothing anywhere else.
void ApplyCors(const Config &config, const httplib::Request &req, httplib::Response &res) {
  if (config.cors_origins.empty() || !IsSessionRoute(context.route)) return;
  const bool preflight = req.method == "OPTIONS";
  res.set_header("Vary", preflight ? kCorsPreflightVary : "Origin");
  const std::string origin = AllowedOrigin(config);
  if (origin.empty()) return;
  res.set_header("Access-Control-Allow-Origin", origin);
  if (!preflight) res.set_header("Access-Control-Expose-Headers", kCorsExposeHeaders);
}

void StartRequest(const Config &config, const httplib::Request &req, httplib::Response &res) {
  context = RequestContext();
  context.start = std::chrono::steady_clock::now();
  context.started = true;
  context.request_id = RequestIdFor(req);
  context.route = FindRoute(TargetPath(req));
  res.set_header("X-Request-Id", context.request_id);
  ApplyCors(config, req, res);
}

void NoteDbFailure(const DbResult &r) {
  context.sqlstate = r.sqlstate;
  context.db_failed = true;
  context.db_unavailable = r.kind == DbResult::Kind::kUnavailable;
}

// The response ends the connection: what follows the request's headers in the
// stream (an unread body) cannot be taken for a next request.
void CloseConnection() {
  if (ConnectionStream *conn = CurrentConnection()) conn->CloseAfterResponse();
}

void JsonError(httplib::Response &res, int status, const std::string &reason) {
  res.status = status;
  res.set_content("{\"error\":\"" + JsonEscape(reason) + "\"}", "application/json");
  context.outcome = reason;
}

void Unavailable(httplib::Response &res, const std::string &reason) {
  res.set_header("Retry-After", kRetryAfterSeconds);
  JsonError(res, 503, reason);
}

void Unauthorized(httplib::Response &res, const std::string &reason, bool invalid_token) {
  res.set_header("WWW-Authenticate",
                 invalid_token ? "Bearer error=\"invalid_token\"" : "Bearer realm=\"jnx\"");
  JsonError(res, 401, reason);
}

// A CORS preflight (OPTIONS) on a session route, CORS configured: 204 with
// the grant when the origin is listed and the method is one the route
// serves; else 403 cors_not_allowed, with no Access-Control-Allow-* header.
// The headers a preflight asks for are not checked: the browser compares
// them with the list answered.
void Preflight(httplib::Response &res) {
  const ConnectionStream *conn = CurrentConnection();
  const std::vector<std::string_view> methods =
      conn != nullptr ? HeaderValues(conn->raw_headers(), "access-control-request-method")
                      : std::vector<std::string_view>();
  const bool method_ok = methods.size() == 1 && (methods[0] == "GET" || methods[0] == "HEAD");
  if (!res.has_header("Access-Control-Allow-Origin") || !method_ok) {
    res.headers.erase("Access-Control-Allow-Origin");
    JsonError(res, 403, "cors_not_allowed");
    return;
  }
  res.status = 204;
  res.set_header("Access-Control-Allow-Methods", kCorsAllowMethods);
  res.set_header("Access-Control-Allow-Headers", kCorsAllowHeaders);
  res.set_header("Access-Control-Max-Age", kCorsMaxAge);
  context.outcome = "preflight";
}

void Gone(httplib::Response &res) {
  res.status = 410;
  res.set_content(kGoneBody, "application/json");
  context.outcome = "gone";
}

void Respond(httplib::Response &res, const Answer &answer) {
  switch (answer.extra) {
    case Answer::Extra::kRetryAfter: Unavailable(res, answer.reason); return;
    case Answer::Extra::kInvalidToken: Unauthorized(res, answer.reason, true); return;
    case Answer::Extra::kBearerRealm: Unauthorized(res, answer.reason, false); return;
    case Answer::Extra::kNone: JsonError(res, answer.status, answer.reason); return;
  }
}

// A call that succeeded must have produced a document: NULL (or nothing) where
// one is expected is a race on the database side (a user erased between
// authentication and the profile read), not an empty answer. 503 lets the
// client try again, and is never mistaken for success.
bool RespondDocument(const DbResult &r, size_t columns, httplib::Response &res) {
  const std::string *document = r.Document();
  if (document == nullptr || document->empty() || r.columns.size() != columns) {
    Unavailable(res, "no_result");
    return false;
  }
  res.status = 200;
  res.set_content(*document, "application/json");
  return true;
}

// Decides, from the request line and headers alone, whether a request may
// reach its handler; refuses it otherwise. Nothing of the body has been read:
// when one was announced, the refusal closes the connection.
bool Screen(const Config &config, const httplib::Request &req, httplib::Response &res) {
  StartRequest(config, req, res);
  const ConnectionStream *conn = CurrentConnection();
  if (conn == nullptr) {  // cannot happen: every connection is ours
    JsonError(res, 500, "internal_error");
    return true;
  }
  context.framing = FramingOf(conn->raw_headers(), req.version == "HTTP/1.0");
  const bool body = context.framing.HasBody();
  if (context.framing.kind == Framing::kInvalid) {
    CloseConnection();
    JsonError(res, 400, "bad_framing");
    return true;
  }
  const Route *route = context.route;
  if (route != nullptr && route->kind == RouteKind::kRetired) {
    if (body) CloseConnection();
    Gone(res);
    return true;
  }
  if (req.method == "OPTIONS" && IsSessionRoute(route) && !config.cors_origins.empty()) {
    if (body) {
      CloseConnection();
      JsonError(res, 400, "bad_request");
    } else {
      Preflight(res);
    }
    return true;
  }
  if (route == nullptr || !MethodAllowed(*route, req.method)) {
    if (body) CloseConnection();
    JsonError(res, 404, "not_found");
    return true;
  }
  if (route->kind != RouteKind::kWebhook) {
    if (!body) return false;
    CloseConnection();
    JsonError(res, 400, "bad_request");  // a GET with a body
    return true;
  }
  if (context.framing.kind == Framing::kLength && context.framing.length > config.max_body_bytes) {
    CloseConnection();
    JsonError(res, 413, "payload_too_large");
    return true;
  }
  const std::string coding = req.get_header_value("Content-Encoding");
  if (body && !coding.empty() && coding != "identity") {
    // A compressed body would be verified as sent yet bounded only after
    // inflating; Svix never compresses.
    CloseConnection();
    JsonError(res, 415, "unsupported_media_type");
    return true;
  }
  return false;
}

// The header under its Svix name, else its Standard Webhooks name, exactly as
// sent (the signature covers the id byte for byte). Sent twice, or not text
// PostgreSQL can hold (invalid UTF-8), it is refused here, before the database.
enum class HeaderValue { kAbsent, kPresent, kInvalid };
HeaderValue WebhookHeader(const ConnectionStream &conn, const char *svix, const char *standard,
                          std::string *out) {
  std::vector<std::string_view> values = HeaderValues(conn.raw_headers(), svix);
  if (values.empty()) values = HeaderValues(conn.raw_headers(), standard);
  if (values.empty()) return HeaderValue::kAbsent;
  out->assign(values[0]);
  return values.size() == 1 && IsValidText(*out) ? HeaderValue::kPresent : HeaderValue::kInvalid;
}

void HandleWebhook(Pool &pool, const Config &config, httplib::Response &res) {
  ConnectionStream *conn = CurrentConnection();  // never null here: the screen checked
  std::string id, timestamp, signature;
  const HeaderValue has_id = WebhookHeader(*conn, "svix-id", "webhook-id", &id);
  const HeaderValue has_ts =
      WebhookHeader(*conn, "svix-timestamp", "webhook-timestamp", &timestamp);
  const HeaderValue has_sig =
      WebhookHeader(*conn, "svix-signature", "webhook-signature", &signature);
  if (has_id == HeaderValue::kInvalid || has_ts == HeaderValue::kInvalid ||
      has_sig == HeaderValue::kInvalid) {
    if (context.framing.HasBody()) CloseConnection();
    JsonError(res, 400, "malformed_headers");
    return;
  }

  // Without Content-Length or Transfer-Encoding a request has no body
  // (RFC 9112, section 6.3): nothing to wait for.
  std::string body;
  ConnectionStream::BodyStatus read = ConnectionStream::BodyStatus::kOk;
  if (context.framing.kind == Framing::kChunked) {
    read = conn->ReadChunkedBody(config.max_body_bytes, &body);
  } else if (context.framing.kind == Framing::kLength) {
    read = conn->ReadFixedBody(context.framing.length, config.max_body_bytes, &body);
  }
  if (read != ConnectionStream::BodyStatus::kOk) {
    CloseConnection();
    JsonError(
        res, read == ConnectionStream::BodyStatus::kTooLarge ? 413 : 400,
        read == ConnectionStream::BodyStatus::kTooLarge ? "payload_too_large" : "bad_request");
    return;
  }

  std::vector<Param> params(4);
  if (has_id == HeaderValue::kPresent) params[0] = {id.c_str(), static_cast<int>(id.size()), false};
  if (has_ts == HeaderValue::kPresent) {
    params[1] = {timestamp.c_str(), static_cast<int>(timestamp.size()), false};
  }
  if (has_sig == HeaderValue::kPresent) {
    params[2] = {signature.c_str(), static_cast<int>(signature.size()), false};
  }
  params[3] = {body.data(), static_cast<int>(body.size()), true};

  DbResult r = pool.Call("jnx_ingest", kIngestSql, params);
  if (r.kind != DbResult::Kind::kOk) {
    NoteDbFailure(r);
    Respond(res, AnswerFor(Scope::kWebhook, r));
    return;
  }
  if (!RespondDocument(r, 2, res)) return;
  if (id.size() <= 128) context.svix_id = id;
  context.outcome = r.columns[1].value_or("");
}

// "Authorization: Bearer <token>" (scheme case-insensitive), read from the
// header as sent: cpp-httplib's copy has %XX decoded, so "Bearer%20<token>"
// or a token with "%2E" for its dots would reach the database as the same
// token while the edge, which keys its per-token rate limit on the raw
// header, saw another key or none. False when absent, sent twice, or not a
// plain JWT (printable ASCII without spaces).
bool BearerToken(std::string *token) {
  const ConnectionStream *conn = CurrentConnection();
  if (conn == nullptr) return false;
  const std::vector<std::string_view> values = HeaderValues(conn->raw_headers(), "authorization");
  if (values.size() != 1 || values[0].size() < 8) return false;
  std::string scheme(values[0].substr(0, 7));
  for (char &c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (scheme != "bearer ") return false;
  token->assign(values[0].substr(7));
  for (char c : *token) {
    if (c <= ' ' || c > '~' || c == '%') {
      token->clear();
      return false;
    }
  }
  return !token->empty();
}

// One transaction on a pooled connection, PostgREST's way: authenticate with
// the bearer token, switch to the authenticated role, call, commit. The
// identity ends with the transaction, so nothing survives on the connection.
// True when the call's document was answered (200).
bool HandleSession(Pool &pool, httplib::Response &res, Step call) {
  std::string token;
  if (!BearerToken(&token)) {
    Unauthorized(res, "missing_token", false);
    return false;
  }
  Step authenticate;
  authenticate.name = "jnx_authenticate";
  authenticate.sql = kAuthenticateSql;
  authenticate.params = {Param{token.c_str(), static_cast<int>(token.size()), false}};
  DbResult r = pool.Transaction({authenticate, std::move(call)});
  if (r.kind != DbResult::Kind::kOk) {
    NoteDbFailure(r);
    Respond(res, AnswerFor(Scope::kSession, r));
    return false;
  }
  if (!RespondDocument(r, 1, res)) return false;
  context.outcome = "ok";
  return true;
}

void HandleReady(Pool &pool, httplib::Response &res) {
  RetryPolicy once;
  once.max_attempts = 1;
  DbResult r = pool.Call("jnx_version", kVersionSql, {}, once);
  if (r.kind != DbResult::Kind::kOk) {
    NoteDbFailure(r);
    Unavailable(res, "database_unavailable");
    return;
  }
  const std::string installed = r.Document() != nullptr ? *r.Document() : "";
  if (installed != JNX_EXTVERSION) {
    Unavailable(res, installed.empty() ? "extension_missing" : "extension_version_mismatch");
    return;
  }
  res.set_content(
      std::string("{\"status\":\"ready\",\"extension_version\":\"") + JNX_EXTVERSION + "\"}",
      "application/json");
  context.outcome = "ready";
}

struct Monitoring {
  Metrics &metrics;
  StatsCache &stats;
};

// Answers 200 whatever the database's state: jnx.stats() comes from a cache
// that a scrape refreshes within a short bound, or is absent (jnx_stats_up 0).
void HandleMetrics(Pool &pool, Monitoring &monitoring, httplib::Response &res) {
  const StatsSnapshot stats = monitoring.stats.Get();
  res.set_content(monitoring.metrics.Render(pool.Snapshot(), stats), kMetricsContentType);
  context.outcome = "ok";
}

void Handle(const Route &route, Pool &pool, const Config &config, Monitoring &monitoring,
            const httplib::Request &req, httplib::Response &res) {
  switch (route.kind) {
    case RouteKind::kWebhook: HandleWebhook(pool, config, res); return;
    case RouteKind::kMe: {
      Step me;
      me.name = "jnx_me";
      me.sql = kMeSql;
      HandleSession(pool, res, std::move(me));
      return;
    }
    case RouteKind::kMeExport: {
      // The caller's own data only: the identity is the token's, and the
      // query string is ignored (there is no parameter naming another user).
      Step dump;
      dump.name = "jnx_export_me";
      dump.sql = kExportMeSql;
      if (HandleSession(pool, res, std::move(dump))) {
        res.set_header("Content-Disposition", "attachment; filename=\"jnx-export.json\"");
        // Personal data: no cache (browser, proxy, edge) may keep a copy.
        res.set_header("Cache-Control", "no-store");
      }
      return;
    }
    case RouteKind::kAdminUsers: {
      // The org filter (platform admins only), the page size and the cursor
      // stay alive for the call. Each is passed as sent, or NULL when absent;
      // the database checks them (JX350, JX351, 22P02: 400).
      const char *names[] = {"org", "limit", "cursor"};
      std::string values[3];
      Step list;
      list.name = "jnx_admin_users";
      list.sql = kAdminUsersSql;
      for (size_t i = 0; i < 3; ++i) {
        if (!req.has_param(names[i])) {
          list.params.emplace_back();
          continue;
        }
        values[i] = req.get_param_value(names[i]);
        if (!IsValidText(values[i])) {
          JsonError(res, 400, "bad_request");
          return;
        }
        list.params.push_back(Param{values[i].c_str(), static_cast<int>(values[i].size()), false});
      }
      HandleSession(pool, res, std::move(list));
      return;
    }
    case RouteKind::kHealth: res.set_content("{\"status\":\"ok\"}", "application/json"); return;
    case RouteKind::kReady: HandleReady(pool, res); return;
    case RouteKind::kMetrics: HandleMetrics(pool, monitoring, res); return;
    case RouteKind::kRetired: Gone(res); return;  // the screen answers these first
  }
}

// Requests refused before routing: the request line or the header section
// was malformed, too large or too slow. What follows in the stream cannot be
// trusted, so the connection ends with the answer.
void RefuseUnrouted(const Config &config, const httplib::Request &req, httplib::Response &res) {
  StartRequest(config, req, res);
  CloseConnection();
  const ConnectionStream *conn = CurrentConnection();
  switch (conn != nullptr ? conn->violation() : Violation::kNone) {
    case Violation::kRequestLineTooLong: JsonError(res, 414, "uri_too_long"); return;
    case Violation::kLineTooLong:
      // On a session route the long line is the token: documented as 401.
      if (IsSessionRoute(context.route)) {
        Unauthorized(res, "invalid_token", true);
      } else {
        JsonError(res, 431, "headers_too_large");
      }
      return;
    case Violation::kTooManyHeaders:
    case Violation::kHeadersTooLarge: JsonError(res, 431, "headers_too_large"); return;
    case Violation::kTimeout: JsonError(res, 408, "request_timeout"); return;
    case Violation::kBodyTooLarge: JsonError(res, 413, "payload_too_large"); return;
    case Violation::kMalformed: JsonError(res, 400, "bad_request"); return;
    case Violation::kNone: break;
  }
  // An unknown method (cpp-httplib knows a fixed set) on a retired route.
  if (context.route != nullptr && context.route->kind == RouteKind::kRetired) {
    Gone(res);
    return;
  }
  JsonError(res, res.status == 414 ? 414 : 400, res.status == 414 ? "uri_too_long" : "bad_request");
}

// Counts one answered request (called by the logger, before the answer,
// buffered, is sent).
void CountRequest(Metrics &metrics, const httplib::Request &req, const httplib::Response &res,
                  std::chrono::nanoseconds duration) {
  const Route *route = context.route;
  metrics.ObserveRequest(
      route != nullptr ? static_cast<size_t>(route - kRoutes) : metrics.unmatched_route(),
      req.method, res.status, duration);
  if (context.db_failed) metrics.DbError(context.sqlstate, context.db_unavailable);
  if (route == nullptr) return;
  if (route->kind == RouteKind::kWebhook) {
    if (res.status == 200) {
      metrics.WebhookOutcome(context.outcome);
    } else if (res.status >= 400 && res.status < 500) {
      metrics.WebhookRejected(context.outcome);
    }
  } else if (IsSessionRoute(route) && res.status == 401) {
    metrics.TokenFailure(context.db_failed ? context.sqlstate : "", context.outcome);
  }
}

// Blocks SIGTERM/SIGINT in every thread; one thread waits for them and stops
// the server, which finishes the requests in flight before listen() returns.
std::thread StartSignalThread(httplib::Server &server, sigset_t set) {
  return std::thread([&server, set] {
    int sig = 0;
    sigwait(&set, &sig);
    WriteEventLog("info", sig == SIGTERM ? "SIGTERM: draining" : "SIGINT: draining");
    server.stop();
  });
}

}  // namespace
}  // namespace jnx::shim

int main(int argc, char **argv) {
  using namespace jnx::shim;
  // A command (only refresh-jwks) runs and exits; without arguments the shim serves.
  if (argc > 1) return RunCommand(argc, argv);
  Config config;
  std::string error;
  if (!LoadConfig(&config, &error)) {
    WriteEventLog("error", "configuration: " + error);
    return 2;
  }
  std::unique_ptr<Pool> pool = Pool::Create(config, &error);
  if (pool == nullptr) {
    WriteEventLog("error", "configuration: " + error);
    return 2;
  }
  std::vector<const char *> route_paths;
  for (const Route &route : kRoutes) route_paths.push_back(route.path);
  Metrics metrics(route_paths);
  StatsCache stats(*pool, metrics, std::chrono::seconds(config.stats_cache_seconds));
  Monitoring monitoring{metrics, stats};

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  Server server{HeaderLimits()};
  const int workers = config.workers;
  server.new_task_queue = [workers] { return new httplib::ThreadPool(workers); };
  server.set_tcp_nodelay(true);
  // Bodies are read by the webhook handler, bounded by max_body_bytes for
  // every framing; this only bounds what cpp-httplib itself would read.
  server.set_payload_max_length(config.max_body_bytes);
  server.set_read_timeout(10, 0);
  server.set_write_timeout(10, 0);
  server.set_keep_alive_timeout(5);
  // cpp-httplib closes a kept-alive connection after 5 requests by default:
  // every client then reconnects every fifth request and queues behind the
  // other connections for a thread. nginx allows 1000 (keepalive_requests).
  server.set_keep_alive_max_count(1000);

  server.set_pre_routing_handler([&config](const httplib::Request &req, httplib::Response &res) {
    // Range requests are ignored (RFC 9110 allows it): cpp-httplib would cut
    // JSON answers into multipart/byteranges, many times the request's size,
    // or answer an empty 416. It parsed them into the request before this
    // handler, which is the last point before it applies them.
    const_cast<httplib::Request &>(req)
        .ranges.clear();  // NOLINT(cppcoreguidelines-pro-type-const-cast)
    // Already screened when the client sent Expect: 100-continue.
    if (context.started) return httplib::Server::HandlerResponse::Unhandled;
    return Screen(config, req, res) ? httplib::Server::HandlerResponse::Handled
                                    : httplib::Server::HandlerResponse::Unhandled;
  });
  // A client that waits for 100 Continue is refused before it sends its body.
  server.set_expect_100_continue_handler(
      [&config](const httplib::Request &req, httplib::Response &res) {
        return Screen(config, req, res) ? res.status : 100;
      });
  Pool &db = *pool;
  for (const Route &route : kRoutes) {
    auto handler = [&route, &db, &config, &monitoring](const httplib::Request &req,
                                                       httplib::Response &res) {
      Handle(route, db, config, monitoring, req, res);
    };
    switch (route.kind) {
      case RouteKind::kWebhook:
        // The content-reader form: cpp-httplib leaves the body unread; the
        // handler reads it through the connection, bounded for every framing.
        server.Post(route.path, [handler](const httplib::Request &req, httplib::Response &res,
                                          const httplib::ContentReader &) { handler(req, res); });
        break;
      case RouteKind::kRetired: break;  // answered by the screen, whatever the method
      default: server.Get(route.path, handler); break;
    }
  }
  server.set_error_handler([&config](const httplib::Request &req, httplib::Response &res) {
    if (!context.started) {
      RefuseUnrouted(config, req, res);
      return;
    }
    if (!res.body.empty()) return;
    switch (res.status) {
      case 404: JsonError(res, 404, "not_found"); break;
      case 413: JsonError(res, 413, "payload_too_large"); break;
      default: JsonError(res, res.status, "bad_request"); break;
    }
  });
  server.set_post_routing_handler([](const httplib::Request &, httplib::Response &res) {
    const ConnectionStream *conn = CurrentConnection();
    if (conn != nullptr && conn->close_after_response()) {
      res.headers.erase("Keep-Alive");
      res.headers.erase("Connection");
      res.set_header("Connection", "close");
    }
    // cpp-httplib adds Content-Length: 0 to every empty answer; a 204 must
    // carry none (RFC 9110, section 8.6).
    if (res.status == 204) res.headers.erase("Content-Length");
  });
  server.set_exception_handler(
      [](const httplib::Request &, httplib::Response &res, const std::exception_ptr &) {
        CloseConnection();
        JsonError(res, 500, "internal_error");
      });
  server.set_logger([&metrics](const httplib::Request &req, const httplib::Response &res) {
    RequestLog entry;
    entry.request_id = context.started ? context.request_id : NewRequestId();
    entry.method = req.method;
    entry.route = context.route != nullptr ? context.route->path : "unmatched";
    entry.status = res.status;
    std::chrono::nanoseconds duration{0};
    if (context.started) {
      duration = std::chrono::steady_clock::now() - context.start;
      entry.duration_ms = std::chrono::duration<double, std::milli>(duration).count();
    }
    if constexpr (JNX_METRICS_BOOKKEEPING != 0) CountRequest(metrics, req, res, duration);
    entry.svix_id = context.svix_id;
    entry.outcome = context.outcome;
    entry.sqlstate = context.sqlstate;
    WriteRequestLog(entry);
    context = RequestContext();
  });

  // cpp-httplib 0.11 listens with a backlog of 5: a burst of connections
  // (Svix retries, 50 concurrent deliveries) overflows the accept queue and is
  // refused or reset. Its socket-options hook sees the listening socket before
  // bind, so keep that fd and raise the backlog once bound.
  int listen_fd = -1;
  server.set_socket_options([&listen_fd](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    listen_fd = sock;
  });
  if (!server.bind_to_port(config.host, config.port)) {
    WriteEventLog("error", "cannot listen on " + config.host + ":" + std::to_string(config.port));
    return 1;
  }
  if (listen_fd < 0 || ::listen(listen_fd, kListenBacklog) != 0) {
    WriteEventLog("error", "cannot raise the listen backlog");
    return 1;
  }

  std::thread signal_thread = StartSignalThread(server, signals);
  WriteEventLog("info", "jnx-shim " JNX_EXTVERSION " listening on " + config.host + ":" +
                            std::to_string(config.port) + ", " + std::to_string(config.workers) +
                            " workers, pool " + std::to_string(config.pool_size));
  const bool ok = server.listen_after_bind();
  if (!ok) {
    WriteEventLog("error", "the listener stopped unexpectedly");
    kill(getpid(), SIGTERM);  // wakes the signal thread so that it can be joined
    signal_thread.join();
    return 1;
  }
  signal_thread.join();
  WriteEventLog("info", "stopped");
  return 0;
}
