#!/usr/bin/env python3
"""The nginx edge in front of jnx-shim (deploy/nginx), over real sockets.
Standard library only.

Environment (from `test/env/cluster.sh env`, with JNX_INSTANCE exported as
test/run-all.sh does): JNX_LISTEN (the edge), JNX_SHIM_LISTEN (the shim behind
it), JNX_BASE, JNX_SECRET_FILE, JNX_SHIM_LOG, JNX_SHIM_PID_FILE,
JNX_EDGE_ACCESS_LOG, PGHOST, PGPORT, PGUSER, PGDATABASE.

JNX_EDGE_TEST_TARGET=shim sends everything straight to the shim instead: the
old topology, on which these tests fail (that is what the edge adds).

Attackers and "other clients" connect from other loopback addresses
(127.0.0.2, 127.0.0.3, ...: all of 127/8 is loopback on Linux), so that the
edge's per-address limits, which rightly apply to them, never count the
legitimate client on 127.0.0.1.
"""

import collections
import http.client
import json
import os
import resource
import select
import socket
import subprocess
import sys
import threading
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "test", "fixtures"))
import svix  # noqa: E402


def address(text):
    host, port = text.rsplit(":", 1)
    return host, int(port)


SHIM = address(os.environ["JNX_SHIM_LISTEN"])
DIRECT = os.environ.get("JNX_EDGE_TEST_TARGET") == "shim"
EDGE = SHIM if DIRECT else address(os.environ["JNX_LISTEN"])
BASE = os.environ["JNX_BASE"]
with open(os.environ["JNX_SECRET_FILE"], encoding="ascii") as f:
    SECRET = f.read().strip()
with open(os.path.join(ROOT, "test", "fixtures", "user_created.json"), "rb") as f:
    FIXTURE = json.loads(f.read())
MAX_BODY = int(os.environ.get("JNX_MAX_BODY_BYTES", str(1024 * 1024)))
MINT = os.path.join(ROOT, "build", "jnx-mint")
DEV_ISSUER = "https://clerk.dev.jnx.test"
DEV_HEADER = '{"alg":"RS256","kid":"ins_dev","typ":"JWT"}'
RUN = os.urandom(4).hex()
TOKENS = []  # every token this suite sends: none may show up in a log
TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def expect(cond, message):
    if not cond:
        raise AssertionError(message)


def expect_json(status, headers, body, want_status, want_body):
    expect(status == want_status, f"expected HTTP {want_status}, got {status}: {body[:200]!r}")
    expect(headers.get("content-type", "").startswith("application/json"), f"content-type: {headers}")
    expect(json.loads(body) == want_body, f"body {body[:200]!r}, expected {want_body}")


def psql(sql):
    out = subprocess.run(["psql", "-X", "-tA", "-v", "ON_ERROR_STOP=1", "-c", sql],
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


def cluster(*args):
    subprocess.run(["bash", os.path.join(ROOT, "test", "env", "cluster.sh"), *args], check=True,
                   stdout=subprocess.DEVNULL)


def request(method, path, body=b"", headers=None, addr=None, source=None, timeout=10):
    host, port = addr or EDGE
    conn = http.client.HTTPConnection(host, port, timeout=timeout,
                                      source_address=(source, 0) if source else None)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


def timed(fn, *args, **kw):
    t0 = time.monotonic()
    try:
        result = fn(*args, **kw)
    except OSError as e:  # a timeout or a refused connection counts as a failure
        result = (None, {}, repr(e).encode())
    return result, time.monotonic() - t0


def mint(claims):
    out = subprocess.run([MINT, "token", BASE, "ins_dev", DEV_HEADER, json.dumps(claims)],
                         check=True, capture_output=True, text=True)
    token = out.stdout.strip()
    TOKENS.append(token)
    return token


def token_for(sub, **extra):
    now = int(time.time())
    claims = {"sub": f"{sub}_{RUN}", "iss": DEV_ISSUER, "iat": now - 2, "nbf": now - 5,
              "exp": now + 900, "v": 2, "sid": "sess_edge"}
    claims.update(extra)
    return mint(claims)


def me(token, addr=None, source=None, timeout=10):
    return request("GET", "/api/me", headers={"Authorization": "Bearer " + token}, addr=addr,
                   source=source, timeout=timeout)


def user_event(user_id, first_name="Eve"):
    event = json.loads(json.dumps(FIXTURE))
    user_id = f"{user_id}_{RUN}"
    event["data"]["id"] = user_id
    event["data"]["first_name"] = first_name
    event["data"]["email_addresses"][0]["email_address"] = f"{user_id.lower()}@example.com"
    return json.dumps(event).encode()


def deliver(body, headers=None, addr=None, source=None, timeout=10):
    return request("POST", "/api/webhooks/clerk", body, headers or svix.headers(SECRET, body),
                   addr=addr, source=source, timeout=timeout)


def stored(svix_id):
    return psql(f"SELECT count(*) FROM jnx.webhook_events WHERE svix_id = '{svix_id}'") != "0"


def shim_log_lines(want=None):
    """Request lines in the shim's log. The shim writes its line after the
    answer: wait 0.3 s, or up to 3 s for `want` lines."""
    deadline = time.monotonic() + 3
    time.sleep(0.3)
    while True:
        with open(os.environ["JNX_SHIM_LOG"], encoding="utf-8", errors="replace") as f:
            n = sum(1 for line in f if '"route"' in line)
        if want is None or n >= want or time.monotonic() > deadline:
            return n
        time.sleep(0.1)


def shim_rss_kib():
    with open(os.environ["JNX_SHIM_PID_FILE"], encoding="ascii") as f:
        pid = f.read().strip()
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


# --- raw HTTP: what http.client refuses to send --------------------------------

def parse_response(data):
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.decode("latin-1").partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, body


def raw_exchange(head, body_chunks=(), addr=None, timeout=10, source=None):
    """Sends head then body_chunks from a thread while reading the answer, so
    that an early answer (413, 400) is read even while the sender is still
    pushing. Returns (status, headers, body, seconds); status None when no
    answer came within timeout."""
    sock = socket.create_connection(addr or EDGE, timeout=timeout,
                                    source_address=(source, 0) if source else None)
    t0 = time.monotonic()

    def send():
        try:
            sock.sendall(head)
            for chunk in body_chunks:
                sock.sendall(chunk)
        except OSError:
            pass  # the server closed: the answer tells why

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    data = b""
    try:
        while True:
            if b"\r\n\r\n" in data:
                status, headers, body = parse_response(data)
                if len(body) >= int(headers.get("content-length", "0")):
                    return status, headers, body, time.monotonic() - t0
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    finally:
        sock.close()
        sender.join(timeout=5)
    if b"\r\n\r\n" in data:
        status, headers, body = parse_response(data)
        return status, headers, body, time.monotonic() - t0
    return None, {}, data, time.monotonic() - t0


def webhook_head(body_len=None, extra=b"", svix_headers=None, chunked=False):
    h = svix_headers
    head = (b"POST /api/webhooks/clerk HTTP/1.1\r\nHost: edge.test\r\nConnection: close\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in h.items()).encode() + extra)
    if chunked:
        head += b"Transfer-Encoding: chunked\r\n"
    if body_len is not None:
        head += f"Content-Length: {body_len}\r\n".encode()
    return head + b"\r\n"


def chunked(body, size=65536):
    for i in range(0, len(body), size):
        part = body[i:i + size]
        yield f"{len(part):x}\r\n".encode() + part + b"\r\n"
    yield b"0\r\n\r\n"


# --- a low-rate edge rendered from the same template ---------------------------

class LowRateEdge:
    """deploy/nginx rendered like the instance's edge, with tiny auth rates so
    that the limits show within a few requests (production rates are tested
    for not getting in the way, by test_shim.py through the instance's edge)."""
    # One request freed per 2 s per token, per 1 s per address: a slow
    # moment of this shared machine cannot refill a bucket mid-test.
    RATES = {"JNX_RATE_AUTH_PER_TOKEN": "30r/m", "JNX_BURST_AUTH_PER_TOKEN": "3",
             "JNX_RATE_AUTH_PER_IP": "60r/m", "JNX_BURST_AUTH_PER_IP": "10",
             "JNX_CONN_AUTH_PER_IP": "4"}

    def __enter__(self):
        if DIRECT:
            self.addr = SHIM
            return self
        self.dir = os.path.join(BASE, "edge-lowrate")
        os.makedirs(os.path.join(self.dir, "tmp"), exist_ok=True)
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        self.addr = ("127.0.0.1", port)
        self.pid_file = os.path.join(self.dir, "nginx.pid")
        self.access_log = os.path.join(self.dir, "access.log")
        conf = os.path.join(self.dir, "nginx.conf")
        env = dict(os.environ, JNX_EDGE_LISTEN=f"127.0.0.1:{port}",
                   JNX_SHIM_LISTEN=os.environ["JNX_SHIM_LISTEN"], JNX_EDGE_WORKERS="1",
                   JNX_EDGE_PID=self.pid_file, JNX_EDGE_ACCESS_LOG=self.access_log,
                   JNX_EDGE_ERROR_LOG=os.path.join(self.dir, "error.log"),
                   JNX_EDGE_TEMP_DIR=os.path.join(self.dir, "tmp"), JNX_RATE_EXEMPT="", **self.RATES)
        subprocess.run(["bash", os.path.join(ROOT, "deploy", "nginx", "render.sh"), "-o", conf],
                       env=env, check=True)
        nginx = ["nginx", "-p", self.dir + "/", "-c", conf, "-e", os.path.join(self.dir, "error.log")]
        subprocess.run(nginx + ["-q", "-t"], check=True)
        subprocess.run(nginx, check=True)
        for _ in range(50):
            try:
                socket.create_connection(self.addr, timeout=1).close()
                return self
            except OSError:
                time.sleep(0.1)
        raise AssertionError("the low-rate edge did not start")

    def __exit__(self, *exc):
        if DIRECT:
            return
        with open(self.pid_file, encoding="ascii") as f:
            pid = int(f.read().strip())
        os.kill(pid, 3)  # SIGQUIT: graceful
        for _ in range(50):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        os.kill(pid, 15)


# --- attackers -----------------------------------------------------------------

class Attack:
    """Keeps `slow` connections sending one header line every 5 s (never
    finishing their request) and `idle` connections sending nothing, from their
    own loopback addresses. A connection the server closes is opened again, as
    a real attacker would: the pressure lasts as long as the attack."""

    def __init__(self, addr, slow=64, idle=500, slow_source="127.0.0.2", idle_source="127.0.0.3"):
        self.addr, self.want = addr, {"slow": (slow, slow_source), "idle": (idle, idle_source)}
        self.socks = {}  # fd -> (socket, kind, next header line time, lines sent)
        self.opened = self.reopened = self.refused = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def open(self, kind):
        count, source = self.want[kind]
        s = socket.socket()
        s.bind((source, 0))
        s.settimeout(2)
        try:
            s.connect(self.addr)
            if kind == "slow":
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: edge.test\r\n")
        except OSError:
            s.close()
            self.refused += 1
            return
        s.setblocking(False)
        self.socks[s.fileno()] = (s, kind, time.monotonic() + 5, 0)
        self.opened += 1

    def __enter__(self):
        for kind in ("slow", "idle"):
            for _ in range(self.want[kind][0]):
                self.open(kind)
        self.thread.start()
        return self

    def run(self):
        poller = select.poll()
        registered = set()
        while not self.stop.is_set():
            for fd in list(self.socks):
                if fd not in registered:
                    poller.register(fd, select.POLLIN | select.POLLERR | select.POLLHUP)
                    registered.add(fd)
            closed = []
            for fd, _ in poller.poll(200):
                s, kind, _, _ = self.socks[fd]
                try:
                    if s.recv(4096):
                        continue  # an answer (a 408 or 400): the server will close
                except BlockingIOError:
                    continue
                except OSError:
                    pass
                closed.append(fd)
            now = time.monotonic()
            for fd, (s, kind, due, lines) in list(self.socks.items()):
                if kind == "slow" and fd not in closed and now >= due:
                    try:
                        s.send(b"X-Slow-%d: 1\r\n" % lines)
                        self.socks[fd] = (s, kind, now + 5, lines + 1)
                    except OSError:
                        closed.append(fd)
            for fd in closed:
                s, kind, _, _ = self.socks.pop(fd)
                poller.unregister(fd)
                registered.discard(fd)
                s.close()
                self.reopened += 1
                self.open(kind)

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=5)
        for s, _, _, _ in self.socks.values():
            s.close()
        self.socks.clear()


def legitimate_traffic(seconds, tokens):
    """/api/me with the given tokens (about 40 requests/s in all) and signed
    webhooks (about 10/s) from 127.0.0.1; each request may take at most 3 s.
    Returns [(kind, status, seconds)]."""
    results = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def me_loop(offset):
        i = offset
        while time.monotonic() < deadline:
            (status, _, _), dt = timed(me, tokens[i % len(tokens)], timeout=3)
            with lock:
                results.append(("me", status, dt))
            i += 2
            time.sleep(max(0.0, 0.05 - dt))

    def webhook_loop():
        n = 0
        while time.monotonic() < deadline:
            (status, _, _), dt = timed(deliver, user_event(f"user_edge_legit_{n}"), timeout=3)
            with lock:
                results.append(("webhook", status, dt))
            n += 1
            time.sleep(max(0.0, 0.1 - dt))

    threads = [threading.Thread(target=me_loop, args=(k,)) for k in (0, 1)]
    threads.append(threading.Thread(target=webhook_loop))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


# --- tests ---------------------------------------------------------------------

@test
def metrics_and_unknown_routes_are_404_at_the_edge_and_never_reach_the_shim():
    before = shim_log_lines()
    for path in ("/metrics", "/metrics/", "/metrics?name[]=jnx_requests_total", "/api/nothing",
                 "/_jnx_error/rate_limited", "/api/me/../../metrics"):
        status, headers, body = request("GET", path)
        expect_json(status, headers, body, 404, {"error": "not_found"})
    after = shim_log_lines()
    expect(after == before, f"{after - before} of these requests reached the shim")


CORS_ORIGINS = [o for o in os.environ.get("JNX_CORS_ORIGINS", "").split(",") if o]


def all_headers(method, path, headers, addr=None):
    """(status, [(name lower-case, value)] as sent, body): repeated headers kept apart."""
    host, port = addr or EDGE
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for k, v in headers:
            conn.putheader(k, v)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, [(k.lower(), v) for k, v in resp.getheaders()], resp.read()
    finally:
        conn.close()


def access_control(headers):
    return {k: v for k, v in headers if k.startswith("access-control-")}


@test
def cors_preflights_and_answers_pass_the_edge_as_the_shim_wrote_them():
    expect(CORS_ORIGINS[:1] == ["https://app.jnx.test"], f"the test instance's JNX_CORS_ORIGINS: {CORS_ORIGINS}")
    allowed = CORS_ORIGINS[0]
    token = token_for("user_edge_cors")
    for path in ("/api/me", "/api/me/export", "/api/admin/users"):
        # A browser's preflight: no bearer token, so only the per-address limit counts it.
        status, headers, body = all_headers("OPTIONS", path, [
            ("Origin", allowed), ("Access-Control-Request-Method", "GET"),
            ("Access-Control-Request-Headers", "authorization")])
        expect(status == 204 and body == b"", f"{path}: {status} {body[:100]!r}")
        expect(access_control(headers) == {
            "access-control-allow-origin": allowed, "access-control-allow-methods": "GET, HEAD",
            "access-control-allow-headers": "Authorization, Content-Type, X-Request-Id",
            "access-control-max-age": "600"}, f"{path}: {headers}")
        expect([v for k, v in headers if k == "vary"] ==
               ["Origin, Access-Control-Request-Method, Access-Control-Request-Headers"], f"{path}: {headers}")
        for origin in ("https://app.jnx.test.evil.test", "https://APP.JNX.TEST", "https://app.jnx.test/", "null"):
            status, headers, body = all_headers("OPTIONS", path, [
                ("Origin", origin), ("Access-Control-Request-Method", "GET")])
            expect(status == 403 and json.loads(body) == {"error": "cors_not_allowed"} and
                   not access_control(headers), f"{path} {origin}: {status} {headers}")
        # The actual request, as the page then sends it.
        status, headers, _ = all_headers("GET", path, [("Origin", allowed), ("Authorization", "Bearer " + token)])
        expect(status in (200, 403), f"{path}: {status}")
        expect(access_control(headers) == {
            "access-control-allow-origin": allowed,
            "access-control-expose-headers": "X-Request-Id, Retry-After, Content-Disposition, WWW-Authenticate"},
            f"{path}: {headers}")
        expect([v for k, v in headers if k == "vary"] == ["Origin"], f"{path}: {headers}")
        status, headers, _ = all_headers("GET", path, [("Origin", "https://evil.test"),
                                                       ("Authorization", "Bearer " + token)])
        expect(not access_control(headers) and [v for k, v in headers if k == "vary"] == ["Origin"],
               f"{path} from another origin: {headers}")
    # Webhooks, probes, metrics: no CORS, whatever the Origin.
    body = user_event("user_edge_cors_hook")
    status, headers, answer = request("POST", "/api/webhooks/clerk", body,
                                      dict(svix.headers(SECRET, body), Origin=allowed))
    expect(status == 200 and not [k for k in headers if k.startswith("access-control-") or k == "vary"],
           f"webhook: {status} {headers} {answer[:80]!r}")
    for method, path, want in (("OPTIONS", "/api/webhooks/clerk", 404), ("GET", "/healthz", 200),
                               ("OPTIONS", "/healthz", 404), ("GET", "/metrics", 404), ("OPTIONS", "/metrics", 404)):
        status, headers, _ = all_headers(method, path, [("Origin", allowed), ("Access-Control-Request-Method", "GET")])
        expect(status == want and not access_control(headers), f"{method} {path}: {status} {headers}")


@test
def every_answer_of_the_edge_is_json_also_for_an_unsupported_http_version():
    for version in (b"HTTP/2.0", b"HTTP/3.0"):
        status, headers, body, _ = raw_exchange(b"GET /healthz " + version + b"\r\nHost: x\r\n\r\n")
        expect(status == 505, f"{version!r}: {status}")
        expect(headers.get("content-type", "").startswith("application/json") and
               json.loads(body) == {"error": "bad_request"}, f"{version!r}: {headers} {body[:80]!r}")
    # Range is stripped: the whole document, never multipart/byteranges.
    status, headers, body = request("GET", "/healthz", headers={"Range": "bytes=" + ",".join(["0-"] * 2000)})
    expect(status == 200 and json.loads(body) == {"status": "ok"} and "content-range" not in headers,
           f"{status} {headers} {body[:80]!r}")


@test
def the_shims_own_answers_pass_through_unchanged():
    rid = f"edge-test-{RUN}"
    status, headers, body = request("GET", "/api/me", headers={"X-Request-Id": rid})
    expect_json(status, headers, body, 401, {"error": "missing_token"})
    expect(headers.get("www-authenticate") == 'Bearer realm="jnx"', headers)
    expect(headers.get("x-request-id") == rid, f"X-Request-Id {headers.get('x-request-id')} != {rid}")
    for _ in range(20):  # the shim writes its log line after the answer
        with open(os.environ["JNX_SHIM_LOG"], encoding="utf-8", errors="replace") as f:
            logged = rid in f.read()
        if logged:
            break
        time.sleep(0.1)
    expect(logged, "the shim did not log the edge's request id")
    status, headers, body = request("GET", "/api/auth/login")
    expect(status == 410 and json.loads(body)["error"] == "gone", (status, body))
    b = user_event("user_edge_forged")
    status, headers, body = deliver(b.replace(b"Eve", b"Mal"), svix.headers(SECRET, b))
    expect_json(status, headers, body, 400, {"error": "bad_signature"})
    # The shim's own 503 (database down) is the shim's, not the edge's.
    cluster("db-stop")
    try:
        status, headers, body = request("GET", "/readyz")
        expect_json(status, headers, body, 503, {"error": "database_unavailable"})
        expect(headers.get("retry-after") == "5", headers)
    finally:
        cluster("db-start")


@test
def ambiguous_framing_is_400_at_the_edge():
    # Each request carries a correctly signed delivery: what reaches the shim
    # is stored, so "not stored" proves the edge refused it.
    cases = {
        "two Content-Length": lambda n: b"Content-Length: %d\r\n" % n,
        "Content-Length and Transfer-Encoding": lambda n: b"Transfer-Encoding: chunked\r\n",
        "Content-Length line without a colon": lambda n: b"Content-Length\r\n",
        "Transfer-Encoding line without a colon": lambda n: b"Transfer-Encoding\r\n",
        "space before the colon": lambda n: b"Content-Length : %d\r\n" % n,
        "obs-fold continuation line": lambda n: b"X-Folded: a\r\n b\r\n",
    }
    for name, extra in cases.items():
        body = user_event("user_edge_framing")
        h = svix.headers(SECRET, body)
        status, headers, answer, _ = raw_exchange(webhook_head(len(body), extra(len(body)), h) + body)
        expect(status == 400, f"{name}: HTTP {status} {answer[:120]!r}")
        expect(json.loads(answer) == {"error": "bad_request"}, f"{name}: {answer!r}")
        expect(not stored(h["svix-id"]), f"{name}: the delivery reached the database")


@test
def oversized_headers_are_refused_quickly_before_the_shim():
    # 20,000 header lines of 4 KB (80 MB of headers).
    rss_before, lines_before = shim_rss_kib(), shim_log_lines()
    line = b"X-Pad: " + b"a" * 4089 + b"\r\n"
    lines = (line for _ in range(20_000))
    status, headers, body, seconds = raw_exchange(b"GET /healthz HTTP/1.1\r\nHost: edge.test\r\n",
                                                  lines, timeout=5)
    expect(status == 400, f"HTTP {status} after {seconds:.1f}s: {body[:100]!r}")
    expect(json.loads(body) == {"error": "bad_request"}, body)
    expect(seconds < 2, f"answered after {seconds:.1f}s")
    rss_after, lines_after = shim_rss_kib(), shim_log_lines()
    expect(lines_after == lines_before, "the request reached the shim")
    expect(abs(rss_after - rss_before) < 1024, f"shim RSS {rss_before} -> {rss_after} KiB")
    print(f"#   20,000 x 4 KB header lines: 400 after {seconds * 1000:.0f} ms; "
          f"shim RSS {rss_before} -> {rss_after} KiB")
    # A 16 KiB bearer token (the extension's own limit) passes the edge ...
    token = token_for("user_edge_big", pad="x" * 11_500)
    expect(12_000 < len(token) <= 16_384, f"token of {len(token)} bytes")
    status, headers, body = me(token)
    expect(status in (200, 401), f"HTTP {status} {body[:100]!r}")
    expect(shim_log_lines(lines_after + 1) == lines_after + 1, "a 16 KiB token did not reach the shim")
    # ... a 40 KB one is answered like any invalid token, by the edge alone.
    status, headers, body = me("A" * 40_000)
    expect_json(status, headers, body, 401, {"error": "invalid_token"})
    expect(headers.get("www-authenticate") == 'Bearer error="invalid_token"', headers)
    expect(shim_log_lines() == lines_after + 1, "the 40 KB token reached the shim")


@test
def bodies_over_the_limit_are_413_at_the_edge_and_the_limit_passes():
    lines_before = shim_log_lines()
    # 100 MB, chunked: no Content-Length to refuse up front.
    h = svix.headers(SECRET, b"{}")
    block = b"%x\r\n%s\r\n" % (65536, b" " * 65536)
    status, headers, body, seconds = raw_exchange(
        webhook_head(None, b"", h, chunked=True), (block for _ in range(1600)), timeout=10)
    expect(status == 413, f"HTTP {status} after {seconds:.1f}s: {body[:100]!r}")
    expect(headers.get("content-type", "").startswith("application/json"), headers)
    expect(json.loads(body) == {"error": "payload_too_large"}, body)
    expect(seconds < 3, f"413 after {seconds:.1f}s")
    expect(not stored(h["svix-id"]), "the 100 MB delivery reached jnx.webhook_events")
    expect(shim_log_lines() == lines_before, "the 100 MB request reached the shim")
    print(f"#   100 MB chunked body: 413 after {seconds * 1000:.0f} ms, nothing forwarded")
    # Exactly the limit passes, with Content-Length and chunked; one byte more is 413.
    base = user_event("user_edge_limit")
    at_limit = base + b" " * (MAX_BODY - len(base))
    status, headers, body = deliver(at_limit)
    expect(status == 200, f"at the limit (Content-Length): HTTP {status} {body[:100]!r}")
    h = svix.headers(SECRET, at_limit)
    status, _, body, _ = raw_exchange(webhook_head(None, b"", h, chunked=True) +
                                      b"".join(chunked(at_limit)))
    expect(status == 200, f"at the limit (chunked): HTTP {status} {body[:100]!r}")
    lines_before = shim_log_lines()
    for variant in ("content-length", "chunked"):
        over = at_limit + b" "
        h = svix.headers(SECRET, over)
        if variant == "content-length":
            status, headers, body = deliver(over, h)
        else:
            status, headers, body, _ = raw_exchange(webhook_head(None, b"", h, chunked=True) +
                                                    b"".join(chunked(over)))
        expect(status == 413, f"one byte over ({variant}): HTTP {status}")
        expect(json.loads(body) == {"error": "payload_too_large"}, body)
    expect(shim_log_lines() == lines_before, "a body over the limit reached the shim")


@test
def rate_limits_per_token_and_per_address_with_webhooks_apart():
    with LowRateEdge() as edge:
        a, b = token_for("user_edge_rate_a"), token_for("user_edge_rate_b")
        # One token hammering: 429 + Retry-After + JSON after its burst ...
        statuses = []
        limited = None
        for _ in range(8):
            status, headers, body = me(a, addr=edge.addr)
            statuses.append(status)
            if status == 429:
                limited = (headers, body)
        expect(statuses[:3] == [200] * 3 and limited, f"one token, 8 requests: {statuses}")
        headers, body = limited
        expect_json(429, headers, body, 429, {"error": "rate_limited"})
        expect(int(headers.get("retry-after", "0")) >= 1, f"Retry-After: {headers}")
        # ... while another token from the same address still gets in.
        status, _, body = me(b, addr=edge.addr)
        expect(status == 200, f"another token, same address: HTTP {status} {body[:100]!r}")

        # Many tokens from one address: the per-address limit.
        many = [token_for(f"user_edge_many_{i}") for i in range(24)]
        fresh = token_for("user_edge_fresh")
        statuses = [me(t, addr=edge.addr, source="127.0.0.4")[0] for t in many]
        expect(statuses[:5] == [200] * 5 and 429 in statuses, f"24 tokens, one address: {statuses}")
        status, _, _ = me(fresh, addr=edge.addr, source="127.0.0.4")
        expect(status == 429, f"the address is over its budget, yet HTTP {status}")
        # Another address is not affected.
        status, _, _ = me(token_for("user_edge_other"), addr=edge.addr, source="127.0.0.5")
        expect(status == 200, f"another address: HTTP {status}")
        # Webhooks from the address whose auth budget is spent: accepted.
        for i in range(5):
            status, _, body = deliver(user_event(f"user_edge_hook_{i}"), addr=edge.addr,
                                      source="127.0.0.4")
            expect(status == 200, f"webhook from a throttled address: HTTP {status} {body[:100]!r}")

        # Requests in progress per address: 4 senders that never send their
        # body hold 4 slots; the 5th request from that address is 429 at once.
        token = token_for("user_edge_conn")
        head = (b"POST /api/me HTTP/1.1\r\nHost: edge.test\r\nAuthorization: Bearer "
                + token.encode() + b"\r\nContent-Length: 100\r\n\r\n")
        holders = []
        try:
            for _ in range(4):
                s = socket.create_connection(edge.addr, timeout=5, source_address=("127.0.0.7", 0))
                s.sendall(head)
                holders.append(s)
            time.sleep(0.3)
            (status, headers, body), seconds = timed(me, token_for("user_edge_conn_5"),
                                                     addr=edge.addr, source="127.0.0.7")
            expect_json(status, headers, body, 429, {"error": "rate_limited"})
            expect(seconds < 1, f"429 after {seconds:.1f}s")
            status, _, _ = me(token_for("user_edge_conn_other"), addr=edge.addr, source="127.0.0.8")
            expect(status == 200, f"another address while 127.0.0.7 holds its slots: HTTP {status}")
        finally:
            for s in holders:
                s.close()


@test
def a_burst_of_one_hundred_webhooks_is_never_throttled():
    # The instance's edge, production rates: a Svix retry burst after an outage.
    bodies = [user_event(f"user_edge_burst_{i}") for i in range(100)]
    heads = [svix.headers(SECRET, b) for b in bodies]
    barrier = threading.Barrier(100)
    results = [None] * 100

    def send(i):
        barrier.wait()
        results[i] = timed(deliver, bodies[i], heads[i], source="127.0.0.6", timeout=10)[0][0]

    threads = [threading.Thread(target=send, args=(i,)) for i in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    expect(results == [200] * 100, f"answers: {collections.Counter(results)}")
    ids = "','".join(h["svix-id"] for h in heads)
    n = psql(f"SELECT count(*) FROM jnx.webhook_events WHERE svix_id IN ('{ids}')")
    expect(n == "100", f"{n} of 100 stored")
    # ... and it did not spend that address's auth budget.
    status, _, _ = me(token_for("user_edge_after_burst"), source="127.0.0.6")
    expect(status == 200, f"/api/me after the burst: HTTP {status}")


@test
def slow_and_idle_clients_do_not_starve_legitimate_requests():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    tokens = [token_for(f"user_edge_legit_{i}") for i in range(20)]
    with Attack(EDGE, slow=64, idle=500) as attack:
        time.sleep(1)
        expect(attack.opened == 564, f"only {attack.opened} attacking connections opened")
        results = legitimate_traffic(12, tokens)
        held = len(attack.socks)
    try:
        bad = collections.Counter(str(s) for _, s, _ in results if s != 200)
        latencies = [dt for _, _, dt in results]
        p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
        n_me = sum(1 for k, _, _ in results if k == "me")
        print(f"#   under 64 slow-header + 500 idle connections ({attack.reopened} reopened after the "
              f"server closed them, {held} held at the end): {len(results)} legitimate requests "
              f"({n_me} /api/me, {len(results) - n_me} webhooks), p50 {p50 * 1000:.1f} ms, "
              f"p99 {p99 * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms")
        expect(not bad, f"non-200 answers under attack: {dict(bad)}")
        expect(len(results) > 300, f"only {len(results)} requests completed in 12 s")
        expect(p99 < 1.0, f"p99 {p99:.2f}s under attack")
    finally:
        if DIRECT:
            cluster("shim")  # the starved shim takes minutes to drain its queue: restart it


@test
def the_same_attack_straight_at_the_shim_starves_it():
    """Not an assertion about the shim (another engineer hardens it): a bounded
    measurement of why the edge exists. 64 slow-header connections for ~4 s
    straight at the shim; /healthz probed with a 3 s timeout; then the attack
    stops and the shim must recover for the rest of the suite."""
    if DIRECT:
        print("#   (direct mode: the previous test already attacked the shim)")
        return
    with Attack(SHIM, slow=64, idle=0):
        time.sleep(0.5)
        probes = [timed(request, "GET", "/healthz", addr=SHIM, timeout=3) for _ in range(2)]
    print(f"#   the same slow-header attack straight at the shim: /healthz "
          + ", ".join(f"{dt:.2f}s" + ("" if status == 200 else " (no answer)")
                      for (status, _, _), dt in probes))
    deadline = time.monotonic() + 20
    while True:
        (status, _, _), dt = timed(request, "GET", "/healthz", addr=SHIM, timeout=1)
        if status == 200:
            break
        expect(time.monotonic() < deadline, "the shim did not recover within 20 s")
        time.sleep(0.2)


@test
def shim_down_is_503_with_retry_after_never_4xx_then_it_serves_again():
    body = user_event("user_edge_outage")
    headers = svix.headers(SECRET, body)
    token = token_for("user_edge_outage")
    cluster("stop-shim")
    try:
        for name, call in (("webhook", lambda: deliver(body, headers)),
                           ("/api/me", lambda: me(token)),
                           ("/readyz", lambda: request("GET", "/readyz"))):
            (status, resp_headers, answer), seconds = timed(call)
            expect_json(status, resp_headers, answer, 503, {"error": "upstream_unavailable"})
            expect(resp_headers.get("retry-after") == "5", f"{name}: {resp_headers}")
            expect(seconds < 3, f"{name}: 503 after {seconds:.1f}s")
    finally:
        cluster("shim")
    # Svix retries the very same delivery: accepted, applied once.
    status, _, answer = deliver(body, headers)
    expect(status == 200 and json.loads(answer)["status"] == "processed", (status, answer))
    status, _, _ = me(token)
    expect(status == 200, f"/api/me after the restart: HTTP {status}")


@test
def the_access_log_holds_no_personal_data():
    time.sleep(1.5)  # access_log flush=1s
    logs = [os.environ.get("JNX_EDGE_ACCESS_LOG", "")]
    logs.append(os.path.join(BASE, "edge-lowrate", "access.log"))
    expect(not DIRECT and os.path.exists(logs[0]), "no edge access log (no edge?)")
    text = ""
    for path in logs:
        if os.path.exists(path):
            with open(path, encoding="utf-8", errors="replace") as f:
                text += f.read()
    entries = [json.loads(line) for line in text.splitlines() if line.strip()]
    expect(len(entries) > 500, f"only {len(entries)} access log lines")
    expect({e["client"] for e in entries} == {"127.0.0.0/24"}, {e["client"] for e in entries})
    for e in entries:
        expect("?" not in e["route"], e)
    for needle in ("@example.com", "Bearer", "bearer", "org=", "?", "127.0.0.1", "127.0.0.2",
                   "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6", "whsec_", "v1,", "svix"):
        expect(needle not in text, f"the access log contains {needle!r}")
    for token in TOKENS:
        for fragment in (token[:24], token[len(token) // 2:len(token) // 2 + 24], token[-24:]):
            expect(fragment not in text, "a token fragment is in the access log")
    # Below crit nginx's error log would hold addresses and query strings.
    with open(os.path.join(os.environ["JNX_EDGE_DIR"], "error.log"), encoding="utf-8",
              errors="replace") as f:
        errors = f.read()
    expect("client:" not in errors, "the error log holds client addresses")


def main():
    print(f"# edge {EDGE[0]}:{EDGE[1]}, shim {SHIM[0]}:{SHIM[1]}"
          + ("  (JNX_EDGE_TEST_TARGET=shim: no edge, the old topology)" if DIRECT else ""))
    passed = failed = 0
    started = time.monotonic()
    only = sys.argv[1:]  # substrings of test names: run only those
    for n, fn in enumerate(TESTS, 1):
        if only and not any(o in fn.__name__ for o in only):
            continue
        t0 = time.monotonic()
        try:
            fn()
            print(f"ok {n} - {fn.__name__} ({time.monotonic() - t0:.1f}s)")
            passed += 1
        except Exception:  # noqa: BLE001 - every failure is reported
            print(f"not ok {n} - {fn.__name__} ({time.monotonic() - t0:.1f}s)")
            traceback.print_exc()
            failed += 1
        sys.stdout.flush()
    print(f"edge: {passed} passed, {failed} failed in {time.monotonic() - started:.0f}s")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
