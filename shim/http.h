// The HTTP/1.1 connection layer under cpp-httplib's router. cpp-httplib 0.11
// reads any number of header lines of up to 8 KiB each, skips lines it cannot
// parse (no colon, bare LF), follows the first of several Content-Length or
// Transfer-Encoding headers, and reads chunked bodies without a size limit.
// Here every byte it parses passes through ConnectionStream first, which
// bounds the header section and refuses what is ambiguous before cpp-httplib
// sees it; request bodies are read here too, never by cpp-httplib.
#pragma once

#include <httplib.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace jnx::shim {

// Limits of the header section (request line and header fields). The total is
// nginx's default (large_client_header_buffers 4 8k); the line limit is
// cpp-httplib's own, so that nothing it would accept is refused here.
struct HeaderLimits {
  size_t max_request_line = 8192;             // bytes, CRLF included
  size_t max_line = 8192;                     // one header field line, CRLF included
  size_t max_count = 100;                     // header field lines
  size_t max_total = size_t{32} * 1024;       // the whole section
  std::chrono::milliseconds deadline{10000};  // from the request's first byte to its blank line
};

// Why a request was refused while its header section was read.
enum class Violation {
  kNone,
  kMalformed,           // bare LF or CR, obs-fold, no colon, bad name, control bytes: 400
  kRequestLineTooLong,  // 414
  kLineTooLong,         // one header line over the limit: 431
  kTooManyHeaders,      // 431
  kHeadersTooLarge,     // 431
  kTimeout,             // header section not complete in time: 408
  kBodyTooLarge,        // cpp-httplib tried to read a body: never expected, 413
};

// How a request's body is delimited, from its raw header lines: exactly one
// Content-Length of digits, or exactly one Transfer-Encoding that is
// `chunked` (HTTP/1.1 only) and no Content-Length; anything else is refused,
// as request-smuggling defences expect.
struct Framing {
  enum Kind { kNone, kLength, kChunked, kInvalid } kind = kNone;
  uint64_t length = 0;
  bool HasBody() const { return kind == kChunked || (kind == kLength && length > 0); }
};
Framing FramingOf(std::string_view raw_headers, bool http_1_0);

// The values of every field named `name` (case-insensitive) in raw header
// lines, without surrounding whitespace, exactly as sent: cpp-httplib's own
// copies have %XX decoded (and are cut at a decoded NUL).
std::vector<std::string_view> HeaderValues(std::string_view raw_headers, std::string_view name);

// Well-formed UTF-8 (RFC 3629: no overlong forms, surrogates or code points
// above U+10FFFF) without NUL, which PostgreSQL's text cannot hold either.
bool IsValidText(std::string_view s);

class ConnectionStream final : public httplib::Stream {
 public:
  ConnectionStream(socket_t sock, std::chrono::milliseconds read_timeout,
                   std::chrono::milliseconds write_timeout, const HeaderLimits &limits);

  // Called before each request on the connection.
  void BeginRequest();
  Violation violation() const { return violation_; }
  bool HasBufferedInput() const { return pos_ < end_; }
  // The header field lines as received (before cpp-httplib decodes %XX in
  // values), CRLF-separated; at most HeaderLimits::max_total bytes.
  const std::string &raw_headers() const { return raw_headers_; }

  // The response now being written ends the connection: the request was
  // refused before its body was read, or its framing cannot be trusted.
  void CloseAfterResponse() { close_ = true; }
  bool close_after_response() const { return close_; }

  // Sends what write() has buffered. cpp-httplib writes a response's header
  // section and its body apart: buffering them (up to 64 KiB) makes one send
  // and one TCP segment of a small response. Called after each response, and
  // before any wait for input (a 100 Continue must reach the client before
  // its body is read). False if the connection failed or the client took no
  // byte for the write timeout.
  bool Flush() const;
  void DiscardOutput() { out_.clear(); }

  enum class BodyStatus { kOk, kTooLarge, kMalformed, kIoError };
  // The body as Content-Length frames it, or as chunked transfer coding does,
  // up to max_bytes (after dechunking); stops reading at the first byte over.
  BodyStatus ReadFixedBody(uint64_t length, size_t max_bytes, std::string *out);
  BodyStatus ReadChunkedBody(size_t max_bytes, std::string *out);

  // httplib::Stream
  bool is_readable() const override;
  bool is_writable() const override;
  ssize_t read(char *ptr, size_t size) override;
  ssize_t write(const char *ptr, size_t size) override;
  void get_remote_ip_and_port(std::string &ip, int &port) const override;
  void get_local_ip_and_port(std::string &ip, int &port) const override;
  socket_t socket() const override { return sock_; }

 private:
  enum class Phase { kRequestLine, kHeaders, kBody };
  using Clock = std::chrono::steady_clock;

  bool Fill(Clock::time_point deadline);
  bool SendAll(const char *ptr, size_t size) const;
  void LearnAddresses() const;
  bool Accept(unsigned char c);  // header-section grammar; false sets violation_
  bool Fail(Violation v) {
    violation_ = v;
    return false;
  }
  BodyStatus ReadLine(std::string *line, size_t max_bytes, Clock::time_point deadline);
  bool ReadInto(std::string *out, size_t n, Clock::time_point deadline);

  socket_t sock_;
  std::chrono::milliseconds read_timeout_, write_timeout_;
  HeaderLimits limits_;

  char buffer_[16 * 1024];
  size_t pos_ = 0, end_ = 0;
  // Written but not yet sent. Mutable: the const is_readable() flushes
  // before it waits, as every wait for input does.
  mutable std::string out_;
  // The peer's and our own address, asked of the kernel once per connection
  // (cpp-httplib asks for both on every request).
  mutable bool addresses_known_ = false;
  mutable std::string remote_ip_, local_ip_;
  mutable int remote_port_ = 0, local_port_ = 0;

  // Per request.
  Phase phase_ = Phase::kRequestLine;
  Violation violation_ = Violation::kNone;
  bool close_ = false;
  Clock::time_point header_deadline_;
  size_t total_ = 0, line_ = 0, count_ = 0;
  bool after_cr_ = false, in_value_ = false;
  uint64_t unexpected_body_ = 0;
  std::string raw_headers_;
};

// The connection now being served on this thread, or nullptr outside one.
ConnectionStream *CurrentConnection();

// cpp-httplib's server with its connection loop replaced: one
// ConnectionStream per connection (pipelined bytes are kept between requests,
// which cpp-httplib's per-request stream loses), idle keep-alive waits that
// sleep instead of polling every 10 ms, and a connection closed, after a
// short lingering drain, whenever a response asks for it.
class Server : public httplib::Server {
 public:
  explicit Server(const HeaderLimits &limits) : limits_(limits) {}

 private:
  bool process_and_close_socket(socket_t sock) override;

  HeaderLimits limits_;
};

}  // namespace jnx::shim
