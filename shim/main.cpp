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
#include "log.h"
#include "status.h"

#ifndef JNX_EXTVERSION
#error "JNX_EXTVERSION must be defined by the build"
#endif

namespace jnx::shim {
namespace {

constexpr const char *kIngestSql =
    "SELECT r::text, r->>'status' FROM jnx.ingest_clerk_webhook($1::text, $2::text, $3::text, "
    "$4::bytea) AS r";
constexpr const char *kVersionSql =
    "SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'jnx_auth'";
constexpr const char *kAuthenticateSql = "SELECT jnx.authenticate($1::text) IS NOT NULL";
constexpr const char *kMeSql = "SELECT jnx.me()::text";
constexpr const char *kAdminUsersSql = "SELECT jnx.admin_list_users($1::text)::text";
constexpr const char *kRetiredRoutes[] = {"/api/auth/login", "/api/auth/signup", "/api/auth/user"};
constexpr const char *kRetryAfterSeconds = "5";
constexpr int kListenBacklog = 1024;

// Per-request facts gathered by the handlers and written by the logger.
struct RequestContext {
  std::chrono::steady_clock::time_point start;
  bool started = false;
  std::string request_id;
  std::string route;
  std::string svix_id;
  std::string outcome;
  std::string sqlstate;
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

// The header under its Svix name, else its Standard Webhooks name.
bool WebhookHeader(const httplib::Request &req, const char *svix, const char *standard,
                   std::string *out) {
  if (req.has_header(svix)) {
    *out = req.get_header_value(svix);
    return true;
  }
  if (req.has_header(standard)) {
    *out = req.get_header_value(standard);
    return true;
  }
  return false;
}

void HandleWebhook(Pool &pool, const httplib::Request &req, httplib::Response &res) {
  std::string id, timestamp, signature;
  const bool has_id = WebhookHeader(req, "svix-id", "webhook-id", &id);
  const bool has_ts = WebhookHeader(req, "svix-timestamp", "webhook-timestamp", &timestamp);
  const bool has_sig = WebhookHeader(req, "svix-signature", "webhook-signature", &signature);
  std::vector<Param> params(4);
  if (has_id) params[0] = {id.c_str(), static_cast<int>(id.size()), false};
  if (has_ts) params[1] = {timestamp.c_str(), static_cast<int>(timestamp.size()), false};
  if (has_sig) params[2] = {signature.c_str(), static_cast<int>(signature.size()), false};
  params[3] = {req.body.data(), static_cast<int>(req.body.size()), true};

  DbResult r = pool.Call("jnx_ingest", kIngestSql, params);
  context.sqlstate = r.sqlstate;
  if (r.kind != DbResult::Kind::kOk) {
    Respond(res, AnswerFor(Scope::kWebhook, r));
    return;
  }
  if (!RespondDocument(r, 2, res)) return;
  if (id.size() <= 128) context.svix_id = id;
  context.outcome = r.columns[1].value_or("");
}

// "Authorization: Bearer <token>" (scheme case-insensitive). False when absent.
bool BearerToken(const httplib::Request &req, std::string *token) {
  const std::string value = req.get_header_value("Authorization");
  if (value.size() < 8) return false;
  std::string scheme = value.substr(0, 7);
  for (char &c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (scheme != "bearer ") return false;
  *token = value.substr(7);
  // A JWT is printable ASCII; anything else is refused here (as invalid).
  for (char c : *token) {
    if (c <= ' ' || c > '~') {
      token->clear();
      return false;
    }
  }
  return !token->empty();
}

// One transaction on a pooled connection, PostgREST's way: authenticate with
// the bearer token, switch to the authenticated role, call, commit. The
// identity ends with the transaction, so nothing survives on the connection.
void HandleSession(Pool &pool, const httplib::Request &req, httplib::Response &res, Step call) {
  std::string token;
  if (!BearerToken(req, &token)) {
    Unauthorized(res, "missing_token", false);
    return;
  }
  Step authenticate;
  authenticate.name = "jnx_authenticate";
  authenticate.sql = kAuthenticateSql;
  authenticate.params = {Param{token.c_str(), static_cast<int>(token.size()), false}};
  Step role;
  role.sql = "SET LOCAL ROLE authenticated";
  DbResult r = pool.Transaction({authenticate, role, std::move(call)});
  context.sqlstate = r.sqlstate;
  if (r.kind != DbResult::Kind::kOk) {
    Respond(res, AnswerFor(Scope::kSession, r));
    return;
  }
  if (RespondDocument(r, 1, res)) context.outcome = "ok";
}

void HandleReady(Pool &pool, httplib::Response &res) {
  RetryPolicy once;
  once.max_attempts = 1;
  DbResult r = pool.Call("jnx_version", kVersionSql, {}, once);
  if (r.kind != DbResult::Kind::kOk) {
    context.sqlstate = r.sqlstate;
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

int main() {
  using namespace jnx::shim;
  Config config;
  std::string error;
  if (!LoadConfig(&config, &error)) {
    WriteEventLog("error", "configuration: " + error);
    return 2;
  }
  std::unique_ptr<Pool> db = Pool::Create(config, &error);
  if (db == nullptr) {
    WriteEventLog("error", "configuration: " + error);
    return 2;
  }
  Pool &pool = *db;

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  httplib::Server server;
  const int workers = config.workers;
  server.new_task_queue = [workers] { return new httplib::ThreadPool(workers); };
  server.set_tcp_nodelay(true);
  server.set_payload_max_length(config.max_body_bytes);
  server.set_read_timeout(10, 0);
  server.set_write_timeout(10, 0);
  server.set_keep_alive_timeout(5);

  server.set_pre_routing_handler([](const httplib::Request &req, httplib::Response &res) {
    context = RequestContext();
    context.start = std::chrono::steady_clock::now();
    context.started = true;
    context.request_id = RequestIdFor(req);
    // Known routes by path, so that requests refused before their handler
    // (413, 404 on a wrong method) are still counted under their route.
    for (const char *route :
         {"/api/webhooks/clerk", "/healthz", "/readyz", "/api/me", "/api/admin/users",
          "/api/auth/login", "/api/auth/signup", "/api/auth/user"}) {
      if (req.path == route) context.route = route;
    }
    res.set_header("X-Request-Id", context.request_id);
    return httplib::Server::HandlerResponse::Unhandled;
  });
  server.Post("/api/webhooks/clerk", [&pool](const httplib::Request &req, httplib::Response &res) {
    context.route = "/api/webhooks/clerk";
    HandleWebhook(pool, req, res);
  });
  server.Get("/api/me", [&pool](const httplib::Request &req, httplib::Response &res) {
    context.route = "/api/me";
    Step me;
    me.name = "jnx_me";
    me.sql = kMeSql;
    HandleSession(pool, req, res, std::move(me));
  });
  server.Get("/api/admin/users", [&pool](const httplib::Request &req, httplib::Response &res) {
    context.route = "/api/admin/users";
    // The org filter (platform admins only) stays alive for the call.
    const std::string org = req.get_param_value("org");
    Step list;
    list.name = "jnx_admin_users";
    list.sql = kAdminUsersSql;
    list.params = {req.has_param("org") ? Param{org.c_str(), static_cast<int>(org.size()), false}
                                        : Param{}};
    HandleSession(pool, req, res, std::move(list));
  });
  // The old Next.js routes are retired, not silently missing.
  for (const char *route : kRetiredRoutes) {
    auto gone = [route](const httplib::Request &, httplib::Response &res) {
      context.route = route;
      res.status = 410;
      res.set_content(
          "{\"error\":\"gone\",\"detail\":\"This route was retired; see docs/API.md "
          "(Retired routes) for its replacement.\"}",
          "application/json");
      context.outcome = "gone";
    };
    server.Get(route, gone);
    server.Post(route, gone);
    server.Put(route, gone);
    server.Delete(route, gone);
    server.Patch(route, gone);
  }
  server.Get("/healthz", [](const httplib::Request &, httplib::Response &res) {
    context.route = "/healthz";
    res.set_content("{\"status\":\"ok\"}", "application/json");
  });
  server.Get("/readyz", [&pool](const httplib::Request &, httplib::Response &res) {
    context.route = "/readyz";
    HandleReady(pool, res);
  });
  server.set_error_handler([](const httplib::Request &req, httplib::Response &res) {
    if (!res.body.empty()) return;
    // cpp-httplib refuses a header line over its compiled 8 KiB limit with a
    // 400 before any route runs; on a session route that line is the token.
    if (res.status == 400 && (req.path == "/api/me" || req.path == "/api/admin/users")) {
      Unauthorized(res, "invalid_token", true);
      return;
    }
    switch (res.status) {
      case 404: JsonError(res, 404, "not_found"); break;
      case 413: JsonError(res, 413, "payload_too_large"); break;
      default: JsonError(res, res.status, "bad_request"); break;
    }
  });
  server.set_exception_handler(
      [](const httplib::Request &, httplib::Response &res, const std::exception_ptr &) {
        JsonError(res, 500, "internal_error");
      });
  server.set_logger([](const httplib::Request &req, const httplib::Response &res) {
    RequestLog entry;
    entry.request_id = context.started ? context.request_id : NewRequestId();
    entry.method = req.method;
    entry.route = context.route.empty() ? "unmatched" : context.route;
    entry.status = res.status;
    if (context.started) {
      entry.duration_ms = std::chrono::duration<double, std::milli>(
                              std::chrono::steady_clock::now() - context.start)
                              .count();
    }
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
