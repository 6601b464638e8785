#include "refresh_jwks.h"

#include <arpa/inet.h>
#include <httplib.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <regex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "log.h"

#ifndef CPPHTTPLIB_OPENSSL_SUPPORT
#error "refresh-jwks needs cpp-httplib's HTTPS client: build with pkg-config --cflags cpp-httplib"
#endif
#ifndef JNX_EXTVERSION
#error "JNX_EXTVERSION must be defined by the build"
#endif

namespace jnx::shim {
namespace {

// Every wait is bounded. A connect (TCP and TLS handshake) and each read or
// write on the socket wait at most 10 s; the whole answer must arrive within
// 30 s; the database gets 10 s to connect and 10 s per statement. The
// watchdog bounds what nothing else does (resolving the host name, a server
// that trickles header lines) and ends the process after 60 s.
constexpr int kSocketTimeoutSeconds = 10;
constexpr auto kFetchBudget = std::chrono::seconds(30);
constexpr size_t kMaxBodyBytes = size_t{1024} * 1024;
constexpr const char *kDatabaseConnectTimeoutSeconds = "10";
constexpr int kWatchdogSeconds = 60;
constexpr size_t kMaxLoggedKids = 16;
constexpr size_t kMaxLoggedKidLength = 64;

// Runs with the owner's rights: every name is schema-qualified and the
// operator spelled OPERATOR(pg_catalog.=), so nothing resolves through a
// search path another role could add objects to. jnx.set_jwks runs (and writes
// its system_events row) only when the stored set differs as jsonb, which
// ignores member order and whitespace; a NULL or missing set differs too.
constexpr const char *kSetJwksSql =
    "SELECT jnx.set_jwks($1::pg_catalog.jsonb) "
    "WHERE NOT EXISTS (SELECT FROM jnx.token_config AS c "
    "WHERE c.jwks OPERATOR(pg_catalog.=) $1::pg_catalog.jsonb)";
// One transaction; the settings end with it (harmless behind a pooler).
constexpr const char *kBeginSql =
    "BEGIN; SET LOCAL search_path = pg_catalog, pg_temp; "
    "SET LOCAL statement_timeout = 10000; SET LOCAL lock_timeout = 10000";

// The exit code the watchdog uses: where the run is when time runs out.
std::atomic<int> watchdog_exit{kRefreshFetch};

int Fail(int code, const std::string &reason) {
  WriteEventLog("error", "refresh-jwks: " + reason);
  return code;
}

void StartWatchdog() {
  std::thread([] {
    std::this_thread::sleep_for(std::chrono::seconds(kWatchdogSeconds));
    const int code = watchdog_exit.load();
    Fail(code, std::string(code == kRefreshFetch ? "fetching the key set" : "the database") +
                   " took longer than " + std::to_string(kWatchdogSeconds) + " s; stopped");
    std::_Exit(code);
  }).detach();
}

bool StartsWithNoCase(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(text[i])) != prefix[i]) return false;
  }
  return true;
}

struct HttpsUrl {
  std::string host;  // a DNS name or an IPv4 address, lower case
  int port = 443;
  std::string target;  // path and query, sent as written
  std::string shown;   // https://host[:port]/path: what a log line may name (never the query)
  bool host_is_ip = false;
};

// Accepts https://host[:port][/path][?query][#fragment] and nothing else. The
// errors name the variable, never its value.
bool ParseJwksUrl(std::string_view text, HttpsUrl *url, std::string *error) {
  for (const char c : text) {
    if (c <= ' ' || c >= 0x7f) {
      *error = "JNX_JWKS_URL must be a URL of printable ASCII characters without spaces";
      return false;
    }
  }
  if (!StartsWithNoCase(text, "https://")) {
    *error = StartsWithNoCase(text, "http://")
                 ? "JNX_JWKS_URL must be an https:// URL: plain http is refused (whoever can "
                   "change the keys in transit can sign in as anyone)"
                 : "JNX_JWKS_URL must be an https:// URL";
    return false;
  }
  std::string_view rest = text.substr(std::strlen("https://"));
  if (const size_t hash = rest.find('#'); hash != std::string_view::npos) {
    rest = rest.substr(0, hash);
  }
  const size_t authority_end = rest.find_first_of("/?");
  const std::string_view authority = rest.substr(0, authority_end);
  const std::string_view target =
      authority_end == std::string_view::npos ? std::string_view() : rest.substr(authority_end);
  if (authority.find('@') != std::string_view::npos) {
    *error = "JNX_JWKS_URL must not hold credentials (user:password@): the JWKS is public";
    return false;
  }
  if (!authority.empty() && authority.front() == '[') {
    *error = "JNX_JWKS_URL: IPv6 address literals are not supported; use a host name";
    return false;
  }
  const size_t colon = authority.find(':');
  const std::string_view host = authority.substr(0, colon);
  if (colon != std::string_view::npos) {
    const std::string_view port = authority.substr(colon + 1);
    int value = 0;
    bool ok = !port.empty() && port.size() <= 5;
    for (const char c : port) {
      if (c < '0' || c > '9') ok = false;
      value = value * 10 + (c - '0');
    }
    if (!ok || value < 1 || value > 65535) {
      *error = "JNX_JWKS_URL has an invalid port";
      return false;
    }
    url->port = value;
  }
  bool host_ok = !host.empty() && host.size() <= 253 && host.front() != '.' &&
                 host.front() != '-' && host.back() != '.';
  for (const char c : host) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-') host_ok = false;
  }
  if (!host_ok) {
    *error = "JNX_JWKS_URL has an invalid host name";
    return false;
  }
  url->host.clear();
  for (const char c : host) {
    url->host.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  url->target =
      target.empty() || target.front() == '?' ? "/" + std::string(target) : std::string(target);
  in_addr ipv4{};
  url->host_is_ip = inet_pton(AF_INET, url->host.c_str(), &ipv4) == 1;
  url->shown = "https://" + url->host + (url->port != 443 ? ":" + std::to_string(url->port) : "") +
               url->target.substr(0, url->target.find('?'));
  return true;
}

// The reason a fetch failed, in words an operator can act on.
std::string FetchErrorReason(httplib::Error error, const httplib::SSLClient &client,
                             unsigned long tls_error) {
  switch (error) {
    case httplib::Error::Connection: return "cannot connect (host name or address unreachable)";
    case httplib::Error::ConnectionTimeout: return "connecting timed out";
    case httplib::Error::SSLLoadingCerts: return "cannot load the trusted CA certificates";
    case httplib::Error::SSLConnection: {
      std::string reason = "the TLS handshake failed";
      if (const char *why = tls_error != 0 ? ERR_reason_error_string(tls_error) : nullptr;
          why != nullptr) {
        reason += std::string(": ") + why;
      }
      return reason;
    }
    case httplib::Error::SSLServerVerification: {
      const long verify = client.get_openssl_verify_result();
      return std::string("the server's certificate was refused: ") +
             (verify != X509_V_OK ? X509_verify_cert_error_string(verify)
                                  : "it does not name the host");
    }
    case httplib::Error::Read: return "reading the answer failed or timed out";
    case httplib::Error::Write: return "sending the request failed or timed out";
    default: return "the request failed (" + httplib::to_string(error) + ")";
  }
}

// GET over HTTPS with the certificate and host name verified against the
// system's CA store, or the file in SSL_CERT_FILE (OpenSSL's default verify
// paths). Only a 200 answer of at most kMaxBodyBytes is accepted; redirects
// are not followed.
int Fetch(const HttpsUrl &url, std::string *body, std::string *reason) {
  httplib::SSLClient client(url.host, url.port);
  if (!client.is_valid()) {
    *reason = "cannot create a TLS context";
    return kRefreshFetch;
  }
  // cpp-httplib checks the chain and then matches the host name itself (and
  // falls back to the subject's CN even when the certificate lists other
  // names). OpenSSL's own host check is added to the chain verification, so
  // both must pass: a certificate for another name fails with
  // "hostname mismatch".
  SSL_CTX *ctx = client.ssl_context();
  X509_VERIFY_PARAM *param = SSL_CTX_get0_param(ctx);
  X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  const int named = url.host_is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, url.host.c_str())
                                   : X509_VERIFY_PARAM_set1_host(param, url.host.c_str(), 0);
  if (named != 1 || SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
    *reason = "cannot set up certificate verification";
    return kRefreshFetch;
  }
  client.enable_server_certificate_verification(true);
  client.set_follow_location(false);
  client.set_url_encode(false);
  client.set_keep_alive(false);
  client.set_connection_timeout(kSocketTimeoutSeconds, 0);
  client.set_read_timeout(kSocketTimeoutSeconds, 0);
  client.set_write_timeout(kSocketTimeoutSeconds, 0);
  const httplib::Headers headers = {
      {"Accept", "application/json"},
      {"User-Agent", "jnx-shim/" JNX_EXTVERSION " refresh-jwks"},
  };

  const auto deadline = std::chrono::steady_clock::now() + kFetchBudget;
  int status = 0;
  std::string stopped;  // why we cancelled the transfer ourselves
  ERR_clear_error();
  httplib::Result result = client.Get(
      url.target, headers,
      [&status, &stopped](const httplib::Response &res) {
        status = res.status;
        if (res.status != 200) {
          stopped = "status";
          return false;
        }
        if (res.has_header("Content-Length")) {
          const std::string length = res.get_header_value("Content-Length");
          if (length.size() > 12 || std::strtoull(length.c_str(), nullptr, 10) > kMaxBodyBytes) {
            stopped = "size";
            return false;
          }
        }
        return true;
      },
      [body, &stopped, deadline](const char *data, size_t length) {
        if (body->size() + length > kMaxBodyBytes) {
          stopped = "size";
          return false;
        }
        if (std::chrono::steady_clock::now() > deadline) {
          stopped = "time";
          return false;
        }
        body->append(data, length);
        return true;
      });
  const unsigned long tls_error = ERR_peek_last_error();
  ERR_clear_error();
  if (!result && result.error() == httplib::Error::Canceled && stopped == "status") {
    *reason = "the server answered HTTP " + std::to_string(status);
    if (status >= 300 && status < 400) {
      *reason += " (redirects are not followed: set JNX_JWKS_URL to the final address)";
    }
  } else if (!result && result.error() == httplib::Error::Canceled && stopped == "size") {
    *reason = "the answer is larger than " + std::to_string(kMaxBodyBytes) + " bytes";
  } else if (!result && result.error() == httplib::Error::Canceled && stopped == "time") {
    *reason = "the answer took longer than " +
              std::to_string(std::chrono::seconds(kFetchBudget).count()) + " s";
  } else if (!result) {
    *reason = FetchErrorReason(result.error(), client, tls_error);
  } else if (result->status != 200) {  // a 204 never reaches the response handler
    *reason = "the server answered HTTP " + std::to_string(result->status);
  } else {
    return kRefreshOk;
  }
  return kRefreshFetch;
}

struct JsonDeleter {
  void operator()(json_t *json) const { json_decref(json); }
};

// A JSON object with a non-empty "keys" array of objects; the database checks
// the keys themselves (jnx.set_jwks raises JX110). Fills *kids with the key
// ids, for the log (they are public). The reasons never quote the answer.
int CheckDocument(const std::string &body, std::vector<std::string> *kids, std::string *reason) {
  json_error_t error{};
  const std::unique_ptr<json_t, JsonDeleter> root(
      json_loadb(body.data(), body.size(), JSON_REJECT_DUPLICATES, &error));
  if (root == nullptr) {
    *reason = "the answer is not valid JSON (line " + std::to_string(error.line) + ", column " +
              std::to_string(error.column) + ")";
    return kRefreshDocument;
  }
  if (!json_is_object(root.get())) {
    *reason = "the answer is not a JSON object";
    return kRefreshDocument;
  }
  const json_t *keys = json_object_get(root.get(), "keys");
  if (!json_is_array(keys) || json_array_size(keys) == 0) {
    *reason = "the answer has no non-empty \"keys\" array";
    return kRefreshDocument;
  }
  for (size_t i = 0; i < json_array_size(keys); ++i) {
    const json_t *key = json_array_get(keys, i);
    if (!json_is_object(key)) {
      *reason = "keys[" + std::to_string(i) + "] is not a JSON object";
      return kRefreshDocument;
    }
    const json_t *kid = json_object_get(key, "kid");
    kids->emplace_back(json_is_string(kid) ? json_string_value(kid) : "(no kid)");
  }
  return kRefreshOk;
}

std::string KidList(const std::vector<std::string> &kids) {
  std::string out;
  for (size_t i = 0; i < kids.size() && i < kMaxLoggedKids; ++i) {
    if (i > 0) out += ", ";
    out += kids[i].size() > kMaxLoggedKidLength ? kids[i].substr(0, kMaxLoggedKidLength) + "..."
                                                : kids[i];
  }
  if (kids.size() > kMaxLoggedKids) {
    out += " and " + std::to_string(kids.size() - kMaxLoggedKids) + " more";
  }
  return out;
}

// libpq's messages name the server ("connection to server at "db" (10.0.0.5),
// port 5432 failed: ..."): keep the reason after the last "failed: ", its first
// line, with anything shaped like an IP address masked.
std::string LibpqReason(std::string_view message) {
  constexpr std::string_view kFailed = "failed: ";
  if (const size_t at = message.rfind(kFailed); at != std::string_view::npos) {
    message = message.substr(at + kFailed.size());
  }
  message = message.substr(0, message.find('\n'));
  const std::regex address(
      R"(\b[0-9]{1,3}(\.[0-9]{1,3}){3}\b|[0-9A-Fa-f]*:[0-9A-Fa-f]*:[0-9A-Fa-f:.]*)");
  std::string out = std::regex_replace(std::string(message), address, "<address>");
  return out.empty() ? "no reason given" : out;
}

struct ConnDeleter {
  void operator()(PGconn *conn) const { PQfinish(conn); }
};
struct ResultDeleter {
  void operator()(PGresult *res) const { PQclear(res); }
};
using ResultPtr = std::unique_ptr<PGresult, ResultDeleter>;

// Maps a failed statement to an exit code and a reason: the SQLSTATE and the
// primary message (the extension's own JX110 with its detail, which names the
// key at fault). Other details and context may quote data: never logged.
int StatementFailure(const PGresult *res, PGconn *conn, std::string *reason) {
  const char *sqlstate = res != nullptr ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
  if (sqlstate == nullptr) {
    *reason = "the database connection failed: " + LibpqReason(PQerrorMessage(conn));
    return kRefreshDatabase;
  }
  const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
  const std::string state = sqlstate;
  *reason = "the database refused: " + std::string(primary != nullptr ? primary : "error");
  if (state == "JX110") {
    if (const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL); detail != nullptr) {
      *reason += ": " + std::string(detail);
    }
  }
  *reason += " (SQLSTATE " + state + ")";
  // The key set itself was refused (JX110), or is not data jsonb accepts.
  return state == "JX110" || state.rfind("22", 0) == 0 ? kRefreshDocument : kRefreshDatabase;
}

// Connects as the owner and sets the key set when it changed. *updated tells
// which. The conninfo was checked by PQconninfoParse before.
int SetKeys(const std::string &conninfo, const std::string &jwks, bool *updated,
            std::string *reason) {
  std::vector<std::string> keys, values;
  bool has_connect_timeout = false;
  {
    PQconninfoOption *options = PQconninfoParse(conninfo.c_str(), nullptr);
    if (options == nullptr) {
      *reason = "JNX_ADMIN_DATABASE_URL is not a valid libpq conninfo or URI";
      return kRefreshConfig;
    }
    for (const PQconninfoOption *o = options; o->keyword != nullptr; ++o) {
      if (o->val == nullptr) continue;
      if (std::strcmp(o->keyword, "connect_timeout") == 0) has_connect_timeout = true;
      keys.emplace_back(o->keyword);
      values.emplace_back(o->val);
    }
    PQconninfoFree(options);
  }
  keys.emplace_back("fallback_application_name");
  values.emplace_back("jnx-refresh-jwks");
  if (!has_connect_timeout) {
    keys.emplace_back("connect_timeout");
    values.emplace_back(kDatabaseConnectTimeoutSeconds);
  }
  std::vector<const char *> key_ptrs, value_ptrs;
  for (size_t i = 0; i < keys.size(); ++i) {
    key_ptrs.push_back(keys[i].c_str());
    value_ptrs.push_back(values[i].c_str());
  }
  key_ptrs.push_back(nullptr);
  value_ptrs.push_back(nullptr);

  const std::unique_ptr<PGconn, ConnDeleter> conn(
      PQconnectdbParams(key_ptrs.data(), value_ptrs.data(), 0));
  if (conn == nullptr) {
    *reason = "cannot connect to the database: out of memory";
    return kRefreshDatabase;
  }
  // A notice's text may quote data; nothing here expects one.
  PQsetNoticeProcessor(
      conn.get(), [](void *, const char *) {}, nullptr);
  if (PQstatus(conn.get()) != CONNECTION_OK) {
    *reason = "cannot connect to the database: " + LibpqReason(PQerrorMessage(conn.get()));
    return kRefreshDatabase;
  }
  ResultPtr begin(PQexec(conn.get(), kBeginSql));
  if (PQresultStatus(begin.get()) != PGRES_COMMAND_OK) {
    return StatementFailure(begin.get(), conn.get(), reason);
  }
  const char *params[] = {jwks.c_str()};
  ResultPtr set(PQexecParams(conn.get(), kSetJwksSql, 1, nullptr, params, nullptr, nullptr, 0));
  if (PQresultStatus(set.get()) != PGRES_TUPLES_OK) {
    return StatementFailure(set.get(), conn.get(), reason);
  }
  *updated = PQntuples(set.get()) == 1;
  ResultPtr commit(PQexec(conn.get(), "COMMIT"));
  if (PQresultStatus(commit.get()) != PGRES_COMMAND_OK) {
    return StatementFailure(commit.get(), conn.get(), reason);
  }
  return kRefreshOk;
}

int RunRefreshJwks() {
  // A peer that closes the socket must not kill the process with SIGPIPE.
  std::signal(SIGPIPE, SIG_IGN);
  const char *url_text = std::getenv("JNX_JWKS_URL");
  if (url_text == nullptr || *url_text == '\0') {
    return Fail(kRefreshConfig,
                "JNX_JWKS_URL is not set (the Clerk instance's "
                "https://<frontend-api>/.well-known/jwks.json)");
  }
  HttpsUrl url;
  std::string reason;
  if (!ParseJwksUrl(url_text, &url, &reason)) return Fail(kRefreshConfig, reason);
  const char *admin_url = std::getenv("JNX_ADMIN_DATABASE_URL");
  if (admin_url == nullptr || *admin_url == '\0') {
    return Fail(kRefreshConfig,
                "JNX_ADMIN_DATABASE_URL is not set (a libpq conninfo or URI of the extension's "
                "owner)");
  }
  // libpq's parse error may quote the string, which may hold a password.
  if (PQconninfoOption *options = PQconninfoParse(admin_url, nullptr); options != nullptr) {
    PQconninfoFree(options);
  } else {
    return Fail(kRefreshConfig, "JNX_ADMIN_DATABASE_URL is not a valid libpq conninfo or URI");
  }

  StartWatchdog();
  std::string body;
  if (const int code = Fetch(url, &body, &reason); code != kRefreshOk) {
    return Fail(code, "fetching " + url.shown + " failed: " + reason);
  }
  std::vector<std::string> kids;
  if (const int code = CheckDocument(body, &kids, &reason); code != kRefreshOk) {
    return Fail(code, "the key set from " + url.shown + " was refused: " + reason);
  }
  watchdog_exit.store(kRefreshDatabase);
  bool updated = false;
  if (const int code = SetKeys(admin_url, body, &updated, &reason); code != kRefreshOk) {
    return Fail(code, reason);
  }
  WriteEventLog("info", std::string("refresh-jwks: ") + (updated ? "updated" : "unchanged") + ", " +
                            std::to_string(kids.size()) + " key(s) from " + url.shown + " (kid " +
                            KidList(kids) + ")");
  return kRefreshOk;
}

}  // namespace

int RunCommand(int argc, char **argv) {
  if (argc == 2 && std::string_view(argv[1]) == "refresh-jwks") return RunRefreshJwks();
  WriteEventLog("error",
                "unknown command: jnx-shim serves when started without arguments; the only "
                "command is \"jnx-shim refresh-jwks\"");
  return kRefreshConfig;
}

}  // namespace jnx::shim
