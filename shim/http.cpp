#include "http.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

namespace jnx::shim {
namespace {

using Clock = std::chrono::steady_clock;

// A whole request body, from its first byte to its last, however it trickles.
constexpr std::chrono::seconds kBodyDeadline{30};
// A chunk-size line: hex digits and extensions, which we ignore.
constexpr size_t kMaxChunkLine = 1024;
// cpp-httplib never reads a body here (handlers do, through
// ReadFixedBody/ReadChunkedBody); should it ever, it stops at this.
constexpr uint64_t kMaxUnexpectedBody = uint64_t{64} * 1024;
// Response bytes held before they are sent anyway.
constexpr size_t kMaxBufferedOutput = size_t{64} * 1024;
// After a refused request, how long we read and discard what the client
// still sends, so that our answer is not lost to a reset (nginx's
// lingering close); then the socket is closed regardless.
constexpr std::chrono::milliseconds kLingerTotal{2000};
constexpr int kLingerIdleMs = 500;
// Idle keep-alive connections wake this often to notice a shutdown.
constexpr int kIdleSliceMs = 200;

thread_local ConnectionStream *current_connection = nullptr;

// Rounded up, so that the last fraction of a millisecond is slept, not spun.
int MillisUntil(Clock::time_point deadline) {
  const long long left =
      std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left <= 0 ? 0 : static_cast<int>(std::min<long long>(left, INT_MAX));
}

// poll() for one socket, restarted on EINTR; >0 ready, 0 timeout, <0 error.
int PollOne(socket_t sock, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd p{sock, events, 0};
    const int n = poll(&p, 1, MillisUntil(deadline));
    if (n >= 0) {
      if (n == 0 && Clock::now() < deadline) continue;
      return n;
    }
    if (errno != EINTR) return -1;
  }
}

// RFC 9110 tchar: the bytes a field name may hold.
bool IsTchar(unsigned char c) {
  if (std::isalnum(c) != 0) return c < 0x80;
  return std::strchr("!#$%&'*+-.^_`|~", c) != nullptr && c != '\0';
}

bool IEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

void IpAndPort(const sockaddr_storage &addr, socklen_t len, std::string &ip, int &port) {
  char host[NI_MAXHOST], service[NI_MAXSERV];
  if (getnameinfo(reinterpret_cast<const sockaddr *>(&addr), len, host, sizeof host, service,
                  sizeof service, NI_NUMERICHOST | NI_NUMERICSERV) == 0) {
    ip = host;
    port = std::atoi(service);
  }
}

}  // namespace

std::vector<std::string_view> HeaderValues(std::string_view raw, std::string_view name) {
  std::vector<std::string_view> values;
  while (!raw.empty()) {
    const size_t end = raw.find("\r\n");
    const std::string_view line = raw.substr(0, end);
    raw.remove_prefix(end == std::string_view::npos ? raw.size() : end + 2);
    const size_t colon = line.find(':');
    if (colon != std::string_view::npos && IEquals(line.substr(0, colon), name)) {
      values.push_back(TrimOws(line.substr(colon + 1)));
    }
  }
  return values;
}

Framing FramingOf(std::string_view raw, bool http_1_0) {
  const std::vector<std::string_view> lengths = HeaderValues(raw, "Content-Length");
  const std::vector<std::string_view> encodings = HeaderValues(raw, "Transfer-Encoding");
  if (lengths.size() > 1 || encodings.size() > 1 || (!lengths.empty() && !encodings.empty())) {
    return {Framing::kInvalid, 0};
  }
  if (!encodings.empty()) {
    // Only `chunked` (no other coding, no list), and never in HTTP/1.0,
    // which has no transfer codings (RFC 9112, section 6.1).
    if (!IEquals(encodings[0], "chunked") || http_1_0) return {Framing::kInvalid, 0};
    return {Framing::kChunked, 0};
  }
  if (!lengths.empty()) {
    const std::string_view length = lengths[0];
    if (length.empty() || length.size() > 18) return {Framing::kInvalid, 0};
    uint64_t value = 0;
    for (char c : length) {
      if (c < '0' || c > '9') return {Framing::kInvalid, 0};
      value = value * 10 + static_cast<uint64_t>(c - '0');
    }
    return {Framing::kLength, value};
  }
  return {Framing::kNone, 0};
}

bool IsValidText(std::string_view s) {
  const auto *p = reinterpret_cast<const unsigned char *>(s.data());
  const auto *end = p + s.size();
  while (p < end) {
    const unsigned char c = *p;
    if (c == 0) return false;
    if (c < 0x80) {
      ++p;
      continue;
    }
    size_t n;
    uint32_t cp, min;
    if (c >= 0xC2 && c <= 0xDF) {
      n = 1, cp = c & 0x1Fu, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 2, cp = c & 0x0Fu, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 3, cp = c & 0x07u, min = 0x10000;
    } else {
      return false;  // a continuation byte first, C0/C1 (overlong), or F5..FF
    }
    if (static_cast<size_t>(end - p) <= n) return false;
    for (size_t i = 1; i <= n; ++i) {
      if ((p[i] & 0xC0u) != 0x80u) return false;
      cp = (cp << 6) | (p[i] & 0x3Fu);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    p += n + 1;
  }
  return true;
}

ConnectionStream::ConnectionStream(socket_t sock, std::chrono::milliseconds read_timeout,
                                   std::chrono::milliseconds write_timeout,
                                   const HeaderLimits &limits)
    : sock_(sock), read_timeout_(read_timeout), write_timeout_(write_timeout), limits_(limits) {}

void ConnectionStream::BeginRequest() {
  phase_ = Phase::kRequestLine;
  violation_ = Violation::kNone;
  close_ = false;
  header_deadline_ = Clock::now() + limits_.deadline;
  total_ = line_ = count_ = 0;
  after_cr_ = in_value_ = false;
  unexpected_body_ = 0;
  raw_headers_.clear();
}

bool ConnectionStream::Fill(Clock::time_point deadline) {
  if (!Flush()) return false;
  const Clock::time_point until = std::min(deadline, Clock::now() + read_timeout_);
  for (;;) {
    // Read first, wait only when nothing is there: at the start of a request
    // process_and_close_socket has just waited for it, so a poll here would
    // only say so again (one system call of the nine a request cost). Input
    // that arrives in pieces pays one recv more per piece instead.
    const ssize_t n = recv(sock_, buffer_, sizeof buffer_, MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (PollOne(sock_, POLLIN, until) <= 0) return false;
      continue;
    }
    if (n <= 0) return false;
    pos_ = 0;
    end_ = static_cast<size_t>(n);
    return true;
  }
}

// The header section's grammar (RFC 9112, sections 2.2, 3 and 5), one byte at
// a time: lines end in CRLF; a field line is a token, a colon, then a value
// without control bytes; no whitespace before the colon or at a line's start
// (obs-fold). cpp-httplib would skip or misread the lines refused here.
bool ConnectionStream::Accept(unsigned char c) {
  if (++total_ > limits_.max_total) return Fail(Violation::kHeadersTooLarge);
  ++line_;
  if (phase_ == Phase::kRequestLine ? line_ > limits_.max_request_line : line_ > limits_.max_line) {
    return Fail(phase_ == Phase::kRequestLine ? Violation::kRequestLineTooLong
                                              : Violation::kLineTooLong);
  }
  if (phase_ == Phase::kHeaders) raw_headers_.push_back(static_cast<char>(c));
  if (after_cr_) {
    if (c != '\n') return Fail(Violation::kMalformed);  // a CR alone
    after_cr_ = false;
    if (phase_ == Phase::kRequestLine) {
      phase_ = Phase::kHeaders;
    } else if (line_ == 2) {
      phase_ = Phase::kBody;  // the blank line
      raw_headers_.resize(raw_headers_.size() - 2);
    } else if (++count_ > limits_.max_count) {
      return Fail(Violation::kTooManyHeaders);
    }
    line_ = 0;
    in_value_ = false;
    return true;
  }
  if (c == '\r') {
    after_cr_ = true;
    // In a field line, a CR before any colon: a line without one.
    return phase_ != Phase::kHeaders || line_ == 1 || in_value_ || Fail(Violation::kMalformed);
  }
  if (c == '\n') return Fail(Violation::kMalformed);  // a bare LF
  if (phase_ == Phase::kRequestLine) {
    return (c >= 0x20 && c != 0x7f) || Fail(Violation::kMalformed);
  }
  if (!in_value_) {
    if (c == ':') {
      in_value_ = true;
      return line_ > 1 || Fail(Violation::kMalformed);  // an empty name
    }
    return IsTchar(c) || Fail(Violation::kMalformed);
  }
  return ((c >= 0x20 && c != 0x7f) || c == '\t') || Fail(Violation::kMalformed);
}

ssize_t ConnectionStream::read(char *ptr, size_t size) {
  // After a violation, end of input: cpp-httplib then answers 400 (which the
  // error handler turns into the violation's own status) without reading on.
  if (violation_ != Violation::kNone || size == 0) return 0;
  if (pos_ == end_) {
    const Clock::time_point deadline =
        phase_ == Phase::kBody ? Clock::now() + read_timeout_ : header_deadline_;
    if (!Fill(deadline)) {
      if (phase_ != Phase::kBody && Clock::now() >= header_deadline_) {
        Fail(Violation::kTimeout);
        return 0;
      }
      return -1;
    }
  }
  size_t n = std::min(size, end_ - pos_);
  if (phase_ != Phase::kBody) {
    size_t accepted = 0;
    while (accepted < n && phase_ != Phase::kBody &&
           Accept(static_cast<unsigned char>(buffer_[pos_ + accepted]))) {
      ++accepted;
    }
    if (accepted == 0) return 0;
    n = accepted;
  } else if ((unexpected_body_ += n) > kMaxUnexpectedBody) {
    Fail(Violation::kBodyTooLarge);
    return 0;
  }
  std::memcpy(ptr, buffer_ + pos_, n);
  pos_ += n;
  return static_cast<ssize_t>(n);
}

ssize_t ConnectionStream::write(const char *ptr, size_t size) {
  if (out_.size() + size <= kMaxBufferedOutput) {
    out_.append(ptr, size);
    return static_cast<ssize_t>(size);
  }
  // A large body goes out as it is, after what is buffered: not copied.
  if (!Flush() || !SendAll(ptr, size)) return -1;
  return static_cast<ssize_t>(size);
}

bool ConnectionStream::Flush() const {
  const bool sent = SendAll(out_.data(), out_.size());
  out_.clear();  // after a failure the connection is finished: nothing more may follow
  return sent;
}

// The write timeout bounds each wait for the client to take more bytes, as
// it bounded each of cpp-httplib's own writes.
bool ConnectionStream::SendAll(const char *ptr, size_t size) const {
  size_t sent = 0;
  while (sent < size) {
    const ssize_t n = send(sock_, ptr + sent, size - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) &&
        PollOne(sock_, POLLOUT, Clock::now() + write_timeout_) > 0) {
      continue;
    }
    return false;
  }
  return true;
}

bool ConnectionStream::is_readable() const {
  if (pos_ < end_) return true;
  return Flush() && PollOne(sock_, POLLIN, Clock::now() + read_timeout_) > 0;
}

bool ConnectionStream::is_writable() const {
  return PollOne(sock_, POLLOUT, Clock::now() + write_timeout_) > 0;
}

void ConnectionStream::get_remote_ip_and_port(std::string &ip, int &port) const {
  LearnAddresses();
  ip = remote_ip_;
  port = remote_port_;
}

void ConnectionStream::get_local_ip_and_port(std::string &ip, int &port) const {
  LearnAddresses();
  ip = local_ip_;
  port = local_port_;
}

void ConnectionStream::LearnAddresses() const {
  if (addresses_known_) return;
  addresses_known_ = true;
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (getpeername(sock_, reinterpret_cast<sockaddr *>(&addr), &len) == 0) {
    IpAndPort(addr, len, remote_ip_, remote_port_);
  }
  addr = sockaddr_storage{};
  len = sizeof addr;
  if (getsockname(sock_, reinterpret_cast<sockaddr *>(&addr), &len) == 0) {
    IpAndPort(addr, len, local_ip_, local_port_);
  }
}

bool ConnectionStream::ReadInto(std::string *out, size_t n, Clock::time_point deadline) {
  while (n > 0) {
    if (pos_ == end_ && !Fill(deadline)) return false;
    const size_t k = std::min(n, end_ - pos_);
    out->append(buffer_ + pos_, k);
    pos_ += k;
    n -= k;
  }
  return true;
}

// One CRLF-terminated line, without its CRLF; a bare CR or LF, control
// bytes, or more than max_bytes make it malformed.
ConnectionStream::BodyStatus ConnectionStream::ReadLine(std::string *line, size_t max_bytes,
                                                        Clock::time_point deadline) {
  line->clear();
  bool after_cr = false;
  for (;;) {
    if (pos_ == end_ && !Fill(deadline)) return BodyStatus::kIoError;
    const auto c = static_cast<unsigned char>(buffer_[pos_++]);
    if (after_cr) return c == '\n' ? BodyStatus::kOk : BodyStatus::kMalformed;
    if (c == '\r') {
      after_cr = true;
    } else if ((c < 0x20 && c != '\t') || c == 0x7f || line->size() >= max_bytes) {
      return BodyStatus::kMalformed;
    } else {
      line->push_back(static_cast<char>(c));
    }
  }
}

ConnectionStream::BodyStatus ConnectionStream::ReadFixedBody(uint64_t length, size_t max_bytes,
                                                             std::string *out) {
  if (length > max_bytes) return BodyStatus::kTooLarge;
  out->reserve(static_cast<size_t>(length));
  return ReadInto(out, static_cast<size_t>(length), Clock::now() + kBodyDeadline)
             ? BodyStatus::kOk
             : BodyStatus::kIoError;
}

// RFC 9112, section 7.1, strictly: chunk-size is hex digits only (no sign,
// no 0x, no whitespace before it), each chunk's data ends in CRLF, trailer
// fields are read and ignored. cpp-httplib accepts a missing CRLF after a
// chunk and ends the body there, leaving the rest to be read as a request.
ConnectionStream::BodyStatus ConnectionStream::ReadChunkedBody(size_t max_bytes, std::string *out) {
  const Clock::time_point deadline = Clock::now() + kBodyDeadline;
  std::string line;
  for (;;) {
    if (BodyStatus s = ReadLine(&line, kMaxChunkLine, deadline); s != BodyStatus::kOk) return s;
    uint64_t size = 0;
    size_t digits = 0;
    for (; digits < line.size() && std::isxdigit(static_cast<unsigned char>(line[digits])) != 0;
         ++digits) {
      if (digits == 15) return BodyStatus::kMalformed;  // over 2^60: nonsense
      const char c = static_cast<char>(std::tolower(static_cast<unsigned char>(line[digits])));
      size = size * 16 + static_cast<uint64_t>(c <= '9' ? c - '0' : c - 'a' + 10);
    }
    const std::string_view rest = TrimOws(std::string_view(line).substr(digits));
    if (digits == 0 || (!rest.empty() && rest.front() != ';') ||
        (rest.empty() && digits != line.size())) {
      return BodyStatus::kMalformed;
    }
    if (size == 0) break;
    if (size > max_bytes - out->size()) return BodyStatus::kTooLarge;
    if (!ReadInto(out, static_cast<size_t>(size), deadline)) return BodyStatus::kIoError;
    if (BodyStatus s = ReadLine(&line, 0, deadline); s != BodyStatus::kOk) return s;
  }
  for (size_t fields = 0;; ++fields) {
    if (BodyStatus s = ReadLine(&line, limits_.max_line, deadline); s != BodyStatus::kOk) return s;
    if (line.empty()) return BodyStatus::kOk;
    if (fields == limits_.max_count || line.find(':') == std::string::npos || line[0] == ' ' ||
        line[0] == '\t') {
      return BodyStatus::kMalformed;
    }
  }
}

ConnectionStream *CurrentConnection() {
  return current_connection;
}

bool Server::process_and_close_socket(socket_t sock) {
  using std::chrono::milliseconds;
  using std::chrono::seconds;
  const auto read_timeout = std::chrono::duration_cast<milliseconds>(
      seconds(read_timeout_sec_) + std::chrono::microseconds(read_timeout_usec_));
  const auto write_timeout = std::chrono::duration_cast<milliseconds>(
      seconds(write_timeout_sec_) + std::chrono::microseconds(write_timeout_usec_));
  ConnectionStream strm(sock, read_timeout, write_timeout, limits_);
  current_connection = &strm;
  bool ret = false;
  for (size_t left = keep_alive_max_count_; left > 0; --left) {
    // Wait for the next request in slices, to notice a shutdown.
    const Clock::time_point idle_until = Clock::now() + seconds(keep_alive_timeout_sec_);
    bool ready = strm.HasBufferedInput();
    while (!ready && svr_sock_ != INVALID_SOCKET && Clock::now() < idle_until) {
      ready = PollOne(sock, POLLIN,
                      std::min(idle_until, Clock::now() + milliseconds(kIdleSliceMs))) > 0;
    }
    if (!ready || svr_sock_ == INVALID_SOCKET) break;
    strm.BeginRequest();
    bool closed = false;
    try {
      ret = process_request(strm, left == 1, closed, nullptr);
    } catch (...) {  // only allocation failures get here: end this connection, not the process
      strm.DiscardOutput();  // a response cut short is not sent
      ret = false;
    }
    if (!strm.Flush()) {
      ret = false;
      break;
    }
    if (!ret || closed || strm.close_after_response()) break;
  }
  current_connection = nullptr;
  if (strm.close_after_response()) {
    // The answer is sent; signal its end, then drain what the client still
    // sends (a body we refused) for a while so that the answer arrives
    // before our close resets the connection.
    shutdown(sock, SHUT_WR);
    const Clock::time_point until = Clock::now() + kLingerTotal;
    char sink[16 * 1024];
    while (PollOne(sock, POLLIN, std::min(until, Clock::now() + milliseconds(kLingerIdleMs))) > 0 &&
           recv(sock, sink, sizeof sink, 0) > 0) {
    }
  }
  shutdown(sock, SHUT_RDWR);
  close(sock);
  return ret;
}

}  // namespace jnx::shim
