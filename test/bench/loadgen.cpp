// Bounded webhook load generator for jnx-shim, loopback only.
//
//   loadgen HOST:PORT SECRET_FILE CONCURRENCY SECONDS MAX_REQUESTS RUN_TAG CONNINFO
//
// CONCURRENCY threads each keep one HTTP connection and send signed
// user.created deliveries (about 2.6 KB, a new user and svix id each) until
// SECONDS pass or MAX_REQUESTS are sent. Prints events/s and latency
// percentiles, then checks in the database that the rows written equal the
// deliveries accepted as "processed". Exit 1 when they differ or any request
// failed.
#include <httplib.h>
#include <libpq-fe.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/webhook.h"

namespace {

using Clock = std::chrono::steady_clock;

std::string UserCreated(const std::string &user_id) {
  std::string body =
      R"({"type":"user.created","object":"event","timestamp":1764150000000,)"
      R"("instance_id":"ins_bench","data":{"id":")" +
      user_id +
      R"(","object":"user","first_name":"Bench","last_name":"Mark","username":null,)"
      R"("image_url":"https://img.example.com/b.png","primary_email_address_id":"idn_1",)"
      R"("email_addresses":[{"id":"idn_1","object":"email_address","email_address":")" +
      user_id +
      R"(@example.com","verification":{"status":"verified"}}],"public_metadata":{},)"
      R"("private_metadata":{},"created_at":1764150000000,"updated_at":1764150000000,)"
      R"("unsafe_metadata":{"notes":")";
  while (body.size() < 2560) body.push_back('x');
  return body + "\"}}}";
}

long long CountRows(PGconn *conn, const std::string &sql) {
  PGresult *res = PQexec(conn, sql.c_str());
  long long n = -1;
  if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
    n = std::stoll(PQgetvalue(res, 0, 0));
  PQclear(res);
  return n;
}

}  // namespace

int main(int argc, char **argv) {
  if (argc != 8) {
    std::fprintf(
        stderr,
        "usage: loadgen HOST:PORT SECRET_FILE CONCURRENCY SECONDS MAX_REQUESTS TAG CONNINFO\n");
    return 2;
  }
  const std::string listen = argv[1];
  const std::string host = listen.substr(0, listen.rfind(':'));
  const int port = std::stoi(listen.substr(listen.rfind(':') + 1));
  std::string secret;
  std::ifstream(argv[2]) >> secret;
  const int concurrency = std::stoi(argv[3]);
  const double seconds = std::stod(argv[4]);
  const long max_requests = std::stol(argv[5]);
  const std::string tag = argv[6];
  const std::string conninfo = argv[7];
  if (host != "127.0.0.1" && host != "localhost" && host != "::1") {
    std::fprintf(stderr, "loadgen only targets loopback addresses\n");
    return 2;
  }
  std::string key;
  if (jnx::core::DecodeWebhookSecret(secret, &key) != jnx::core::WebhookError::kOk) {
    std::fprintf(stderr, "bad secret file\n");
    return 2;
  }

  std::atomic<long> issued{0}, processed{0}, failed{0};
  std::mutex mutex;
  std::vector<double> latencies_ms;
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::duration<double>(seconds);
  std::vector<std::thread> threads;
  for (int t = 0; t < concurrency; ++t) {
    threads.emplace_back([&, t] {
      httplib::Client client(host, port);
      client.set_keep_alive(true);
      client.set_tcp_nodelay(true);
      client.set_read_timeout(30, 0);
      std::vector<double> mine;
      for (long seq = 0;; ++seq) {
        if (Clock::now() >= deadline || issued.fetch_add(1) >= max_requests) break;
        const std::string id = tag + "_" + std::to_string(t) + "_" + std::to_string(seq);
        const std::string body = UserCreated("user_" + id);
        const std::string msg_id = "msg_" + id;
        const long long ts = std::chrono::duration_cast<std::chrono::seconds>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count();
        std::string signature;
        jnx::core::SignWebhook(key, msg_id, ts, body, &signature);
        httplib::Headers headers = {{"svix-id", msg_id},
                                    {"svix-timestamp", std::to_string(ts)},
                                    {"svix-signature", signature}};
        const auto t0 = Clock::now();
        auto res = client.Post("/api/webhooks/clerk", headers, body, "application/json");
        mine.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
        if (res && res->status == 200 && res->body.find("\"processed\"") != std::string::npos) {
          processed.fetch_add(1);
        } else {
          failed.fetch_add(1);
        }
      }
      std::lock_guard<std::mutex> lock(mutex);
      latencies_ms.insert(latencies_ms.end(), mine.begin(), mine.end());
    });
  }
  for (auto &th : threads) th.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  std::sort(latencies_ms.begin(), latencies_ms.end());
  auto pct = [&](double p) {
    if (latencies_ms.empty()) return 0.0;
    return latencies_ms[std::min(
        latencies_ms.size() - 1,
        static_cast<size_t>(p * static_cast<double>(latencies_ms.size())))];
  };
  std::printf(
      "  concurrency %3d: %6zu deliveries in %5.1fs = %7.0f events/s   p50 %6.2f ms   p99 %6.2f ms"
      "   failed %ld\n",
      concurrency, latencies_ms.size(), elapsed, static_cast<double>(latencies_ms.size()) / elapsed,
      pct(0.50), pct(0.99), failed.load());

  PGconn *conn = PQconnectdb(conninfo.c_str());
  if (PQstatus(conn) != CONNECTION_OK) {
    std::fprintf(stderr, "cannot connect to check rows\n");
    PQfinish(conn);
    return 1;
  }
  const long long events =
      CountRows(conn, "SELECT count(*) FROM jnx.webhook_events WHERE svix_id LIKE 'msg_" + tag +
                          "\\_%' AND status = 'processed'");
  const long long users = CountRows(
      conn, "SELECT count(*) FROM jnx.users WHERE clerk_user_id LIKE 'user_" + tag + "\\_%'");
  PQfinish(conn);
  const bool ok = events == processed.load() && users == processed.load() && failed.load() == 0;
  std::printf("  rows check: %lld webhook_events, %lld users for %ld accepted deliveries: %s\n",
              events, users, processed.load(), ok ? "ok" : "MISMATCH");
  return ok ? 0 : 1;
}
