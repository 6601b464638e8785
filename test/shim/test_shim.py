#!/usr/bin/env python3
"""Integration tests of jnx-shim over real HTTP against the running shim and
database (started by test/run-all.sh). Standard library only.

Environment (from `test/env/cluster.sh env`): JNX_LISTEN, JNX_SECRET_FILE,
JNX_SHIM_LOG, PGHOST, PGPORT, PGUSER, PGDATABASE; JNX_SHIM_LISTEN when a proxy
listens on JNX_LISTEN in front of the shim. Tests of the shim's own HTTP
handling (framing, limits) talk to the shim directly; end-to-end tests go
through JNX_LISTEN.

JNX_TEST_PGBOUNCER=1 (test/pgbouncer/run.sh): the cluster's shim reaches the database through
PgBouncer in transaction mode (its port in JNX_TEST_PGBOUNCER_PORT), and every shim a test starts
goes through a PgBouncer of its own, so that the server backends it uses are exactly that
pooler's (SHOW SERVERS). psql here always talks to the database directly.
"""

import base64
import contextlib
import hashlib
import hmac
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "test", "fixtures"))
import svix  # noqa: E402

VIA_PGBOUNCER = os.environ.get("JNX_TEST_PGBOUNCER") == "1"
if VIA_PGBOUNCER:
    sys.path.insert(0, os.path.join(ROOT, "test", "pgbouncer"))
    import pgbouncer  # noqa: E402
    MAIN_BOUNCER = pgbouncer.PgBouncer("", "", 0, port=int(os.environ["JNX_TEST_PGBOUNCER_PORT"]))

HOST, PORT = os.environ["JNX_LISTEN"].rsplit(":", 1)
PORT = int(PORT)
SHIM_HOST, SHIM_PORT = os.environ.get("JNX_SHIM_LISTEN", os.environ["JNX_LISTEN"]).rsplit(":", 1)
SHIM_PORT = int(SHIM_PORT)
SHIM_BIN = os.environ.get("JNX_SHIM_BIN", os.path.join(ROOT, "shim", "jnx-shim"))  # for private shims
with open(os.environ["JNX_SECRET_FILE"], encoding="ascii") as f:
    SECRET = f.read().strip()
with open(os.path.join(ROOT, "test", "fixtures", "user_created.json"), "rb") as f:
    FIXTURE = json.loads(f.read())
MAX_BODY = int(os.environ.get("JNX_MAX_BODY_BYTES", str(1024 * 1024)))

RUN = os.urandom(4).hex()  # user ids are unique per run: reruns on one database stay meaningful
SERVER_LOG = os.path.join(os.environ["JNX_BASE"], "postgresql.log")
SERVER_LOG_START = os.path.getsize(SERVER_LOG) if os.path.exists(SERVER_LOG) else 0

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def psql(sql: str) -> str:
    out = subprocess.run(["psql", "-X", "-tA", "-v", "ON_ERROR_STOP=1", "-c", sql],
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


def cluster(*args: str) -> None:
    subprocess.run(["bash", os.path.join(ROOT, "test", "env", "cluster.sh"), *args], check=True)


def request(method, path, body=b"", headers=None, timeout=30, host=None, port=None):
    conn = http.client.HTTPConnection(host or HOST, port or PORT, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, dict((k.lower(), v) for k, v in resp.getheaders()), data
    finally:
        conn.close()


def user_event(user_id, first_name="Ada", email=None, updated_ms=1764150000000, kind="user.created"):
    event = json.loads(json.dumps(FIXTURE))
    event["type"] = kind
    user_id = f"{user_id}_{RUN}"
    event["data"]["id"] = user_id
    event["data"]["first_name"] = first_name
    event["data"]["email_addresses"][0]["email_address"] = email or f"{user_id.lower()}@example.com"
    event["data"]["updated_at"] = updated_ms
    return json.dumps(event).encode()


def deliver(body, headers=None, secret=SECRET, **kw):
    return request("POST", "/api/webhooks/clerk", body, headers or svix.headers(secret, body, **kw))


def expect(cond, message):
    if not cond:
        raise AssertionError(message)


def expect_status(got, want, data=b""):
    expect(got == want, f"expected HTTP {want}, got {got}: {data[:200]!r}")


# --- raw HTTP, private shims, process measurements ------------------------------

def read_response(sock, timeout=5):
    """One HTTP response read from sock: (status, headers, body)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed before a response: {data[:200]!r}")
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, v = line.split(":", 1)
        headers[k.strip().lower()] = v.strip()
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return int(lines[0].split(" ")[1]), headers, rest[:length]


def closed_by_server(sock, timeout=3):
    """True when the server ends the connection within `timeout` (EOF or reset)."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
        return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def raw_exchange(data, host=None, port=None, timeout=5, response_only=False, close_wait=3):
    """Sends `data` as it is: (status, headers, body, closed, seconds to the response); `closed`
    says whether the server ended the connection within close_wait seconds of its response."""
    started = time.monotonic()
    with socket.create_connection((host or SHIM_HOST, port or SHIM_PORT), timeout=timeout) as sock:
        sock.sendall(data)
        status, headers, body = read_response(sock, timeout)
        elapsed = time.monotonic() - started
        closed = None if response_only else closed_by_server(sock, close_wait)
    return status, headers, body, closed, elapsed


def http_request(method, path, headers, body=b"", version="HTTP/1.1"):
    """A request's bytes; headers a list of (name, value) pairs (str or bytes) or raw lines (bytes,
    sent as they are), in that order."""
    b = lambda x: x if isinstance(x, bytes) else x.encode()
    out = f"{method} {path} {version}\r\n".encode()
    for h in headers:
        out += h if isinstance(h, bytes) else b(h[0]) + b": " + b(h[1]) + b"\r\n"  # bytes: a raw line
    return out + b"\r\n" + body


def chunked(body, size=8192):
    out = b""
    for i in range(0, len(body), size):
        part = body[i:i + size]
        out += f"{len(part):x}\r\n".encode() + part + b"\r\n"
    return out + b"0\r\n\r\n"


def webhook_headers(body, **kw):
    return [("Host", "shim"), *svix.headers(SECRET, body, **kw).items()]


def stored(svix_id):
    return psql(f"SELECT count(*) FROM jnx.webhook_events WHERE svix_id = '{svix_id}'")


def log_entry(path, request_id):
    """The log line of the request we sent with this X-Request-Id, or None."""
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if f'"request_id":"{request_id}"' in line:
                    return json.loads(line)
        time.sleep(0.05)
    return None


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def rss_mb(pid):
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def shim_database(name, database=None, user="jnx_authenticator", pool_size=8, bouncer=None):
    """(conninfo, extra environment, PgBouncer or None) for a shim of our own: the database
    directly, or through a PgBouncer of its own (not started yet) with as many server
    connections as the shim's pool, unless `bouncer` (PgBouncer's arguments) says otherwise."""
    database = database or os.environ["PGDATABASE"]
    if not VIA_PGBOUNCER:
        return (f"host={os.environ['PGHOST']} port={os.environ['PGPORT']} dbname={database} "
                f"user={user} application_name={name}", {}, None)
    options = dict({"pool_size": pool_size}, **(bouncer or {}))
    bouncer = pgbouncer.PgBouncer(os.path.join(os.environ["JNX_BASE"], f"pgbouncer-{name}"),
                                  os.environ["PGHOST"], os.environ["PGPORT"], **options)
    return (bouncer.conninfo(database, user=user, application_name=name),
            {"JNX_TRANSACTION_POOLING": "on"}, bouncer)


def shim_backends():
    """The server backends of the cluster's shim."""
    if VIA_PGBOUNCER:
        return MAIN_BOUNCER.server_pids(os.environ["PGDATABASE"])
    out = psql("SELECT pid FROM pg_stat_activity WHERE application_name = 'jnx-shim'")
    return [int(p) for p in out.split()] if out else []


class PrivateShim:
    """A shim of our own on a free port, logged in as the cluster's shim is (jnx_authenticator),
    under its own application_name so that its backends can be found in pg_stat_activity (or,
    through PgBouncer, in its own pooler's list)."""

    def __init__(self, name, database=None, bouncer=None, **env):
        self.name = name
        self.port = free_port()
        conninfo, pooled, self.bouncer = shim_database(name, database, bouncer=bouncer,
                                                       pool_size=int(env.get("JNX_POOL_SIZE", "8")))
        self.env = dict(os.environ, JNX_LISTEN=f"{HOST}:{self.port}", JNX_DATABASE_URL=conninfo,
                        **dict(pooled, **env))
        self.log_path = os.path.join(os.environ["JNX_BASE"], f"{name}.log")
        self.proc = self.log = None

    def __enter__(self):
        if self.bouncer is not None:
            self.bouncer.start()
        self.log = open(self.log_path, "w", encoding="utf-8")
        self.proc = subprocess.Popen([SHIM_BIN], env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(100):
            try:
                socket.create_connection((HOST, self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.__exit__()
        raise AssertionError(f"{self.name} did not start")

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.bouncer is not None:
            self.bouncer.stop()
        self.log.close()
        # The log rule holds for these too: JSON lines only.
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            for line in f:
                json.loads(line)
        return False

    def request(self, method, path, body=b"", headers=None, timeout=30):
        return request(method, path, body, headers, timeout, host=HOST, port=self.port)

    def deliver(self, body, headers, timeout=30):
        return self.request("POST", "/api/webhooks/clerk", body, headers, timeout)

    def backends(self):
        """The server backends this shim's requests run on."""
        if self.bouncer is not None:
            return self.bouncer.server_pids()
        out = psql(f"SELECT pid FROM pg_stat_activity WHERE application_name = '{self.name}'")
        return [int(p) for p in out.split()] if out else []

    def connections(self):
        """The shim's own database connections: its backends, or its clients of the pooler."""
        if self.bouncer is not None:
            return self.bouncer.clients(self.name)
        return self.backends()

    def cpu(self):
        return cpu_seconds(self.proc.pid)

    def rss(self):
        return rss_mb(self.proc.pid)


@test
def health_and_readiness():
    status, _, data = request("GET", "/healthz")
    expect_status(status, 200, data)
    status, _, data = request("GET", "/readyz")
    expect_status(status, 200, data)
    version = psql("SELECT extversion FROM pg_extension WHERE extname = 'jnx_auth'")
    expect(json.loads(data)["extension_version"] == version, f"readyz version {data!r}")


@test
def valid_delivery_creates_the_user():
    body = user_event("user_shim_valid", "Grace", "grace@example.com")
    headers = svix.headers(SECRET, body)
    status, resp_headers, data = deliver(body, headers)
    expect_status(status, 200, data)
    expect(json.loads(data) == {"status": "processed", "type": "user.created"}, data)
    expect(resp_headers.get("content-type", "").startswith("application/json"), resp_headers)
    expect(resp_headers.get("x-request-id"), "no X-Request-Id")
    row = psql("SELECT email || '|' || first_name || '|' || sync_state FROM jnx.users "
               f"WHERE clerk_user_id = 'user_shim_valid_{RUN}'")
    expect(row == "grace@example.com|Grace|synced", row)
    audit = psql("SELECT count(*) FROM jnx.audit_logs WHERE request_id = "
                 f"'{headers['svix-id']}' AND actor = 'clerk:webhook'")
    expect(audit == "1", f"audit rows {audit}")


@test
def standard_webhooks_header_names():
    body = user_event("user_shim_standard")
    h = svix.headers(SECRET, body)
    headers = {"webhook-id": h["svix-id"], "webhook-timestamp": h["svix-timestamp"],
               "webhook-signature": h["svix-signature"]}
    status, _, data = deliver(body, headers)
    expect_status(status, 200, data)


@test
def tampered_body_is_rejected_and_not_stored():
    body = user_event("user_shim_tampered")
    headers = svix.headers(SECRET, body)
    status, _, data = deliver(body.replace(b"Ada", b"Eve"), headers)
    expect_status(status, 400, data)
    expect(json.loads(data) == {"error": "bad_signature"}, data)
    n = psql(f"SELECT count(*) FROM jnx.webhook_events WHERE svix_id = '{headers['svix-id']}'")
    expect(n == "0", f"tampered delivery stored: {n}")
    n = psql(f"SELECT count(*) FROM jnx.users WHERE clerk_user_id = 'user_shim_tampered_{RUN}'")
    expect(n == "0", "tampered user stored")


@test
def wrong_secret_is_rejected():
    other = "whsec_" + base64.b64encode(b"x" * 32).decode()
    status, _, data = deliver(user_event("user_shim_wrong_secret"), secret=other)
    expect_status(status, 400, data)


@test
def missing_headers_are_400():
    body = user_event("user_shim_missing")
    full = svix.headers(SECRET, body)
    for drop in ("svix-id", "svix-timestamp", "svix-signature"):
        headers = {k: v for k, v in full.items() if k != drop}
        status, _, data = deliver(body, headers)
        expect_status(status, 400, data)
        expect(json.loads(data) == {"error": "malformed_headers"}, data)
    status, _, data = deliver(body, {"content-type": "application/json"})
    expect_status(status, 400, data)
    headers = dict(full, **{"svix-timestamp": "yesterday"})
    status, _, data = deliver(body, headers)
    expect_status(status, 400, data)


@test
def stale_timestamps_are_400_both_ways():
    body = user_event("user_shim_stale")
    for offset in (-400, 400):
        status, _, data = deliver(body, timestamp=int(time.time()) + offset)
        expect_status(status, 400, data)
        expect(json.loads(data) == {"error": "stale_timestamp"}, data)
    n = psql(f"SELECT count(*) FROM jnx.users WHERE clerk_user_id = 'user_shim_stale_{RUN}'")
    expect(n == "0", "stale user stored")


@test
def oversize_body_is_413_and_the_limit_itself_is_accepted():
    base = user_event("user_shim_limit")
    at_limit = base + b" " * (MAX_BODY - len(base))  # valid JSON, exactly the limit
    status, _, data = deliver(at_limit)
    expect_status(status, 200, data)
    over = at_limit + b" "
    status, _, data = deliver(over)
    expect_status(status, 413, data)
    expect(json.loads(data) == {"error": "payload_too_large"}, data)


@test
def duplicate_delivery_has_one_effect():
    body = user_event("user_shim_dup")
    headers = svix.headers(SECRET, body)
    first = deliver(body, headers)
    second = deliver(body, headers)
    expect_status(first[0], 200, first[2])
    expect_status(second[0], 200, second[2])
    expect(json.loads(first[2])["status"] == "processed", first[2])
    expect(json.loads(second[2])["status"] == "duplicate", second[2])
    n = psql(f"SELECT count(*) FROM jnx.audit_logs WHERE request_id = '{headers['svix-id']}'")
    expect(n == "1", f"audit rows for a duplicated delivery: {n}")


@test
def fifty_concurrent_copies_of_one_delivery():
    body = user_event("user_shim_concurrent")
    headers = svix.headers(SECRET, body)
    copies = 50
    barrier = threading.Barrier(copies)
    results = [None] * copies

    def send(i):
        barrier.wait()
        try:
            results[i] = deliver(body, headers)
        except Exception as e:  # noqa: BLE001 - reported below
            results[i] = (None, {}, repr(e).encode())

    threads = [threading.Thread(target=send, args=(i,)) for i in range(copies)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = [r[0] for r in results]
    expect(statuses == [200] * copies, f"statuses: {sorted(set(map(str, statuses)))} {results[:2]}")
    outcomes = sorted(json.loads(r[2])["status"] for r in results)
    expect(outcomes == ["duplicate"] * (copies - 1) + ["processed"], f"outcomes {outcomes}")
    users = psql(f"SELECT count(*) FROM jnx.users WHERE clerk_user_id = 'user_shim_concurrent_{RUN}'")
    events = psql(f"SELECT count(*) FROM jnx.webhook_events WHERE svix_id = '{headers['svix-id']}'")
    expect(users == "1" and events == "1", f"users={users} webhook_events={events}")


@test
def unknown_event_types_are_ignored_and_kept():
    body = json.dumps({"type": "organizationInvitation.created", "object": "event",
                       "data": {"id": "orginv_1"}}).encode()
    headers = svix.headers(SECRET, body)
    status, _, data = deliver(body, headers)
    expect_status(status, 200, data)
    expect(json.loads(data)["status"] == "ignored", data)
    row = psql(f"SELECT status FROM jnx.webhook_events WHERE svix_id = '{headers['svix-id']}'")
    expect(row == "ignored", row)


@test
def signed_garbage_is_a_dead_letter_answered_200():
    body = b"{not json"
    headers = svix.headers(SECRET, body)
    status, _, data = deliver(body, headers)
    expect_status(status, 200, data)
    expect(json.loads(data)["status"] == "dead_letter", data)


@test
def unknown_route_is_404_json():
    status, _, data = request("GET", "/api/nothing-here")
    expect_status(status, 404, data)
    expect(json.loads(data) == {"error": "not_found"}, data)


def concurrently(n, fn):
    results = [None] * n
    barrier = threading.Barrier(n)

    def run(i):
        barrier.wait()
        results[i] = fn(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


@test
def secret_rotation_reaches_every_pooled_backend():
    # Concurrent requests open several pooled connections; each backend
    # caches the decoded secret.
    warm = concurrently(16, lambda i: deliver(user_event(f"user_shim_warm_{i}"))[0])
    expect(warm == [200] * 16, warm)
    backends = len(shim_backends())
    expect(backends >= 2, f"only {backends} shim backend(s): the test would prove nothing")
    new_secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    try:
        psql(f"SELECT jnx.set_webhook_secrets('{new_secret}')")
        new = concurrently(16, lambda i: deliver(user_event(f"user_shim_rotated_{i}"),
                                                 secret=new_secret)[0])
        expect(new == [200] * 16, f"new secret refused by some backend: {new}")
        old = concurrently(16, lambda i: deliver(user_event(f"user_shim_old_{i}"), secret=SECRET)[0])
        expect(old == [400] * 16, f"old secret still accepted by some backend: {old}")
        # During rotation both are accepted.
        psql(f"SELECT jnx.set_webhook_secrets('{new_secret}', '{SECRET}')")
        for s in (new_secret, SECRET):
            expect_status(deliver(user_event("user_shim_both"), secret=s)[0], 200)
    finally:
        psql(f"SELECT jnx.set_webhook_secrets('{SECRET}')")


@test
def database_down_is_503_with_retry_after_then_applies_once():
    body = user_event("user_shim_outage")
    headers = svix.headers(SECRET, body)
    # Open every pooled connection first: after the restart all of them are
    # dead, and the first delivery must still not be refused for it.
    warm = concurrently(48, lambda i: deliver(user_event(f"user_shim_prewarm_{i}"))[0])
    expect(warm == [200] * 48, warm)
    cluster("db-stop")
    try:
        started = time.monotonic()
        status, resp_headers, data = deliver(body, headers)
        elapsed = time.monotonic() - started
        expect_status(status, 503, data)
        expect(resp_headers.get("retry-after"), f"no Retry-After: {resp_headers}")
        expect(elapsed < 5, f"503 took {elapsed:.1f}s")
        status, _, data = request("GET", "/readyz")
        expect_status(status, 503, data)
    finally:
        cluster("db-start")
    if VIA_PGBOUNCER:
        # PgBouncer, whose logins failed during the outage, refuses every client for its
        # server_login_retry after the last failure (documented in OPERATIONS.md): that wait is
        # PgBouncer's, not the shim's, whose part, connecting again at once, is what follows.
        time.sleep(2 * pgbouncer.SERVER_LOGIN_RETRY)
    # Svix retries the same delivery: accepted at the first try after the
    # restart, and applied exactly once.
    status, _, data = deliver(body, headers)
    expect_status(status, 200, data)
    expect(json.loads(data)["status"] == "processed", data)
    status, _, data = deliver(body, headers)
    expect(json.loads(data)["status"] == "duplicate", data)
    n = psql(f"SELECT count(*) FROM jnx.users WHERE clerk_user_id = 'user_shim_outage_{RUN}'")
    expect(n == "1", n)


def clerk_scenario(tag):
    """Distinct Clerk deliveries for 3 orgs, 6 users and their memberships: creations,
    updates, deletions, each with its own svix id and event time."""
    def env(kind, data, ms):
        return {"type": kind, "object": "event", "timestamp": ms, "data": data}
    events = []
    base = 1764150000000
    orgs = [f"org_{tag}_{i}" for i in range(3)]
    users = [f"user_{tag}_{i}" for i in range(6)]
    for i, org in enumerate(orgs):
        for v in range(2):
            events.append(env("organization.created" if v == 0 else "organization.updated",
                              {"id": org, "object": "organization", "name": f"Org {i} v{v} ✓",
                               "slug": f"org-{i}-v{v}", "created_at": base, "updated_at": base + v * 1000,
                               "public_metadata": {}}, base + v * 1000))
    for i, user in enumerate(users):
        for v in range(2):
            events.append(env("user.created" if v == 0 else "user.updated",
                              {"id": user, "object": "user", "first_name": f"Ünïcode{i}v{v}",
                               "last_name": "Test", "primary_email_address_id": "idn_1",
                               "email_addresses": [{"id": "idn_1", "email_address": f"{user}.v{v}@example.com"}],
                               "public_metadata": {"role": "admin"} if i == 0 else {},
                               "created_at": base, "updated_at": base + v * 1000}, base + v * 1000))
    for i, user in enumerate(users):
        for j in (i % 3, (i + 1) % 3):
            mid = f"orgmem_{tag}_{i}_{j}"
            for v, role in enumerate(("org:member", "org:admin")):
                events.append(env("organizationMembership.created" if v == 0 else "organizationMembership.updated",
                                  {"id": mid, "object": "organization_membership", "role": role,
                                   "created_at": base + i * 10 + j, "updated_at": base + v * 1000,
                                   "organization": {"id": orgs[j], "name": f"Org {j}"},
                                   "public_user_data": {"user_id": user, "first_name": "P"}}, base + v * 1000))
    events.append(env("user.deleted", {"id": users[5], "object": "user", "deleted": True}, base + 5000))
    events.append(env("organization.deleted", {"id": orgs[2], "object": "organization", "deleted": True}, base + 6000))
    deliveries = []
    for n, e in enumerate(events):
        body = json.dumps(e).encode()
        deliveries.append((body, svix.headers(SECRET, body, msg_id=f"msg_{tag}_{n}")))
    return deliveries, users, orgs


def state_of(db, tag):
    """The synced state of one scenario as text, without ids and our own timestamps."""
    sql = f"""
      SELECT string_agg(line, E'\n' ORDER BY line) FROM (
        SELECT 'user ' || ROW(u.clerk_user_id, u.email, u.first_name, u.role, o.clerk_org_id,
                              u.sync_state, u.clerk_updated_at, u.deleted_at)::text AS line
          FROM jnx.users u LEFT JOIN jnx.orgs o ON o.id = u.org_id
         WHERE u.clerk_user_id LIKE 'user_{tag}_%'
        UNION ALL
        SELECT 'org ' || ROW(clerk_org_id, name, slug, sync_state, clerk_updated_at, deleted_at)::text
          FROM jnx.orgs WHERE clerk_org_id LIKE 'org_{tag}_%'
        UNION ALL
        SELECT 'membership ' || ROW(m.clerk_membership_id, u.clerk_user_id, o.clerk_org_id, m.role,
                                    m.clerk_updated_at, m.deleted_at)::text
          FROM jnx.memberships m JOIN jnx.users u ON u.id = m.user_id JOIN jnx.orgs o ON o.id = m.org_id
         WHERE m.clerk_membership_id LIKE 'orgmem_{tag}_%') s"""
    out = subprocess.run(["psql", "-X", "-tA", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", sql],
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


@test
def hundred_concurrent_mixed_deliveries_equal_the_serial_result():
    import random
    tag = "mix" + RUN
    deliveries, users, orgs = clerk_scenario(tag)
    rng = random.Random(RUN)
    stream = deliveries + [rng.choice(deliveries) for _ in range(100 - len(deliveries))]
    rng.shuffle(stream)
    results = concurrently(len(stream), lambda i: deliver(stream[i][0], stream[i][1]))
    statuses = sorted({r[0] for r in results})
    expect(statuses == [200], f"statuses {statuses}: {[r for r in results if r[0] != 200][:2]}")
    outcomes = {}
    for r in results:
        s = json.loads(r[2])["status"]
        outcomes[s] = outcomes.get(s, 0) + 1
    expect(outcomes.get("duplicate", 0) == len(stream) - len(deliveries), f"outcomes {outcomes}")
    expect("dead_letter" not in outcomes, f"outcomes {outcomes}")
    ids = "','".join(h["svix-id"] for _, h in deliveries)
    n = psql(f"SELECT count(*) FROM jnx.webhook_events WHERE svix_id IN ('{ids}')")
    expect(n == str(len(deliveries)), f"webhook_events {n} for {len(deliveries)} deliveries")
    counts = psql(f"SELECT (SELECT count(*) FROM jnx.users WHERE clerk_user_id LIKE 'user_{tag}_%') || ' ' || "
                  f"(SELECT count(*) FROM jnx.orgs WHERE clerk_org_id LIKE 'org_{tag}_%') || ' ' || "
                  f"(SELECT count(*) FROM jnx.memberships WHERE clerk_membership_id LIKE 'orgmem_{tag}_%')")
    expect(counts == f"{len(users)} {len(orgs)} {2 * len(users)}", f"rows users/orgs/memberships: {counts}")

    # The same deliveries, one at a time in their natural order, into a database of their own.
    serial_db = f"jnx_serial_{RUN}"
    psql(f"DROP DATABASE IF EXISTS {serial_db}")
    psql(f"CREATE DATABASE {serial_db}")
    try:
        ingest = "SELECT jnx.ingest_clerk_webhook(:'id', :'ts', :'sig', decode(:'body', 'base64'))"
        setup = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", serial_db, "-c",
                                "CREATE EXTENSION jnx_auth", "-c",
                                f"SELECT jnx.set_webhook_secrets('{SECRET}')"], capture_output=True, text=True)
        expect(setup.returncode == 0, setup.stderr)
        script = "".join(
            f"\\set id '{h['svix-id']}'\n\\set ts '{h['svix-timestamp']}'\n\\set sig '{h['svix-signature']}'\n"
            f"\\set body '{base64.b64encode(b).decode()}'\n{ingest};\n" for b, h in deliveries)
        run = subprocess.run(["psql", "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", "-d", serial_db],
                             input=script, capture_output=True, text=True)
        expect(run.returncode == 0, run.stderr[-500:])
        concurrent_state = state_of(os.environ["PGDATABASE"], tag)
        serial_state = state_of(serial_db, tag)
        expect(concurrent_state.count("\n") > 10, "scenario state unexpectedly small")
        import difflib
        diff = "\n".join(difflib.unified_diff(serial_state.split("\n"), concurrent_state.split("\n"),
                                             "serial", "concurrent", lineterm="", n=0))
        expect(concurrent_state == serial_state, f"concurrent and serial states differ:\n{diff}")
    finally:
        psql(f"DROP DATABASE IF EXISTS {serial_db}")


@test
def crash_during_a_stream_then_svix_style_resend_applies_each_event_once():
    tag = "crash" + RUN
    total = 240
    bodies = [user_event(f"user_{tag}_{i}", f"N{i}") for i in range(total)]
    heads = [svix.headers(SECRET, b, msg_id=f"msg_{tag}_{i}") for i, b in enumerate(bodies)]
    statuses = [None] * total
    spans = [None] * total  # (sent, answered), monotonic
    outage = {}
    lock = threading.Lock()
    next_index = [0]
    crashed = threading.Event()

    def worker():
        while True:
            with lock:
                i = next_index[0]
                next_index[0] += 1
            if i >= total:
                return
            sent = time.monotonic()
            try:
                statuses[i] = deliver(bodies[i], heads[i])[0]
            except OSError as e:
                statuses[i] = f"error {e!r}"
            spans[i] = (sent, time.monotonic())

    def fault():
        while next_index[0] < total // 3:
            time.sleep(0.01)
        outage["stop"] = time.monotonic()
        cluster("db-stop", "immediate")   # a crash: no shutdown checkpoint, recovery on start
        time.sleep(1.5)
        cluster("db-start")
        outage["start"] = time.monotonic()
        crashed.set()

    threads = [threading.Thread(target=worker) for _ in range(8)] + [threading.Thread(target=fault)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    expect(crashed.is_set(), "the database was not stopped")
    seen = sorted({str(s) for s in statuses})
    expect(set(seen) <= {"200", "503"}, f"answers other than 200/503: {seen}")
    failed_first = [i for i, s in enumerate(statuses) if s != 200]
    # Deliveries in flight across the whole outage: sent before the crash, answered after the
    # restart. Direct, the shim's retries (2 s) cannot outlast it, so some get 503. Behind
    # PgBouncer, a query may wait in its queue (query_wait_timeout) and succeed after the
    # restart: then those deliveries are the proof that the outage met the stream.
    spanning = [i for i, sp in enumerate(spans) if sp[0] < outage["stop"] and sp[1] > outage["start"]]
    expect(failed_first or (VIA_PGBOUNCER and spanning),
           "the outage met no delivery (no 503, none in flight across it): the test proved nothing")
    # Svix resends whatever did not get a 2xx, the same bytes, until it does.
    pending = list(failed_first)
    for _ in range(20):
        pending = [i for i in pending if deliver(bodies[i], heads[i])[0] != 200]
        if not pending:
            break
        time.sleep(0.5)
    expect(not pending, f"{len(pending)} deliveries never accepted")
    applied = psql(f"SELECT count(*) FROM jnx.webhook_events WHERE svix_id LIKE 'msg_{tag}_%' "
                   f"AND status = 'processed'")
    users = psql(f"SELECT count(*) FROM jnx.users WHERE clerk_user_id LIKE 'user_{tag}_%'")
    audits = psql(f"SELECT count(*) FROM jnx.audit_logs WHERE target_id LIKE 'user_{tag}_%' "
                  f"AND action = 'user.create'")
    expect((applied, users, audits) == (str(total),) * 3,
           f"processed={applied} users={users} audit creates={audits} for {total} events "
           f"({len(failed_first)} resent)")


MINT = os.path.join(ROOT, "build", "jnx-mint")
DEV_ISSUER = "https://clerk.dev.jnx.test"
DEV_HEADER = '{"alg":"RS256","kid":"ins_dev","typ":"JWT"}'


def mint(claims, header=DEV_HEADER, kid="ins_dev", key_dir=None, alg="RS256"):
    out = subprocess.run([MINT, "token", key_dir or os.environ["JNX_BASE"], kid, header,
                          claims if isinstance(claims, str) else json.dumps(claims), alg],
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


def session_claims(sub, **extra):
    now = int(time.time())
    c = {"sub": sub, "iss": DEV_ISSUER, "iat": now - 2, "nbf": now - 5, "exp": now + 600, "v": 2,
         "sid": "sess_test"}
    c.update(extra)
    return c


def get(path, token=None, authorization=None):
    headers = {}
    if token is not None:
        headers["Authorization"] = "Bearer " + token
    if authorization is not None:
        headers["Authorization"] = authorization
    return request("GET", path, headers=headers)


@test
def me_with_a_valid_token_without_and_after_the_webhook():
    user = f"user_me_{RUN}"
    status, headers, data = get("/api/me")
    expect_status(status, 401, data)
    expect(headers.get("www-authenticate", "").startswith("Bearer"), headers)
    token = mint(session_claims(user, o={"id": f"org_me_{RUN}", "rol": "admin", "slg": "me"}))
    status, _, data = get("/api/me", token)
    expect_status(status, 200, data)
    profile = json.loads(data)
    expect(profile["clerk_user_id"] == user and profile["sync_state"] == "provisional", profile)
    expect(profile["org"]["clerk_org_id"] == f"org_me_{RUN}", profile)
    body = user_event("user_me", "Mina")  # user_event appends _{RUN}
    expect_status(deliver(body)[0], 200)
    status, _, data = get("/api/me", token)
    profile = json.loads(data)
    expect(profile["sync_state"] == "synced" and profile["first_name"] == "Mina", profile)
    # The identity ended with the request: the same pooled connections serve
    # an anonymous request next, which must not see the previous user.
    for _ in range(20):
        status, _, data = get("/api/me")
        expect_status(status, 401, data)


@test
def hostile_tokens_are_401_write_nothing_and_crash_nothing():
    import tempfile
    b64 = lambda raw: base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    now = int(time.time())
    user = f"user_hostile_{RUN}"
    good = mint(session_claims(user))
    h64, p64, s64 = good.split(".")
    stranger_dir = tempfile.mkdtemp()
    subprocess.run([MINT, "keygen", stranger_dir, "ins_dev"], check=True, capture_output=True)
    subprocess.run([MINT, "keygen", stranger_dir, "ins_other"], check=True, capture_output=True)
    flipped = s64[:10] + ("A" if s64[10] != "A" else "B") + s64[11:]
    admin_claims = b64(json.dumps(session_claims("user_dave_admin")).encode())
    hostile = {
        "expired": mint(session_claims(user, exp=now - 100, iat=now - 200, nbf=now - 200)),
        "not yet valid (nbf)": mint(session_claims(user, nbf=now + 600)),
        "issued in the future (iat)": mint(session_claims(user, iat=now + 600)),
        "tampered payload": f"{h64}.{admin_claims}.{s64}",
        "tampered signature": f"{h64}.{p64}.{flipped}",
        "alg none, no signature": b64(b'{"alg":"none","kid":"ins_dev"}') + f".{p64}.",
        "alg none with signature": b64(b'{"alg":"none","kid":"ins_dev"}') + f".{p64}.{s64}",
        "HS256 header": mint(session_claims(user), header='{"alg":"HS256","kid":"ins_dev"}'),
        "HS256 signed with the public JWK": None,  # filled below
        "ES256 header": mint(session_claims(user), header='{"alg":"ES256","kid":"ins_dev"}'),
        "lower-case rs256": mint(session_claims(user), header='{"alg":"rs256","kid":"ins_dev"}'),
        "unknown kid": mint(session_claims(user), header='{"alg":"RS256","kid":"ins_other"}',
                            kid="ins_other", key_dir=stranger_dir),
        "our kid, another key": mint(session_claims(user), key_dir=stranger_dir),
        "no kid": mint(session_claims(user), header='{"alg":"RS256"}'),
        "wrong issuer": mint(session_claims(user, iss="https://evil.example")),
        "no issuer": mint({k: v for k, v in session_claims(user).items() if k != "iss"}),
        "wrong party": mint(session_claims(user, azp="https://evil.example")),
        "missing party": mint(session_claims(user)),
        "no sub": mint({k: v for k, v in session_claims(user).items() if k != "sub"}),
        "empty sub": mint(session_claims("")),
        "string exp": mint(session_claims(user, exp=str(now + 600))),
        "null nbf": mint(session_claims(user, nbf=None)),
        "no exp": mint({k: v for k, v in session_claims(user).items() if k != "exp"}),
        "claims not an object": mint("[1,2,3]"),
        "claims a string": mint('"user_dave_admin"'),
        "header not an object": mint(session_claims(user), header='["RS256"]'),
        "duplicate sub": mint('{"sub":"%s","sub":"user_dave_admin","iss":"%s","exp":%d,"azp":"https://app.jnx.test"}'
                              % (user, DEV_ISSUER, now + 600)),
        "two parts": f"{h64}.{p64}",
        "four parts": f"{good}.{s64}",
        "padding": good + "==",
        "standard base64 alphabet": good.replace("-", "+").replace("_", "/") if ("-" in good or "_" in good) else good[:-2] + "+/",
        "empty segments": "..",
        "not a JWT": "hello",
        "100 KB of claims": mint(session_claims(user, pad="x" * 100_000)),
        # Signed by our key, for our issuer and party, but not session tokens (JX111).
        "OAuth access token (typ at+jwt)": mint(session_claims(user, azp="https://app.jnx.test"),
                                                header='{"alg":"RS256","kid":"ins_dev","typ":"at+jwt"}'),
        "JWT-template token (cat)": mint(session_claims(user, azp="https://app.jnx.test"),
                                         header='{"alg":"RS256","kid":"ins_dev","typ":"JWT","cat":"cl_B7d4PD222AAA"}'),
        "machine token (sub mch_)": mint(session_claims("mch_2bot", azp="https://app.jnx.test")),
    }
    jwk = open(os.path.join(os.environ["JNX_BASE"], "dev-jwk.json")).read().strip().encode()
    hs_input = b64(b'{"alg":"HS256","kid":"ins_dev"}') + "." + p64
    import hashlib, hmac as hmac_mod
    hostile["HS256 signed with the public JWK"] = hs_input + "." + b64(
        hmac_mod.new(jwk, hs_input.encode(), hashlib.sha256).digest())
    expect(len(hostile) >= 30, len(hostile))

    state = lambda: psql("SELECT (SELECT count(*) FROM jnx.users) || '/' || (SELECT count(*) FROM jnx.audit_logs)"
                         " || '/' || pg_postmaster_start_time()")
    before = state()
    psql(f"SELECT jnx.set_token_policy(ARRAY['{DEV_ISSUER}'], ARRAY['https://app.jnx.test'])")
    try:
        # With parties configured, a well-formed token with the right azp passes ...
        ok_token = mint(session_claims(f"user_hostile_ok_{RUN}", azp="https://app.jnx.test"))
        status, _, data = get("/api/me", ok_token)
        expect_status(status, 200, data)
        psql(f"DELETE FROM jnx.users WHERE clerk_user_id = 'user_hostile_ok_{RUN}'")
        # ... and every hostile one is refused the same way.
        for name, token in hostile.items():
            status, headers, data = get("/api/me", token)
            expect(status == 401, f"{name}: HTTP {status} {data[:100]!r}")
            expect(headers.get("www-authenticate") == 'Bearer error="invalid_token"', f"{name}: {headers}")
            expect(json.loads(data) == {"error": "invalid_token"}, f"{name}: {data!r}")
        # Not a bearer token at all.
        for auth in ("Basic dXNlcjpwYXNz", "Bearer", "bearer", good):
            status, _, data = get("/api/me", authorization=auth)
            expect_status(status, 401, data)
    finally:
        psql(f"SELECT jnx.set_token_policy(ARRAY['{DEV_ISSUER}'], '{{}}')")
    after = state()
    users_before, audits_before, start_before = before.split("/", 2)
    users_after, audits_after, start_after = after.split("/", 2)
    expect(start_after == start_before, "the database restarted: a backend crashed")
    expect(users_after == users_before, f"users {users_before} -> {users_after}: a hostile token wrote")
    # Only the one valid request (and its cleanup) touched the audit log.
    expect(int(audits_after) - int(audits_before) == 2, f"audit rows {audits_before} -> {audits_after}")
    log = open(os.environ["JNX_SHIM_LOG"], encoding="utf-8", errors="replace").read()
    expect(s64[:40] not in log and p64[:40] not in log, "a token reached the log")


@test
def planted_public_overloads_never_run_as_the_owner_over_http():
    # The review's attack: any role with CREATE on a schema of the shim's
    # search_path plants a more specific overload of a pg_catalog function the
    # owner code used (0.3.0 ran it as the owner on one GET /api/me).
    planter = f"jnx_http_planter_{RUN}"
    psql(f"""CREATE TABLE public.http_tripwire_{RUN} (ran_as text);
             GRANT INSERT ON public.http_tripwire_{RUN} TO PUBLIC;
             CREATE ROLE {planter};
             GRANT CREATE, USAGE ON SCHEMA public TO {planter};""")
    try:
        psql(f"""SET ROLE {planter};
                 CREATE FUNCTION public.array_to_string(text[], text) RETURNS text LANGUAGE sql AS
                   'INSERT INTO public.http_tripwire_{RUN} VALUES (current_user);
                    SELECT pg_catalog.array_to_string($1::pg_catalog.anyarray, $2)';
                 CREATE FUNCTION public.convert_from(bytea, name) RETURNS text LANGUAGE sql AS
                   'INSERT INTO public.http_tripwire_{RUN} VALUES (current_user);
                    SELECT pg_catalog.convert_from($1, $2)';
                 -- Aimed at the shim's own statements: 'status' would be read as jsonb.
                 CREATE FUNCTION public.trip_arrow(jsonb, jsonb) RETURNS text LANGUAGE sql AS
                   'INSERT INTO public.http_tripwire_{RUN} VALUES (current_user); SELECT NULL::text';
                 CREATE OPERATOR public.->> (LEFTARG = jsonb, RIGHTARG = jsonb, FUNCTION = public.trip_arrow);
                 CREATE FUNCTION public.trip_eq(name, text) RETURNS boolean LANGUAGE sql AS
                   'INSERT INTO public.http_tripwire_{RUN} VALUES (current_user); SELECT false';
                 CREATE OPERATOR public.= (LEFTARG = name, RIGHTARG = text, FUNCTION = public.trip_eq);""")
        # The shim's statements are prepared per connection: make it reconnect.
        pids = ",".join(str(p) for p in shim_backends())
        psql(f"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE pid IN ({pids or 0})")
        time.sleep(0.5)
        # Fresh backends: every pooled connection must load its caches anew.
        psql("SELECT jnx.set_token_policy(token_config.issuers, token_config.authorized_parties) "
             "FROM jnx.token_config")
        psql("SELECT jnx.set_webhook_secrets(VARIADIC array_agg(secret ORDER BY position)) FROM jnx.webhook_secrets")
        for i in range(8):
            status, _, data = get("/api/me", mint(session_claims(f"user_planted{i}_{RUN}")))
            expect_status(status, 200, data)
            expect_status(deliver(user_event(f"user_planted_hook{i}"))[0], 200)
        status, _, data = request("GET", "/readyz")
        expect_status(status, 200, data)
        ran = psql(f"SELECT coalesce(string_agg(DISTINCT ran_as, ','), '') FROM public.http_tripwire_{RUN}")
        expect(ran == "", f"planted functions ran as: {ran}")
        supers = psql(f"SELECT rolsuper FROM pg_roles WHERE rolname = '{planter}'")
        expect(supers == "f", "the planter became superuser")
    finally:
        psql(f"""DROP OWNED BY {planter}; REVOKE ALL ON SCHEMA public FROM {planter}; DROP ROLE {planter};
                 DROP TABLE public.http_tripwire_{RUN};""")


@test
def statement_logging_never_writes_a_token_or_a_body():
    # An operator who turns on duration logging must not get tokens and
    # webhook bodies (emails) in the server log: the shim binds them as
    # parameters, and the extension sets log_parameter_max_length = 0 for
    # the shim's role.
    log_path = os.path.join(os.environ["JNX_BASE"], "postgresql.log")
    start = os.path.getsize(log_path)
    psql("ALTER SYSTEM SET log_min_duration_statement = 0")
    psql("SELECT pg_reload_conf()")
    time.sleep(0.5)
    try:
        token = mint(session_claims(f"user_logged_{RUN}"))
        expect_status(get("/api/me", token)[0], 200)
        expect_status(get("/api/me", token[:-4] + "AAAA")[0], 401)
        email = f"logged.{RUN}@example.com"
        expect_status(deliver(user_event("user_logged_hook", email=email))[0], 200)
    finally:
        psql("ALTER SYSTEM RESET log_min_duration_statement")
        psql("SELECT pg_reload_conf()")
    with open(log_path, encoding="utf-8", errors="replace") as f:
        f.seek(start)
        text = f.read()
    expect("duration:" in text and "jnx.authenticate" in text, "duration logging did not log the shim's statements")
    expect(token.split(".")[2][:40] not in text and token.split(".")[1][:40] not in text, "a token reached the server log")
    expect(email not in text, "a webhook body reached the server log")


@test
def percent_encoded_authorization_is_not_decoded_into_a_token():
    # cpp-httplib decodes %XX in header values; the edge keys its per-token
    # rate limit on the raw header. The shim must verify exactly what was sent.
    token = mint(session_claims(f"user_encoded_{RUN}"))
    expect_status(get("/api/me", token)[0], 200)
    sig = token.rindex(".") + 1
    direct_host, direct_port = SHIM_HOST, SHIM_PORT
    for name, auth in (("Bearer%20", "Bearer%20" + token),
                       ("dots as %2E", "Bearer " + token.replace(".", "%2E")),
                       ("one signature character as %XX",
                        "Bearer " + token[:sig] + "%%%02X" % ord(token[sig]) + token[sig + 1:]),
                       ("trailing %00", "Bearer " + token + "%00")):
        for host, port in ((HOST, PORT), (direct_host, direct_port)):
            status, headers, data = request("GET", "/api/me", headers={"Authorization": auth},
                                            host=host, port=port)
            expect(status == 401, f"{name} at {port}: HTTP {status} {data[:80]!r}")


@test
def range_requests_get_the_whole_json_document():
    token = mint(session_claims(f"user_range_{RUN}"))
    for host, port in ((HOST, PORT), (SHIM_HOST, SHIM_PORT)):
        for rng in ("bytes=0-3", "bytes=999-", "bytes=" + ",".join(["0-"] * 500), "bytes=nonsense"):
            status, headers, data = request("GET", "/api/me", headers={"Authorization": "Bearer " + token,
                                                                        "Range": rng}, host=host, port=port)
            expect("content-range" not in headers, headers)
            if rng == "bytes=nonsense" and port == SHIM_PORT and SHIM_PORT != PORT:
                # cpp-httplib refuses a Range it cannot parse before any handler
                # runs; the shim answers that in JSON (the edge strips Range).
                expect(status == 400 and json.loads(data) == {"error": "bad_request"}, f"{status} {data!r}")
                continue
            expect(status == 200, f"Range {rng[:20]} at {port}: HTTP {status} {data[:80]!r}")
            expect(json.loads(data)["clerk_user_id"] == f"user_range_{RUN}", f"Range {rng[:20]}: {data[:80]!r}")


@test
def admin_users_for_org_admins_and_platform_admins_only():
    org = f"org_adm_{RUN}"
    members = [f"user_adm{i}_{RUN}" for i in range(3)]
    for i, u in enumerate(members):
        ev = {"type": "organizationMembership.created", "object": "event",
              "data": {"id": f"orgmem_adm{i}_{RUN}", "role": "org:admin" if i == 0 else "org:member",
                       "created_at": 1764150000000 + i, "updated_at": 1764150000000,
                       "organization": {"id": org, "name": "Adm"}, "public_user_data": {"user_id": u}}}
        expect_status(deliver(json.dumps(ev).encode())[0], 200)
    admin = mint(session_claims(members[0], o={"id": org, "rol": "admin"}))
    member = mint(session_claims(members[1], o={"id": org, "rol": "member"}))
    status, _, data = get("/api/admin/users", admin)
    expect_status(status, 200, data)
    page = json.loads(data)
    expect(sorted(u["clerk_user_id"] for u in page["users"]) == sorted(members), data)
    expect(page["next_cursor"] is None, data)
    status, _, data = get("/api/admin/users", member)
    expect_status(status, 403, data)
    status, _, data = get(f"/api/admin/users?org=org_someone_else", admin)
    expect_status(status, 403, data)
    # A platform admin (public_metadata.role = admin) may name any org.
    platform = f"user_platform_{RUN}"
    pdata = json.loads(user_event("user_platform", "Pat"))
    pdata["data"]["public_metadata"] = {"role": "admin"}
    expect_status(deliver(json.dumps(pdata).encode())[0], 200)
    status, _, data = get(f"/api/admin/users?org={org}", mint(session_claims(platform)))
    expect_status(status, 200, data)
    expect(len(json.loads(data)["users"]) == 3, data)
    status, _, data = get("/api/admin/users")
    expect_status(status, 401, data)


@test
def admin_users_pages_through_two_thousand_members_with_no_row_twice_or_missing():
    # 2,000 members written straight into the ledger's tables through the
    # webhook upserts (one SQL call, not 2,000 HTTP deliveries), then read
    # over HTTP page by page.
    org = f"org_pages_{RUN}"
    psql(f"""
        SELECT jnx.upsert_membership('orgmem_pages_' || i || '_{RUN}', jsonb_build_object(
                   'role', CASE WHEN i = 0 THEN 'org:admin' ELSE 'org:member' END,
                   'created_at', 1764150000000, 'updated_at', 1764150000000,
                   'organization', jsonb_build_object('id', '{org}', 'name', 'Pages'),
                   'public_user_data', jsonb_build_object('user_id', 'user_pages_' || lpad(i::text, 4, '0') || '_{RUN}')))
          FROM generate_series(0, 1999) i""")
    expected = sorted(f"user_pages_{i:04d}_{RUN}" for i in range(2000))
    admin = mint(session_claims(f"user_pages_0000_{RUN}", o={"id": org, "rol": "admin"}))

    # At the shim itself: some 40 requests with one token are over the edge's
    # per-token rate, which test_edge.py covers.
    def get(path, token):
        return request("GET", path, headers={"Authorization": "Bearer " + token}, host=SHIM_HOST, port=SHIM_PORT)

    def read_all(limit):
        seen, cursor, pages = [], None, 0
        while True:
            path = "/api/admin/users" + (f"?limit={limit}" if limit else "")
            if cursor is not None:
                path += ("&" if limit else "?") + "cursor=" + cursor
            status, _, data = get(path, admin)
            expect_status(status, 200, data)
            page = json.loads(data)
            want = limit or 100
            expect(len(page["users"]) <= want, f"limit {limit}: {len(page['users'])} rows")
            seen += [u["clerk_user_id"] for u in page["users"]]
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                return seen, pages
            expect(len(page["users"]) == want, f"limit {limit}: a short page before the last")
            expect(pages < 100, "paging does not end")

    for limit, want_pages in ((None, 20), (1000, 2), (333, 7)):
        seen, pages = read_all(limit)
        expect(len(seen) == len(set(seen)), f"limit {limit}: a row came twice")
        expect(seen == expected, f"limit {limit}: rows missing or out of order ({len(seen)} read)")
        expect(pages == want_pages, f"limit {limit}: {pages} pages")
    for limit in ("0", "1001", "-1"):
        status, _, data = get(f"/api/admin/users?limit={limit}", admin)
        expect(status == 400 and json.loads(data) == {"error": "invalid_limit"}, f"limit={limit}: {status} {data!r}")
    status, _, data = get("/api/admin/users?limit=ten", admin)
    expect(status == 400 and json.loads(data) == {"error": "bad_request"}, f"limit=ten: {status} {data!r}")
    for cursor in ("abc", "c1", "c1%2F%2F", "c1A", "c1_w", "x" * 800):
        status, _, data = get(f"/api/admin/users?cursor={cursor}", admin)
        expect(status == 400 and json.loads(data) == {"error": "invalid_cursor"}, f"cursor={cursor[:20]}: {status} {data!r}")


EXPORT_KEYS = {"format", "format_version", "extension_version", "generated_at", "clerk_user_id", "profile",
               "memberships", "audit", "webhook_events"}


def expect_export_headers(headers, what):
    expect(headers.get("content-type", "").startswith("application/json"), f"{what}: {headers}")
    expect(headers.get("content-disposition") == 'attachment; filename="jnx-export.json"', f"{what}: {headers}")
    expect(headers.get("cache-control") == "no-store", f"{what}: {headers}")


@test
def export_without_a_token_is_401_and_never_an_attachment():
    for host, port in ((HOST, PORT), (SHIM_HOST, SHIM_PORT)):
        status, headers, data = request("GET", "/api/me/export", host=host, port=port)
        expect_status(status, 401, data)
        expect(json.loads(data) == {"error": "missing_token"}, data)
        expect(headers.get("www-authenticate") == 'Bearer realm="jnx"', headers)
        expect("content-disposition" not in headers, f"a 401 offered as a download: {headers}")
        token = mint(session_claims(f"user_export_bad_{RUN}"))
        status, headers, data = request("GET", "/api/me/export", host=host, port=port,
                                        headers={"Authorization": "Bearer " + token[:-4] + "AAAA"})
        expect_status(status, 401, data)
        expect(json.loads(data) == {"error": "invalid_token"}, data)
        expect(headers.get("www-authenticate") == 'Bearer error="invalid_token"', headers)
        expect("content-disposition" not in headers, headers)
        # The route takes no body, and no other method.
        status, _, data = request("POST", "/api/me/export", b"{}", {"Authorization": "Bearer " + token},
                                  host=host, port=port)
        expect_status(status, 404, data)


@test
def export_with_a_valid_token_is_the_callers_document_as_an_attachment():
    user = f"user_export_{RUN}"
    first = f"Exa{RUN}"
    expect_status(deliver(user_event("user_export", first))[0], 200)  # user_event appends _{RUN}
    token = mint(session_claims(user))
    exports = (f"SELECT count(*) || ' ' || count(*) FILTER (WHERE actor = '{user}' AND target_type = 'user') "
               f"FROM jnx.audit_logs WHERE action = 'user.export' AND target_id = '{user}'")
    expect(psql(exports) == "0 0", psql(exports))
    for host, port in ((HOST, PORT), (SHIM_HOST, SHIM_PORT)):
        status, headers, data = request("GET", "/api/me/export", headers={"Authorization": "Bearer " + token},
                                        host=host, port=port)
        expect_status(status, 200, data)
        expect_export_headers(headers, f"GET at {port}")
        expect(headers.get("x-request-id"), "no X-Request-Id")
        doc = json.loads(data)
        expect(EXPORT_KEYS <= set(doc), f"keys {sorted(doc)}")
        expect(doc["format"] == "jnx_auth.user_export" and doc["format_version"] == 1, data[:200])
        expect(doc["clerk_user_id"] == user, f"clerk_user_id {doc['clerk_user_id']!r}")
        profile = doc["profile"]
        expect(profile is not None and profile.get("first_name") == first, f"profile {profile!r}")
        expect(isinstance(doc["memberships"], list) and isinstance(doc["audit"], list), data[:200])
        events = doc["webhook_events"]
        expect(isinstance(events, list) and any(e.get("type") == "user.created" for e in events),
               f"events {events!r}")
        expect(b"192.0.2.10" not in data and b"Mozilla" not in data, "the client IP or user agent is exported")
        version = psql("SELECT extversion FROM pg_extension WHERE extname = 'jnx_auth'")
        expect(doc["extension_version"] == version, f"extension_version {doc['extension_version']!r}")
    # HEAD: the same headers, no body.
    status, headers, data = request("HEAD", "/api/me/export", headers={"Authorization": "Bearer " + token})
    expect_status(status, 200, data)
    expect(data == b"", f"HEAD body {data[:80]!r}")
    expect_export_headers(headers, "HEAD")
    # One audit row per export, by the caller (HEAD runs the export too).
    expect(psql(exports) == "3 3", f"export audit rows (all / by the caller): {psql(exports)}")


@test
def export_before_the_webhook_is_an_empty_document_and_creates_no_row():
    user = f"user_export_new_{RUN}"
    status, headers, data = get("/api/me/export", mint(session_claims(user)))
    expect_status(status, 200, data)
    expect_export_headers(headers, "GET")
    doc = json.loads(data)
    expect(doc["clerk_user_id"] == user and doc["profile"] is None, data[:200])
    expect(doc["memberships"] == [] and doc["webhook_events"] == [], data[:300])
    n = psql(f"SELECT count(*) FROM jnx.users WHERE clerk_user_id = '{user}'")
    expect(n == "0", f"the export created a users row: {n}")


@test
def export_ignores_the_query_string_and_never_returns_another_user():
    caller = f"user_export_me_{RUN}"
    other = f"user_export_other_{RUN}"
    other_name, other_email = f"Otto{RUN}", f"otto.{RUN}@example.org"
    expect_status(deliver(user_event("user_export_me", f"Cal{RUN}"))[0], 200)
    other_svix = []
    # The other user has a membership too, so that their export would not be empty.
    ev = {"type": "organizationMembership.created", "object": "event",
          "data": {"id": f"orgmem_export_other_{RUN}", "role": "org:admin", "created_at": 1764150000000,
                   "updated_at": 1764150000000, "organization": {"id": f"org_export_other_{RUN}", "name": "Other"},
                   "public_user_data": {"user_id": other}}}
    for body in (user_event("user_export_other", other_name, other_email), json.dumps(ev).encode()):
        headers = svix.headers(SECRET, body)
        expect_status(deliver(body, headers)[0], 200)
        other_svix.append(headers["svix-id"])
    token = mint(session_claims(caller))
    forbidden = [other, other_name, other_email, f"org_export_other_{RUN}", f"orgmem_export_other_{RUN}",
                 *other_svix]
    for query in (f"?user={other}", f"?clerk_user_id={other}", f"?user_id={other}", f"?sub={other}",
                  f"?user={other}&user={caller}", f"?user={caller}&user={other}", "?user=", "?user"):
        for host, port in ((HOST, PORT), (SHIM_HOST, SHIM_PORT)):
            status, headers, data = request("GET", "/api/me/export" + query,
                                            headers={"Authorization": "Bearer " + token}, host=host, port=port)
            expect_status(status, 200, data)
            expect_export_headers(headers, query)
            doc = json.loads(data)
            expect(doc["clerk_user_id"] == caller, f"{query} at {port}: clerk_user_id {doc['clerk_user_id']!r}")
            expect(doc["profile"] is not None and doc["profile"].get("first_name") == f"Cal{RUN}",
                   f"{query}: profile {doc['profile']!r}")
            text = data.decode()
            leaked = [v for v in forbidden if v in text]
            expect(not leaked, f"{query} at {port}: the other user's values in the export: {leaked}")
    # Every export was the caller's own; none was recorded against the other user.
    n = psql(f"SELECT count(*) FROM jnx.audit_logs WHERE action = 'user.export' AND target_id = '{other}'")
    expect(n == "0", f"exports recorded for the other user: {n}")


@test
def a_deleted_user_is_403_user_deleted_on_every_session_route():
    user = f"user_export_gone_{RUN}"
    org = f"org_export_gone_{RUN}"
    expect_status(deliver(user_event("user_export_gone", "Gone"))[0], 200)
    ev = {"type": "organizationMembership.created", "object": "event",
          "data": {"id": f"orgmem_export_gone_{RUN}", "role": "org:admin", "created_at": 1764150000000,
                   "updated_at": 1764150000000, "organization": {"id": org, "name": "Gone"},
                   "public_user_data": {"user_id": user}}}
    expect_status(deliver(json.dumps(ev).encode())[0], 200)
    token = mint(session_claims(user, o={"id": org, "rol": "admin"}))
    routes = ("/api/me", "/api/me/export", "/api/admin/users")
    for path in routes:
        status, _, data = get(path, token)
        expect(status == 200, f"{path} before the deletion: HTTP {status} {data[:100]!r}")
    deleted = {"type": "user.deleted", "object": "event", "timestamp": 1764150005000,
               "data": {"id": user, "object": "user", "deleted": True}}
    status, _, data = deliver(json.dumps(deleted).encode())
    expect_status(status, 200, data)
    expect(json.loads(data)["status"] == "processed", data)
    # The token is still valid (it outlives Clerk's state by up to a minute).
    audits = psql(f"SELECT count(*) FROM jnx.audit_logs WHERE action = 'user.export' AND target_id = '{user}'")
    for path in routes:
        for host, port in ((HOST, PORT), (SHIM_HOST, SHIM_PORT)):
            status, headers, data = request("GET", path, headers={"Authorization": "Bearer " + token},
                                            host=host, port=port)
            expect(status == 403, f"{path} at {port}: HTTP {status} {data[:100]!r}")
            expect(json.loads(data) == {"error": "user_deleted"}, f"{path}: {data!r}")
            expect("content-disposition" not in headers and "www-authenticate" not in headers, f"{path}: {headers}")
    # A refused export records nothing, and /api/me did not bring the user back.
    after = psql(f"SELECT count(*) FROM jnx.audit_logs WHERE action = 'user.export' AND target_id = '{user}'")
    expect(after == audits, f"export audit rows {audits} -> {after} for a deleted user")
    row = psql(f"SELECT count(*) || ' ' || count(*) FILTER (WHERE deleted_at IS NOT NULL) FROM jnx.users "
               f"WHERE clerk_user_id = '{user}'")
    expect(row == "1 1", f"users rows / deleted: {row}")


@test
def retired_auth_routes_are_410():
    for path in ("/api/auth/login", "/api/auth/signup", "/api/auth/user"):
        for method in ("GET", "POST"):
            status, _, data = request(method, path, b"{}" if method == "POST" else b"",
                                      {"content-type": "application/json"})
            expect_status(status, 410, data)
            expect(json.loads(data)["error"] == "gone", data)


@test
def me_and_user_created_race_for_thirty_new_users():
    users = [f"user_race{i}_{RUN}" for i in range(30)]
    tokens = [mint(session_claims(u)) for u in users]
    deliveries = []
    for i, u in enumerate(users):
        ev = json.loads(user_event(f"user_race{i}", f"Racer{i}"))
        body = json.dumps(ev).encode()
        deliveries.append((body, svix.headers(SECRET, body)))

    def one(i):
        if i % 2 == 0:
            return get("/api/me", tokens[i // 2])
        body, headers = deliveries[i // 2]
        return deliver(body, headers)

    results = concurrently(60, one)
    statuses = sorted({r[0] for r in results})
    expect(statuses == [200], f"statuses {statuses}: {[r for r in results if r[0] != 200][:2]}")
    ids = "','".join(users)
    row = psql(f"SELECT count(*) || ' ' || count(*) FILTER (WHERE sync_state = 'synced' AND first_name LIKE 'Racer%') "
               f"FROM jnx.users WHERE clerk_user_id IN ('{ids}')")
    expect(row == "30 30", f"rows / synced with the webhook's data: {row}")


@test
def identity_never_leaks_between_interleaved_users_at_high_concurrency():
    # Tokens of 24 users, requests without a token and with a refused one, interleaved on 48
    # threads over the shim's 8 pooled connections (through PgBouncer: over its 4 shared server
    # connections): every answer is its own caller's, and no one else's.
    users = [f"user_mix{i}_{RUN}" for i in range(24)]
    tokens = [mint(session_claims(u)) for u in users]
    bad = tokens[0][:-4] + ("AAAA" if not tokens[0].endswith("AAAA") else "BBBB")
    plan = []
    for n in range(480):
        kind = n % 12
        plan.append(("none", None) if kind == 10 else ("bad", bad) if kind == 11
                    else ("user", n % len(users)))
    answers = [None] * len(plan)
    lock = threading.Lock()
    next_index = [0]

    def worker():
        while True:
            with lock:
                i = next_index[0]
                next_index[0] += 1
            if i >= len(plan):
                return
            what, arg = plan[i]
            path = "/api/me/export" if i % 5 == 0 and what == "user" else "/api/me"
            token = tokens[arg] if what == "user" else arg
            try:
                answers[i] = (path,) + request("GET", path, headers={"Authorization": "Bearer " + token}
                                               if token else {}, host=SHIM_HOST, port=SHIM_PORT)
            except OSError as e:
                answers[i] = (path, f"error {e!r}", {}, b"")

    threads = [threading.Thread(target=worker) for _ in range(48)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for (what, arg), (path, status, _, data) in zip(plan, answers):
        if what == "user":
            expect(status == 200, f"{path} for {users[arg]}: {status} {data[:100]!r}")
            doc = json.loads(data)
            expect(doc["clerk_user_id"] == users[arg], f"{path} for {users[arg]} answered {doc['clerk_user_id']}")
            others = [u for u in users if u != users[arg] and u in data.decode()]
            expect(not others, f"{path} for {users[arg]} mentions {others[:2]}")
        else:
            expect(status == 401, f"{what} token: {status} {data[:100]!r}")


# --- the shim's own HTTP handling: these talk to the shim directly ---------------

GONE = {"error": "gone", "detail": 'This route was retired; see docs/API.md, section "Retired routes".'}


@test
def retired_routes_answer_410_at_once_for_every_method():
    cases = [
        ("GET", [], b""),
        ("HEAD", [], b""),
        ("POST", [("Content-Type", "application/json"), ("Content-Length", "2")], b"{}"),
        ("POST", [], b""),  # neither Content-Length nor Transfer-Encoding: no body to wait for
        ("POST", [("Transfer-Encoding", "chunked")], chunked(b"{}")),
        ("PUT", [], b""),
        ("PATCH", [], b""),
        ("DELETE", [], b""),
        ("OPTIONS", [], b""),
        ("TRACE", [], b""),
        ("BREW", [], b""),  # a method cpp-httplib does not know
    ]
    for path in ("/api/auth/login", "/api/auth/signup", "/api/auth/user"):
        for method, headers, body in cases:
            data = http_request(method, path, [("Host", "shim"), ("Connection", "close"), *headers], body)
            status, _, got, _, elapsed = raw_exchange(data, response_only=True)
            what = f"{method} {path} {headers}"
            expect(status == 410, f"{what}: HTTP {status} {got[:100]!r}")
            expect(elapsed < 1, f"{what}: answered after {elapsed:.1f}s")
            if method != "HEAD":
                expect(json.loads(got) == GONE, f"{what}: {got!r}")


@test
def webhook_without_length_or_chunked_has_an_empty_body_and_does_not_wait():
    # RFC 9112, section 6.3: a request with neither has a body of length zero.
    headers = webhook_headers(b"")  # signed over the empty body
    status, _, got, _, elapsed = raw_exchange(http_request("POST", "/api/webhooks/clerk", headers),
                                              response_only=True)
    expect(elapsed < 1, f"answered after {elapsed:.1f}s")
    expect_status(status, 200, got)  # the signature over b"" verified: the body was empty
    expect(json.loads(got)["status"] == "dead_letter", got)


@test
def ambiguous_framing_and_malformed_header_lines_are_400_and_close_the_connection():
    body = user_event("user_framing")
    cl = ("Content-Length", str(len(body)))
    te = ("Transfer-Encoding", "chunked")
    cases = {  # name: (extra header lines, payload, HTTP version)
        "two Content-Length, same value": ([cl, cl], body, "HTTP/1.1"),
        "two Content-Length, different values": ([cl, ("Content-Length", "0")], body, "HTTP/1.1"),
        "Content-Length as a list": ([("Content-Length", f"{len(body)}, {len(body)}")], body, "HTTP/1.1"),
        "Content-Length with a sign": ([("Content-Length", f"+{len(body)}")], body, "HTTP/1.1"),
        "Content-Length then chunked": ([cl, te], chunked(body), "HTTP/1.1"),
        "chunked then Content-Length": ([te, cl], chunked(body), "HTTP/1.1"),
        "Transfer-Encoding gzip, chunked": ([("Transfer-Encoding", "gzip, chunked")], chunked(body), "HTTP/1.1"),
        "Transfer-Encoding chunked, chunked": ([("Transfer-Encoding", "chunked, chunked")], chunked(body), "HTTP/1.1"),
        "Transfer-Encoding identity": ([("Transfer-Encoding", "identity"), cl], body, "HTTP/1.1"),
        "two Transfer-Encoding headers": ([te, te], chunked(body), "HTTP/1.1"),
        "chunked in HTTP/1.0": ([te], chunked(body), "HTTP/1.0"),
        "a header line without a colon": ([b"X-No-Colon-Here\r\n", cl], body, "HTTP/1.1"),
        "whitespace before the colon": ([b"Transfer-Encoding : chunked\r\n", cl], body, "HTTP/1.1"),
        "a folded header line": ([b"X-Folded: a\r\n", b" b\r\n", cl], body, "HTTP/1.1"),
        "a bare LF ending a header line": ([b"Transfer-Encoding: chunked\n", cl], body, "HTTP/1.1"),
        "a NUL in a header value": ([b"X-Nul: a\x00b\r\n", cl], body, "HTTP/1.1"),
        "a chunk without its CRLF": ([te], b"5\r\nhelloXX\r\n0\r\n\r\n", "HTTP/1.1"),
        "a chunk size with 0x": ([te], b"0x5\r\nhello\r\n0\r\n\r\n", "HTTP/1.1"),
    }
    for name, (extra, payload, version) in cases.items():
        headers = webhook_headers(body)
        data = http_request("POST", "/api/webhooks/clerk", headers + extra, payload, version)
        status, _, got, closed, _ = raw_exchange(data, timeout=3)
        expect(status == 400, f"{name}: HTTP {status} {got[:100]!r}")
        expect(json.loads(got)["error"] in ("bad_framing", "bad_request"), f"{name}: {got!r}")
        expect(closed, f"{name}: the connection was left open")
        svix_id = dict(h for h in headers if isinstance(h, tuple))["svix-id"]
        expect(stored(svix_id) == "0", f"{name}: the delivery was processed")
    # The same delivery, framed plainly, is accepted on a connection that stays open.
    headers = webhook_headers(body)
    status, _, got, closed, _ = raw_exchange(http_request("POST", "/api/webhooks/clerk", headers + [cl], body),
                                             close_wait=1)
    expect_status(status, 200, got)
    expect(not closed, "a well-framed request closed the connection")


@test
def chunked_bodies_are_held_to_the_body_limit():
    for offset, want in ((-1, 200), (0, 200), (1, 413)):
        base = user_event(f"user_chunk_limit{offset + 1}")
        body = base + b" " * (MAX_BODY + offset - len(base))
        headers = webhook_headers(body) + [("Transfer-Encoding", "chunked")]
        data = http_request("POST", "/api/webhooks/clerk", headers, chunked(body, 65536))
        status, _, got, closed, _ = raw_exchange(data, timeout=10, response_only=want == 200)
        expect(status == want, f"limit{offset:+d}: HTTP {status} {got[:100]!r}")
        if want == 200:
            expect(json.loads(got)["status"] == "processed", got)
        else:
            expect(json.loads(got) == {"error": "payload_too_large"}, got)
            expect(closed, "the connection was left open after 413")
            expect(stored(dict(headers)["svix-id"]) == "0", "an oversize chunked body was stored")


def stream_into(port, head, first, pad, count, tail):
    """Sends head, then `first`, then `pad` `count` times, then `tail`, while another thread reads
    the answer, which may come (and the connection close) long before the sending ends."""
    sock = socket.create_connection((HOST, port), timeout=30)
    answer = {}

    def read():
        try:
            answer["response"] = read_response(sock, 30)
        except OSError as e:
            answer["error"] = repr(e)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        sock.sendall(head + first)
        for _ in range(count):
            sock.sendall(pad)
        sock.sendall(tail)
    except OSError:
        pass  # the shim answered and closed: expected
    reader.join(30)
    sock.close()
    expect("response" in answer, f"no answer: {answer}")
    return answer["response"]


@test
def a_100_mb_chunked_body_is_refused_early_and_memory_stays_flat():
    with PrivateShim("jnx-shim-bigbody") as shim:
        before = shim.rss()
        prefix = user_event("user_chunk_huge")
        pad = b" " * 65536
        count = (100 * 1024 * 1024) // len(pad)
        # Signed for real (the old shim would have stored it): HMAC over the whole 100 MB.
        msg_id, ts = svix.new_msg_id(), int(time.time())
        mac = hmac.new(svix.key_from_secret(SECRET), f"{msg_id}.{ts}.".encode() + prefix, hashlib.sha256)
        for _ in range(count):
            mac.update(pad)
        head = http_request("POST", "/api/webhooks/clerk", [
            ("Host", "shim"), ("svix-id", msg_id), ("svix-timestamp", str(ts)),
            ("svix-signature", "v1," + base64.b64encode(mac.digest()).decode()),
            ("Content-Type", "application/json"), ("Transfer-Encoding", "chunked")])
        status, _, got = stream_into(shim.port, head, f"{len(prefix):x}\r\n".encode() + prefix + b"\r\n",
                                     f"{len(pad):x}\r\n".encode() + pad + b"\r\n", count, b"0\r\n\r\n")
        expect_status(status, 413, got)
        expect(json.loads(got) == {"error": "payload_too_large"}, got)
        after = shim.rss()
        expect(after - before < 16, f"RSS {before:.0f} MB -> {after:.0f} MB")
        expect(stored(msg_id) == "0", "the 100 MB delivery was stored")


@test
def header_count_and_size_are_bounded_and_memory_stays_flat():
    with PrivateShim("jnx-shim-headers") as shim:
        def get_with(lines):
            data = http_request("GET", "/healthz", [("Host", "shim"), *lines])
            return raw_exchange(data, host=HOST, port=shim.port)

        # 100 header lines pass (Host and 99 more); 101 do not.
        status, _, got, _, _ = get_with([(f"X-H{i}", "v") for i in range(99)])
        expect_status(status, 200, got)
        status, _, got, closed, _ = get_with([(f"X-H{i}", "v") for i in range(100)])
        expect_status(status, 431, got)
        expect(json.loads(got) == {"error": "headers_too_large"} and closed, (got, closed))
        # At most 32 KiB in all.
        status, _, got, closed, _ = get_with([(f"X-H{i}", "v" * 1000) for i in range(40)])
        expect_status(status, 431, got)
        expect(closed, "connection left open after 431")
        # 20,000 lines of 4 KB, four times: refused early, nothing kept.
        before = shim.rss()
        line = b"X-Flood: " + b"a" * 4085 + b"\r\n"
        for _ in range(4):
            status, _, got = stream_into(shim.port, b"GET /healthz HTTP/1.1\r\nHost: shim\r\n", b"",
                                         line * 16, 20000 // 16, b"\r\n")
            expect_status(status, 431, got)
        after = shim.rss()
        expect(after - before < 16, f"RSS {before:.0f} MB -> {after:.0f} MB after four floods")


@test
def invalid_utf8_in_webhook_headers_or_org_is_400_before_the_database():
    body = user_event("user_utf8")
    cl = ("Content-Length", str(len(body)))
    # Invalid bytes, an overlong '/', a surrogate, a code point above U+10FFFF.
    bad_values = (b"msg_\xff\xfe", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80")
    names = (("svix-id", "svix-timestamp", "svix-signature"),
             ("webhook-id", "webhook-timestamp", "webhook-signature"))
    for scheme in names:
        for name in scheme:
            for bad in bad_values:
                h = svix.headers(SECRET, body)
                values = dict(zip(scheme, (h["svix-id"], h["svix-timestamp"], h["svix-signature"])))
                values[name] = bad
                rid = "utf8-" + os.urandom(6).hex()
                headers = [("Host", "shim"), ("X-Request-Id", rid), *values.items(), cl]
                status, _, got, _, _ = raw_exchange(http_request("POST", "/api/webhooks/clerk", headers, body),
                                                    response_only=True)
                what = f"{name}: {bad!r}"
                expect(status == 400, f"{what}: HTTP {status} {got[:100]!r}")
                expect(json.loads(got) == {"error": "malformed_headers"}, f"{what}: {got!r}")
                entry = log_entry(os.environ["JNX_SHIM_LOG"], rid)
                expect(entry is not None and "sqlstate" not in entry, f"{what}: the database was asked: {entry}")
    # ?org= (platform admins may name any org).
    admin = json.loads(user_event("user_utf8_admin", "Ula"))
    admin["data"]["public_metadata"] = {"role": "admin"}
    expect_status(deliver(json.dumps(admin).encode())[0], 200)
    token = mint(session_claims(f"user_utf8_admin_{RUN}"))
    for bad in ("%FF", "%C0%AF", "%ED%A0%80", "a%00b"):
        rid = "utf8-" + os.urandom(6).hex()
        status, _, got = request("GET", f"/api/admin/users?org={bad}", host=SHIM_HOST, port=SHIM_PORT,
                                 headers={"Authorization": "Bearer " + token, "X-Request-Id": rid})
        expect(status == 400 and json.loads(got) == {"error": "bad_request"}, f"org={bad}: {status} {got!r}")
        entry = log_entry(os.environ["JNX_SHIM_LOG"], rid)
        expect(entry is not None and "sqlstate" not in entry, f"org={bad}: the database was asked: {entry}")
    status, _, got = request("GET", "/api/admin/users?org=org_%C3%A9t%C3%A9", host=SHIM_HOST, port=SHIM_PORT,
                             headers={"Authorization": "Bearer " + token})
    expect_status(status, 200, got)  # valid UTF-8 passes


def scratch_sql(db, sql, **variables):
    args = ["psql", "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", "-d", db]
    for k, v in variables.items():
        args += ["-v", f"{k}={v}"]
    out = subprocess.run(args, input=sql, check=True, capture_output=True, text=True)
    return out.stdout.strip()


@contextlib.contextmanager
def scratch_database(name):
    """A database of our own with the extension and the cluster's key set and issuer, so that its
    functions can be replaced while the shared one keeps them. Dropped afterwards."""
    psql(f"DROP DATABASE IF EXISTS {name}")
    psql(f"CREATE DATABASE {name}")
    try:
        jwks = psql("SELECT jwks::text FROM jnx.token_config")
        scratch_sql(name, "SET client_min_messages = warning; CREATE EXTENSION jnx_auth;"
                          "SELECT jnx.set_jwks(:'jwks'); SELECT jnx.set_token_policy(ARRAY[:'iss'], '{}');",
                    jwks=jwks, iss=DEV_ISSUER)
        yield name
    finally:
        psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@test
def null_or_a_data_exception_from_the_database_is_never_200_empty_nor_500():
    # A database of our own whose jnx.me() we replace: the shared one keeps its functions.
    with scratch_database(f"jnx_fake_{RUN}") as scratch, \
            PrivateShim("jnx-shim-fake", database=scratch) as shim:
        auth = {"Authorization": "Bearer " + mint(session_claims(f"user_fake_{RUN}"))}
        status, _, got = shim.request("GET", "/api/me", headers=auth)
        expect_status(status, 200, got)  # the real jnx.me() first
        scratch_sql(scratch, "CREATE OR REPLACE FUNCTION jnx.me() RETURNS jsonb LANGUAGE sql "
                             "AS 'SELECT NULL::jsonb'")
        status, headers, got = shim.request("GET", "/api/me", headers=auth)
        expect_status(status, 503, got)
        expect(json.loads(got) == {"error": "no_result"} and headers.get("retry-after"), (got, headers))
        for code, want, reason in (("22021", 400, "bad_request"), ("22P02", 400, "bad_request"),
                                   ("22012", 500, "internal_error")):
            scratch_sql(scratch, "CREATE OR REPLACE FUNCTION jnx.me() RETURNS jsonb LANGUAGE plpgsql AS "
                                 f"$$BEGIN RAISE EXCEPTION 'fake' USING ERRCODE = '{code}'; END$$")
            status, _, got = shim.request("GET", "/api/me", headers=auth)
            expect(status == want and json.loads(got) == {"error": reason}, f"{code}: {status} {got!r}")


@test
def a_session_ends_with_its_request_on_the_pooled_connection():
    # The shim sends no BEGIN or COMMIT: authenticate (with the role switch) and the call are one
    # pipeline, one transaction, ended by its sync. With a pool of one connection, the next
    # request runs on the same backend: it must find the login role and no identity, after a
    # session that succeeded, one whose call failed, and one whose token was refused.
    with scratch_database(f"jnx_session_end_{RUN}") as scratch:
        # What the caller's transaction holds, seen from inside the call (me() runs as the
        # caller) and from inside the webhook function (a definer: 'role' is still the caller's).
        scratch_sql(scratch, "CREATE OR REPLACE FUNCTION jnx.me() RETURNS jsonb LANGUAGE sql AS "
                             "$$SELECT jsonb_build_object('role', current_user::text, 'user', jnx.user_id())$$;"
                             "CREATE OR REPLACE FUNCTION jnx.ingest_clerk_webhook(svix_id text, svix_timestamp text, "
                             "svix_signature text, body bytea) "
                             "RETURNS jsonb LANGUAGE sql SECURITY DEFINER AS "
                             "$$SELECT jsonb_build_object('status', 'processed', "
                             "'role', current_setting('role'), 'user', jnx.user_id())$$")
        user = f"user_session_end_{RUN}"
        auth = {"Authorization": "Bearer " + mint(session_claims(user))}
        body = user_event("user_session_end", "Ada")
        n = 0

        def next_request_sees_nothing(after):
            nonlocal n
            n += 1
            status, _, got = shim.deliver(body, svix.headers(SECRET, body, msg_id=f"msg_se_{RUN}_{n}"))
            expect_status(status, 200, got)
            expect(json.loads(got) == {"status": "processed", "role": "none", "user": None}, (after, got))

        with PrivateShim("jnx-shim-session-end", database=scratch, JNX_POOL_SIZE="1") as shim:
            next_request_sees_nothing("nothing yet")
            backend = shim.connections()
            expect(len(backend) == 1, backend)
            status, _, got = shim.request("GET", "/api/me", headers=auth)
            expect_status(status, 200, got)
            expect(json.loads(got) == {"role": "authenticated", "user": user}, got)
            next_request_sees_nothing("a session that committed")
            scratch_sql(scratch, "CREATE OR REPLACE FUNCTION jnx.me() RETURNS jsonb LANGUAGE plpgsql AS "
                                 "$$BEGIN RAISE EXCEPTION 'fake' USING ERRCODE = '22012'; END$$")
            status, _, got = shim.request("GET", "/api/me", headers=auth)
            expect_status(status, 500, got)
            next_request_sees_nothing("a session whose call failed")
            status, _, got = shim.request("GET", "/api/me", headers={"Authorization": "Bearer x.y.z"})
            expect_status(status, 401, got)
            next_request_sees_nothing("a refused token")
            # An error at the commit itself (a deferred constraint) is the transaction's error,
            # not a lost connection: 500 at once, no retry, the connection kept.
            scratch_sql(scratch, "CREATE TABLE public.parent (id int PRIMARY KEY);"
                                 "CREATE TABLE public.child (id int REFERENCES public.parent "
                                 "DEFERRABLE INITIALLY DEFERRED);"
                                 "CREATE OR REPLACE FUNCTION jnx.me() RETURNS jsonb LANGUAGE sql "
                                 "SECURITY DEFINER AS $$INSERT INTO public.child VALUES (1) "
                                 "RETURNING jsonb_build_object('role', current_user::text)$$")
            status, _, got = shim.request("GET", "/api/me", headers=auth)
            expect(status == 500 and json.loads(got) == {"error": "internal_error"}, (status, got))
            expect(scratch_sql(scratch, "SELECT count(*) FROM public.child") == "0", "the commit failed")
            next_request_sees_nothing("a commit that failed")
            expect(shim.connections() == backend, (backend, shim.connections()))
            # A response larger than the shim's 64 KiB output buffer arrives whole.
            scratch_sql(scratch, "CREATE OR REPLACE FUNCTION jnx.me() RETURNS jsonb LANGUAGE sql AS "
                                 "$$SELECT jsonb_build_object('pad', repeat('x', 300000), 'end', 'here')$$")
            status, _, got = shim.request("GET", "/api/me", headers=auth)
            expect_status(status, 200, got[:100])
            doc = json.loads(got)
            expect(len(doc["pad"]) == 300000 and doc["end"] == "here", len(got))


@test
def out_of_memory_mid_exchange_frees_the_pooled_connection():
    # The shim runs with C++ allocations over 1.5 MB failing (build/new_limit.so, LD_PRELOAD),
    # so copying a 2 MB answer out of libpq throws std::bad_alloc inside the database exchange.
    # That request's connection is closed; the pooled database connection must come back: with
    # a pool of one, the next request is answered at once, not 503 after the acquire timeout.
    preload = os.path.join(ROOT, "build", "new_limit.so")
    expect(os.path.exists(preload), "make tools builds build/new_limit.so")
    with scratch_database(f"jnx_oom_{RUN}") as scratch:
        scratch_sql(scratch, "CREATE OR REPLACE FUNCTION jnx.me() RETURNS jsonb LANGUAGE sql AS $$"
                             "SELECT CASE WHEN jnx.user_id() LIKE '%_big' "
                             "THEN jsonb_build_object('pad', repeat('x', 2000000)) "
                             "ELSE jsonb_build_object('user', jnx.user_id()) END$$")
        big = {"Authorization": "Bearer " + mint(session_claims(f"user_oom_{RUN}_big"))}
        small = {"Authorization": "Bearer " + mint(session_claims(f"user_oom_{RUN}_small"))}
        with PrivateShim("jnx-shim-oom", database=scratch, JNX_POOL_SIZE="1",
                         LD_PRELOAD=preload, JNX_TEST_NEW_LIMIT=str(1500 * 1000)) as shim:
            status, _, got = shim.request("GET", "/api/me", headers=small)
            expect_status(status, 200, got)
            backend = shim.connections()
            try:
                status, _, got = shim.request("GET", "/api/me", headers=big, timeout=10)
                expect(status != 200, (status, got[:100]))
            except (ConnectionError, http.client.HTTPException, OSError):
                pass  # the connection closed without an answer: what the shim does on bad_alloc
            for _ in range(3):
                started = time.monotonic()
                status, _, got = shim.request("GET", "/api/me", headers=small, timeout=10)
                expect_status(status, 200, got)
                expect(time.monotonic() - started < 1.0, "answered without waiting for a connection")
            expect(shim.proc.poll() is None, "the shim is still running")
            # The connection that saw the failure was closed, not reused mid-exchange.
            expect(shim.connections() != backend, (backend, shim.connections()))


# --- the database failing under the shim ----------------------------------------

KILLED_BACKENDS = []  # deliberately killed: not crashes for no_backend_crashed_during_the_suite


def wait_for_database(limit=60):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if subprocess.run(["psql", "-X", "-tAc", "SELECT 1"], capture_output=True).returncode == 0:
            return
        time.sleep(0.1)
    raise AssertionError("the database did not come back")


def warm_pool(shim, n):
    """Until the shim holds n connections: concurrent requests make it open them."""
    for _ in range(30):
        concurrently(2 * n, lambda i: shim.request("GET", "/readyz")[0])
        if len(shim.backends()) >= n:
            return
    raise AssertionError(f"{shim.name} holds {len(shim.backends())} connections, not {n}")


def recovers_from(tag, fault):
    """A private shim with a pool of 2 takes a stream of deliveries; a third of the way, the stream
    pauses and `fault(shim)` breaks the database and returns the moment it serves again; /api/me is
    asked until it answers 200, then the stream resumes. The pause matters: connections idle across
    the fault, first used after the server's return by a session transaction, are what made the old
    shim spin (a request during the outage closes them all).
    Every delivery ends 200 or 503; /api/me is 200 again within 10 s of the server's return; a
    Svix-style resend applies each event exactly once; the idle shim then uses no CPU."""
    with PrivateShim(f"jnx-shim-{tag}", JNX_POOL_SIZE="2") as shim:
        auth = {"Authorization": "Bearer " + mint(session_claims(f"user_{tag}_me_{RUN}"))}
        expect_status(shim.request("GET", "/api/me", headers=auth)[0], 200)
        warm_pool(shim, 2)
        before = set(shim.backends())
        total = 120
        bodies = [user_event(f"user_{tag}_{i}", f"N{i}") for i in range(total)]
        heads = [svix.headers(SECRET, b, msg_id=f"msg_{tag}_{RUN}_{i}") for i, b in enumerate(bodies)]
        statuses = [None] * total
        lock = threading.Lock()
        next_index = [0]
        in_flight = [0]
        flowing = threading.Event()
        flowing.set()
        recovered = {}

        def worker():
            while True:
                flowing.wait()
                with lock:
                    i = next_index[0]
                    if i >= total:
                        return
                    next_index[0] += 1
                    in_flight[0] += 1
                try:
                    statuses[i] = shim.deliver(bodies[i], heads[i], timeout=30)[0]
                except OSError as e:
                    statuses[i] = f"error {e!r}"
                finally:
                    with lock:
                        in_flight[0] -= 1

        def breaker():
            while next_index[0] < total // 3:
                time.sleep(0.01)
            flowing.clear()
            while in_flight[0] > 0:
                time.sleep(0.01)
            try:
                back = fault(shim)
                # /api/me first: its one-round-trip transaction is where the old shim spun.
                while time.monotonic() - back < 15:
                    try:
                        if shim.request("GET", "/api/me", headers=auth, timeout=5)[0] == 200:
                            recovered["after"] = time.monotonic() - back
                            return
                    except OSError:
                        pass
                    time.sleep(0.1)
            finally:
                flowing.set()

        threads = [threading.Thread(target=worker) for _ in range(4)] + [threading.Thread(target=breaker)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        time.sleep(0.5)
        cpu_before = shim.cpu()
        time.sleep(3)
        idle_cpu = shim.cpu() - cpu_before
        seen = sorted({str(s) for s in statuses})
        expect(set(seen) <= {"200", "503"}, f"answers other than 200/503: {seen}")
        expect(not before & set(shim.backends()), "a connection survived the fault: it proved nothing")
        expect(recovered.get("after", 99) < 10,
               f"/api/me not 200 within 10 s of the server's return ({recovered}); idle CPU {idle_cpu:.2f}s")
        expect(idle_cpu < 0.1, f"the idle shim used {idle_cpu:.2f}s of CPU in 3 s: a thread spins")
        pending = [i for i, s in enumerate(statuses) if s != 200]
        for _ in range(20):
            pending = [i for i in pending if shim.deliver(bodies[i], heads[i])[0] != 200]
            if not pending:
                break
            time.sleep(0.5)
        expect(not pending, f"{len(pending)} deliveries never accepted")
        applied = psql(f"SELECT count(*) FROM jnx.webhook_events WHERE svix_id LIKE 'msg_{tag}_{RUN}_%' "
                       "AND status = 'processed'")
        users = psql(f"SELECT count(*) FROM jnx.users WHERE clerk_user_id LIKE 'user_{tag}_%_{RUN}' "
                     f"AND clerk_user_id NOT LIKE 'user_{tag}_me_%'")
        expect((applied, users) == (str(total), str(total)), f"processed={applied} users={users} for {total}")
        print(f"# {tag}: /api/me 200 again {recovered['after']:.2f}s after the server's return; "
              f"{sum(1 for s in statuses if s != 200)} of {total} first answered 503; idle CPU {idle_cpu:.3f}s")
        return recovered["after"]


@test
def pool_of_two_recovers_from_an_immediate_shutdown_without_spinning():
    def immediate(shim):
        cluster("db-stop", "immediate")
        time.sleep(1.5)
        cluster("db-start")
        return time.monotonic()

    recovers_from("immediate", immediate)


@test
def pool_of_two_recovers_from_a_killed_backend_without_spinning():
    def sigkill(shim):
        # Kill the connection used second, not the one used first: the server then ends the first
        # one itself (a warning, then EOF), and that is what the old shim spun on. Killing the
        # first one instead made the old shim find it dead and close the other, by luck.
        shim.request("GET", "/readyz")
        mine = set(shim.backends())
        pids = [int(p) for p in psql("SELECT pid FROM pg_stat_activity ORDER BY state_change DESC").split()
                if int(p) in mine]
        expect(len(pids) == 2, f"backends {pids}")
        pid = pids[1]
        KILLED_BACKENDS.append(pid)
        os.kill(pid, signal.SIGKILL)  # the server restarts every backend (crash recovery)
        time.sleep(0.5)
        wait_for_database()
        return time.monotonic()

    recovers_from("sigkill", sigkill)


@test
def the_first_request_after_a_restart_finds_its_idle_connections_dead_before_using_them():
    # /readyz makes one attempt, no retry: it is 200 after a restart only if the idle connections
    # the server ended (a goodbye message, then EOF) are noticed and replaced before use.
    with PrivateShim("jnx-shim-restart", JNX_POOL_SIZE="2") as shim:
        warm_pool(shim, 2)
        for mode in ("fast", "immediate"):
            cluster("db-stop", mode)
            cluster("db-start")
            for _ in range(3):
                status, _, data = shim.request("GET", "/readyz")
                expect(status == 200, f"after a {mode} stop: /readyz {status} {data!r}")


@test
def a_query_blocked_by_a_lock_is_503_at_the_statement_timeout_and_frees_its_slot():
    with PrivateShim("jnx-shim-timeout", JNX_POOL_SIZE="1", JNX_STATEMENT_TIMEOUT_MS="1000") as shim:
        expect_status(shim.request("GET", "/readyz")[0], 200)
        connections = shim.connections()
        body = user_event("user_timeout")
        headers = svix.headers(SECRET, body)
        locker = subprocess.Popen(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            locker.stdin.write("BEGIN;\nLOCK TABLE jnx.webhook_events IN ACCESS EXCLUSIVE MODE;\n\\echo locked\n")
            locker.stdin.flush()
            line = locker.stdout.readline().strip()
            expect(line == "locked", f"psql: {line}")
            started = time.monotonic()
            status, resp_headers, data = shim.deliver(body, headers, timeout=15)
            elapsed = time.monotonic() - started
            expect_status(status, 503, data)
            expect(json.loads(data) == {"error": "statement_timeout"}, data)
            expect(resp_headers.get("retry-after"), f"no Retry-After: {resp_headers}")
            # The server's own statement_timeout ended the query (through PgBouncer too, where it is
            # set per transaction): before the shim's deadline (1 s + 1 s margin), on a connection
            # kept. The deadline would have dropped the connection.
            expect(0.9 <= elapsed < 1.8, f"answered after {elapsed:.2f}s with a 1 s statement timeout")
            expect(shim.connections() == connections, "the connection was dropped: the server did not time out")
            # The pool's only connection is free again at once.
            started = time.monotonic()
            status, _, data = shim.request("GET", "/readyz", timeout=5)
            expect(status == 200 and time.monotonic() - started < 1, f"readyz {status} {data!r}")
        finally:
            locker.stdin.write("COMMIT;\n")
            locker.stdin.close()
            locker.wait(timeout=10)
        status, _, data = shim.deliver(body, headers)
        expect_status(status, 200, data)
        expect(json.loads(data)["status"] == "processed", data)
        expect(json.loads(shim.deliver(body, headers)[2])["status"] == "duplicate", "resend not a duplicate")
        expect(stored(headers["svix-id"]) == "1", "stored more than once")
        print(f"# statement timeout 1 s: 503 after {elapsed:.2f}s")


@test
def a_server_that_stops_answering_is_given_up_at_the_client_deadline():
    with PrivateShim("jnx-shim-frozen", JNX_POOL_SIZE="1", JNX_STATEMENT_TIMEOUT_MS="1000") as shim:
        expect_status(shim.request("GET", "/readyz")[0], 200)
        pids = shim.backends()
        expect(len(pids) == 1, f"backends {pids}")
        body = user_event("user_frozen")
        headers = svix.headers(SECRET, body)
        os.kill(pids[0], signal.SIGSTOP)  # its statement_timeout cannot fire: only our deadline can
        try:
            started = time.monotonic()
            status, resp_headers, data = shim.deliver(body, headers, timeout=15)
            elapsed = time.monotonic() - started
        finally:
            os.kill(pids[0], signal.SIGCONT)
        expect_status(status, 503, data)
        expect(json.loads(data) == {"error": "statement_timeout"} and resp_headers.get("retry-after"), data)
        expect(1.5 <= elapsed < 3.5, f"answered after {elapsed:.2f}s (1 s timeout + 1 s margin)")
        # The frozen connection was dropped, never reused: the resend succeeds on a new one. The old
        # backend, resumed, may have applied it first: either way exactly once.
        status, _, data = shim.deliver(body, headers)
        expect_status(status, 200, data)
        expect(json.loads(data)["status"] in ("processed", "duplicate"), data)
        expect(stored(headers["svix-id"]) == "1", "stored more than once")
        deadline = time.monotonic() + 5
        while pids[0] in shim.backends() and time.monotonic() < deadline:
            time.sleep(0.1)
        expect(pids[0] not in shim.backends(), "the abandoned backend is still there")
        print(f"# client deadline (1 s + 1 s margin): 503 after {elapsed:.2f}s")


@test
def sigterm_finishes_the_request_in_flight_and_exits_0():
    port = free_port()
    log = open(os.path.join(os.environ["JNX_BASE"], "shim-drain.log"), "w")
    conninfo, pooled, bouncer = shim_database("jnx-shim-drain", user=os.environ["PGUSER"])
    env = dict(os.environ, JNX_LISTEN=f"{HOST}:{port}", JNX_DATABASE_URL=conninfo, **pooled)
    if bouncer is not None:
        bouncer.start()
    proc = subprocess.Popen([os.path.join(ROOT, "shim", "jnx-shim")], env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        for _ in range(100):
            try:
                socket.create_connection((HOST, port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        body = user_event("user_shim_drain")
        headers = svix.headers(SECRET, body)
        head = "POST /api/webhooks/clerk HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        head += f"Content-Length: {len(body)}\r\n\r\n"
        sock = socket.create_connection((HOST, port), timeout=10)
        sock.sendall(head.encode() + body[:100])      # the request is now in flight
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        refused = False
        try:
            socket.create_connection((HOST, port), timeout=1).close()
        except OSError:
            refused = True
        expect(refused, "new connections still accepted after SIGTERM")
        sock.sendall(body[100:])
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        sock.close()
        expect(answer.startswith(b"HTTP/1.1 200"), f"in-flight request got {answer[:80]!r}")
        expect(b'"processed"' in answer, answer[-120:])
        expect(proc.wait(timeout=10) == 0, f"exit code {proc.returncode}")
    finally:
        if proc.poll() is None:
            proc.kill()
        if bouncer is not None:
            bouncer.stop()
        log.close()


# --- /metrics -------------------------------------------------------------------

PROMTOOL = "promtool"
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
ROUTE_PATTERNS = {"/api/webhooks/clerk", "/api/me", "/api/me/export", "/api/admin/users", "/healthz",
                  "/readyz", "/metrics", "/api/auth/login", "/api/auth/signup", "/api/auth/user",
                  "unmatched"}


def scrape(host=None, port=None, timeout=10):
    """The shim's /metrics, asked of the shim itself (the edge answers 404): (text, seconds)."""
    started = time.monotonic()
    status, headers, data = request("GET", "/metrics", host=host or SHIM_HOST, port=port or SHIM_PORT,
                                    timeout=timeout)
    elapsed = time.monotonic() - started
    expect_status(status, 200, data)
    expect(headers.get("content-type") == METRICS_TYPE, f"content-type {headers.get('content-type')}")
    return data.decode(), elapsed


def promtool_check(text):
    out = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True)
    return out.returncode, (out.stdout + out.stderr).strip()


def parse_metrics(text):
    """{(name, frozenset of label pairs): value} of every sample line."""
    import re
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)', line)
        expect(m, f"not a sample line: {line!r}")
        labels = re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(2) or "")
        key = (m.group(1), frozenset(labels))
        expect(key not in samples, f"sample twice: {line!r}")
        samples[key] = float(m.group(3))
    return samples


def metric(samples, name, **labels):
    """The sum of the samples of `name` whose labels include `labels` (0 when none)."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


def has_metric(samples, name):
    return any(n == name for n, _ in samples)


@test
def metrics_are_prometheus_text_that_promtool_accepts():
    text, _ = scrape()
    code, out = promtool_check(text)
    expect(code == 0, f"promtool check metrics exited {code}: {out[:500]}")
    # The check can fail: a broken copy of the same text is refused.
    broken = text.replace("# TYPE jnx_up gauge", "# TYPE jnx_up counter")
    expect(broken != text and promtool_check(broken)[0] != 0, "promtool accepted a counter without _total")
    samples = parse_metrics(text)
    version = psql("SELECT extversion FROM pg_extension WHERE extname = 'jnx_auth'")
    expect(metric(samples, "jnx_build_info", version=version) == 1, f"no jnx_build_info for {version}")
    expect(metric(samples, "jnx_up") == 1 and metric(samples, "jnx_stats_up") == 1, "jnx_up/jnx_stats_up")
    expect(abs(metric(samples, "jnx_process_start_time_seconds") - time.time()) < 86400 * 30, "start time")
    pool_size = int(os.environ.get("JNX_POOL_SIZE") or 8)
    expect(metric(samples, "jnx_db_pool_size") == pool_size, f"pool size is not {pool_size}")
    # GET and HEAD only.
    status, headers, data = request("HEAD", "/metrics", host=SHIM_HOST, port=SHIM_PORT)
    expect(status == 200 and data == b"" and headers.get("content-type") == METRICS_TYPE, (status, headers))
    for method in ("POST", "PUT", "DELETE", "OPTIONS"):
        status, _, data = request(method, "/metrics", host=SHIM_HOST, port=SHIM_PORT)
        expect(status == 404 and json.loads(data) == {"error": "not_found"}, f"{method}: {status} {data!r}")


@test
def metrics_count_known_traffic_exactly():
    now = int(time.time())
    user = f"user_metrics_{RUN}"
    good = mint(session_claims(user))
    h64, p64, s64 = good.split(".")
    tokens = {  # reason label -> a token the database refuses for that reason
        "expired": mint(session_claims(user, exp=now - 600, iat=now - 1200, nbf=now - 1200)),
        "malformed": "hello",
        "signature": f"{h64}.{p64}.{s64[:10]}{'A' if s64[10] != 'A' else 'B'}{s64[11:]}",
        "issuer": mint(session_claims(user, iss="https://evil.example")),
        "not_yet_valid": mint(session_claims(user, nbf=now + 600)),
    }
    body = user_event("user_metrics")
    headers = svix.headers(SECRET, body)
    forged = user_event("user_metrics_forged")
    shim = lambda *a, **kw: request(*a, host=SHIM_HOST, port=SHIM_PORT, **kw)

    before = parse_metrics(scrape()[0])
    answers = [json.loads(shim("POST", "/api/webhooks/clerk", body, headers)[2]).get("status"),
               json.loads(shim("POST", "/api/webhooks/clerk", body, headers)[2]).get("status")]
    expect(answers == ["processed", "duplicate"], answers)
    status, _, data = shim("POST", "/api/webhooks/clerk", forged.replace(b"Ada", b"Eve"),
                           svix.headers(SECRET, forged))
    expect(status == 400 and json.loads(data) == {"error": "bad_signature"}, (status, data))
    for reason, token in tokens.items():
        status, _, data = shim("GET", "/api/me", headers={"Authorization": "Bearer " + token})
        expect(status == 401 and json.loads(data) == {"error": "invalid_token"}, f"{reason}: {status} {data!r}")
    status, _, data = shim("GET", "/api/me")
    expect(status == 401 and json.loads(data) == {"error": "missing_token"}, (status, data))
    status, _, data = shim("GET", "/api/me", headers={"Authorization": "Bearer " + good})
    expect_status(status, 200, data)
    status, _, _ = shim("HEAD", "/healthz")
    expect_status(status, 200)
    status, _, _ = shim("GET", f"/api/nothing/{user}?email={user}@example.com")
    expect_status(status, 404)
    after = parse_metrics(scrape()[0])

    def delta(name, **labels):
        return metric(after, name, **labels) - metric(before, name, **labels)

    want = {
        ("jnx_webhook_outcomes_total", "outcome", "processed"): 1,
        ("jnx_webhook_outcomes_total", "outcome", "duplicate"): 1,
        ("jnx_webhook_outcomes_total", "outcome", "stale"): 0,
        ("jnx_webhook_outcomes_total", "outcome", "ignored"): 0,
        ("jnx_webhook_outcomes_total", "outcome", "dead_letter"): 0,
        ("jnx_webhook_rejected_total", "reason", "bad_signature"): 1,
        ("jnx_token_failures_total", "reason", "missing_token"): 1,
        ("jnx_token_failures_total", "reason", "unknown_key"): 0,
        ("jnx_db_errors_total", "class", "JX"): 1 + len(tokens),
        ("jnx_db_errors_total", "class", "unavailable"): 0,
    }
    for reason in tokens:
        want[("jnx_token_failures_total", "reason", reason)] = 1
    for (name, label, value), n in want.items():
        got = delta(name, **{label: value})
        expect(got == n, f"{name}{{{label}={value!r}}} moved by {got}, expected {n}")
    for name, n in (("jnx_webhook_rejected_total", 1), ("jnx_token_failures_total", len(tokens) + 1),
                    ("jnx_webhook_outcomes_total", 2), ("jnx_db_errors_total", len(tokens) + 1)):
        expect(delta(name) == n, f"{name} moved by {delta(name)} in all, expected {n}")
    requests = {  # (route, method, status): count; the first scrape is counted by the second
        ("/api/webhooks/clerk", "POST", "200"): 2,
        ("/api/webhooks/clerk", "POST", "400"): 1,
        ("/api/me", "GET", "401"): len(tokens) + 1,
        ("/api/me", "GET", "200"): 1,
        ("/healthz", "HEAD", "200"): 1,
        ("unmatched", "GET", "404"): 1,
        ("/metrics", "GET", "200"): 1,
    }
    for (route, method, status), n in requests.items():
        got = delta("jnx_http_requests_total", route=route, method=method, status=status)
        expect(got == n, f"requests {route} {method} {status} moved by {got}, expected {n}")
    total = sum(requests.values())
    expect(delta("jnx_http_requests_total") == total,
           f"jnx_http_requests_total moved by {delta('jnx_http_requests_total')}, expected {total}")
    # The histogram counted the same requests, route by route, and its +Inf bucket is its count.
    for route in {r for r, _, _ in requests}:
        count = delta("jnx_http_request_duration_seconds_count", route=route)
        expect(count == delta("jnx_http_requests_total", route=route),
               f"{route}: histogram count moved by {count}, requests by "
               f"{delta('jnx_http_requests_total', route=route)}")
        inf = metric(after, "jnx_http_request_duration_seconds_bucket", route=route, le="+Inf")
        expect(inf == metric(after, "jnx_http_request_duration_seconds_count", route=route), route)
    expect(delta("jnx_http_request_duration_seconds_count") == total, "histogram count in all")
    expect(0 < delta("jnx_http_request_duration_seconds_sum", route="/api/webhooks/clerk") < 10,
           "webhook latency sum")
    expect(metric(after, "jnx_db_pool_in_use") == 0 and metric(after, "jnx_db_pool_waiting") == 0,
           "an idle pool reported busy")


def stats_from_psql():
    return json.loads(psql("SELECT jnx.stats()::text"))


def expect_stats_match(samples, stats, slack):
    """The scraped jnx.stats() gauges against the function's own answer; ages within `slack` s."""
    for status, n in stats["webhook_events_24h"].items():
        got = metric(samples, "jnx_webhook_events_24h", status=status)
        expect(got == n, f"jnx_webhook_events_24h{{status={status}}} {got} != {n}")
    for key in ("dead_letters_waiting", "provisional_users_over_1h", "erasures_waiting"):
        expect(metric(samples, f"jnx_{key}") == stats[key] and has_metric(samples, f"jnx_{key}"),
               f"jnx_{key} {metric(samples, f'jnx_{key}')} != {stats[key]}")
    ages = [("jnx_oldest_dead_letter_age_seconds", {}, stats["oldest_dead_letter_age_seconds"])]
    ages += [("jnx_config_age_seconds", {"setting": k}, v) for k, v in stats["config_age_seconds"].items()]
    for name, labels, want in ages:
        key = (name, frozenset(labels.items()))
        if want is None:
            expect(key not in samples, f"{name}{labels} present for a NULL")
        else:
            expect(key in samples and abs(samples[key] - want) <= slack, f"{name}{labels} {samples.get(key)} != {want}")


@test
def metrics_stats_gauges_match_jnx_stats_and_are_cached():
    # A dead letter (and with it an oldest age) whatever ran before.
    expect(json.loads(deliver(b"{not json")[2])["status"] == "dead_letter", "no dead letter")
    with PrivateShim("jnx-shim-stats", JNX_STATS_CACHE_SECONDS="0") as shim:
        samples = parse_metrics(scrape(port=shim.port)[0])
        stats = stats_from_psql()
        expect(metric(samples, "jnx_stats_up") == 1, "jnx_stats_up is not 1")
        expect(stats["dead_letters_waiting"] > 0, stats)
        expect(0 <= metric(samples, "jnx_stats_age_seconds") < 1, "a cache of 0 s served old values")
        expect_stats_match(samples, stats, slack=2)
    with PrivateShim("jnx-shim-stats-cache", JNX_STATS_CACHE_SECONDS="3") as shim:
        first = parse_metrics(scrape(port=shim.port)[0])
        waiting = metric(first, "jnx_dead_letters_waiting")
        expect(json.loads(deliver(b"{still not json")[2])["status"] == "dead_letter", "no dead letter")
        expect(stats_from_psql()["dead_letters_waiting"] == waiting + 1, "the dead letter did not count")
        cached = parse_metrics(scrape(port=shim.port)[0])
        expect(metric(cached, "jnx_dead_letters_waiting") == waiting, "not served from the cache")
        expect(metric(cached, "jnx_stats_age_seconds") > 0, "the cached values have no age")
        time.sleep(3.2)
        fresh = parse_metrics(scrape(port=shim.port)[0])
        expect(metric(fresh, "jnx_dead_letters_waiting") == waiting + 1, "not refreshed after 3 s")
        expect_stats_match(fresh, stats_from_psql(), slack=2)


@test
def metrics_answer_at_once_with_the_pool_exhausted_or_the_database_down():
    with PrivateShim("jnx-shim-exhausted", JNX_POOL_SIZE="1", JNX_STATS_CACHE_SECONDS="0",
                     JNX_STATEMENT_TIMEOUT_MS="4000") as shim:
        expect_status(shim.request("GET", "/readyz")[0], 200)
        locker = subprocess.Popen(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        results = []
        threads = []
        try:
            locker.stdin.write("BEGIN;\nLOCK TABLE jnx.webhook_events IN ACCESS EXCLUSIVE MODE;\n\\echo locked\n")
            locker.stdin.flush()
            expect(locker.stdout.readline().strip() == "locked", "psql did not lock")
            for name in ("holder", "waiter"):  # the first holds the only connection, the second waits
                body = user_event(f"user_metrics_{name}")
                threads.append(threading.Thread(target=lambda b=body: results.append(
                    shim.deliver(b, svix.headers(SECRET, b), timeout=15)[0])))
                threads[-1].start()
                time.sleep(0.3)
            text, elapsed = scrape(port=shim.port)
            samples = parse_metrics(text)
            threads[1].join(timeout=10)  # the waiter gives up (503) after the pool's 2 s
            expect(elapsed < 1, f"/metrics took {elapsed:.2f}s with the pool exhausted")
            expect(metric(samples, "jnx_stats_up") == 0, "jnx_stats_up is not 0 without a free connection")
            expect(not has_metric(samples, "jnx_dead_letters_waiting"), "stats gauges without stats")
            pool = [metric(samples, f"jnx_db_pool_{k}") for k in ("size", "in_use", "waiting")]
            expect(pool == [1, 1, 1], f"pool size/in_use/waiting {pool}")
            expect(metric(samples, "jnx_db_errors_total", **{"class": "unavailable"}) >= 1, "no unavailable error")
            expect(promtool_check(text)[0] == 0, "promtool refused the scrape without stats")
        finally:
            locker.stdin.write("COMMIT;\n")
            locker.stdin.close()
            locker.wait(timeout=10)
            for t in threads:
                t.join()
        expect(results == [503, 200], f"deliveries (waiter, holder) {results}")

    with PrivateShim("jnx-shim-dbdown", JNX_STATS_CACHE_SECONDS="0") as shim:
        expect(metric(parse_metrics(scrape(port=shim.port)[0]), "jnx_stats_up") == 1, "stats down at start")
        cluster("db-stop")
        try:
            for target in (shim.port, SHIM_PORT):  # ours, and the cluster's shim (cache 10 s)
                text, elapsed = scrape(port=target)
                expect(elapsed < 1, f"/metrics took {elapsed:.2f}s with the database down")
                expect(promtool_check(text)[0] == 0, "promtool refused the scrape with the database down")
            # Direct, the refresh fails at once; through a pooler that queues
            # the query (PgBouncer's query_wait_timeout), only once the pooler
            # gives up. Every scrape meanwhile is answered at once.
            deadline = time.monotonic() + 10
            while True:
                text, elapsed = scrape(port=shim.port)
                expect(elapsed < 1, f"/metrics took {elapsed:.2f}s with the database down")
                samples = parse_metrics(text)
                if metric(samples, "jnx_stats_up") == 0:
                    break
                expect(time.monotonic() < deadline, "jnx_stats_up not 0 within 10 s of the database's stop")
                time.sleep(0.2)
            expect(not has_metric(samples, "jnx_stats_age_seconds"), "stats age without stats")
        finally:
            cluster("db-start")
        deadline = time.monotonic() + 10
        while metric(parse_metrics(scrape(port=shim.port)[0]), "jnx_stats_up") != 1:
            expect(time.monotonic() < deadline, "jnx_stats_up not back to 1 within 10 s of the restart")
            time.sleep(0.2)


@test
def metrics_labels_hold_only_bounded_values_and_no_personal_data():
    user = f"user_metrics_pii_{RUN}"
    email = f"{user}@example.com"
    token = mint(session_claims(user))
    body = user_event("user_metrics_pii", email=email)
    headers = svix.headers(SECRET, body)
    shim = lambda *a, **kw: request(*a, host=SHIM_HOST, port=SHIM_PORT, **kw)
    expect_status(shim("POST", "/api/webhooks/clerk", body, headers)[0], 200)
    expect_status(shim("GET", "/api/me", headers={"Authorization": "Bearer " + token})[0], 200)
    # Paths, query strings and methods a client chooses never become label values.
    for method, path in (("GET", f"/api/me/{user}"), ("GET", f"/api/admin/users?org={email}"),
                         ("PATCH", f"/{headers['svix-id']}"), ("PUT", f"/api/webhooks/clerk?{token[:40]}"),
                         ("DELETE", "/metrics/" + RUN)):
        shim(method, path, headers={"Authorization": "Bearer " + token})
    raw_exchange(f"FOO{RUN} /x{RUN} HTTP/1.1\r\nHost: x\r\n\r\n".encode(), response_only=True)
    text, _ = scrape()
    samples = parse_metrics(text)
    allowed = {
        "route": lambda v: v in ROUTE_PATTERNS,
        "method": lambda v: v in {"GET", "HEAD", "POST", "OPTIONS", "other"},
        # An HTTP status, or a ledger status (jnx_webhook_events_24h).
        "status": lambda v: (len(v) == 3 and v.isdigit()) or
                            v in {"processing", "processed", "stale", "ignored", "dead_letter"},
        "le": lambda v: v == "+Inf" or float(v) > 0,
        "outcome": lambda v: v in {"processed", "duplicate", "stale", "ignored", "dead_letter"},
        "reason": lambda v: v.replace("_", "").isalpha() and v.islower() and len(v) < 32,
        "class": lambda v: v == "unavailable" or (len(v) == 2 and v.isalnum() and v.upper() == v),
        "setting": lambda v: v in {"webhook_secrets", "token_config"},
        "version": lambda v: v == psql("SELECT extversion FROM pg_extension WHERE extname = 'jnx_auth'"),
    }
    for name, labels in samples:
        for key, value in labels:
            expect(key in allowed and allowed[key](value), f"{name}: label {key}={value!r}")
    for needle in (user, email, RUN, token[:24], token[-24:], headers["svix-id"], "example.com", "127.0.0"):
        expect(needle not in text, f"/metrics holds {needle!r}")
    expect(metric(samples, "jnx_http_requests_total", route="unmatched", method="other") >= 2,
           "unknown methods not counted as other")


# --- CORS -----------------------------------------------------------------------

CORS_ORIGINS = [o for o in os.environ.get("JNX_CORS_ORIGINS", "").split(",") if o]
SESSION_ROUTES = ("/api/me", "/api/me/export", "/api/admin/users")
# Near misses of a listed origin (https://app.jnx.test in the test instance): none may pass.
CORS_REFUSED = ("https://evil.test", "https://app.jnx.test.evil.test", "https://evilapp.jnx.test",
                "https://APP.JNX.TEST", "HTTPS://app.jnx.test", "https://app.jnx.test/",
                "https://app.jnx.test:443", "http://app.jnx.test", "https://app.jnx.test:8443", "null",
                "https://app.jnx.test%00", "", "*")


def header_list(method, path, headers=(), host=None, port=None):
    """(status, [(name lower-case, value)] in order, body): repeated headers kept apart."""
    conn = http.client.HTTPConnection(host or SHIM_HOST, port or SHIM_PORT, timeout=10)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for k, v in headers:
            conn.putheader(k, v)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, [(k.lower(), v) for k, v in resp.getheaders()], resp.read()
    finally:
        conn.close()


def cors_headers(headers):
    return {k: v for k, v in headers if k.startswith("access-control-")}


def preflight(path, origin, method="GET", host=None, port=None, extra=()):
    h = [("Origin", origin)] if origin is not None else []
    if method is not None:
        h.append(("Access-Control-Request-Method", method))
    return header_list("OPTIONS", path, h + list(extra), host, port)


@test
def cors_preflights_and_requests_from_listed_origins_only():
    expect(CORS_ORIGINS[:1] == ["https://app.jnx.test"], f"the test instance's JNX_CORS_ORIGINS: {CORS_ORIGINS}")
    token = mint(session_claims(f"user_cors_{RUN}"))
    for path in SESSION_ROUTES:
        for origin in CORS_ORIGINS:
            for method in ("GET", "HEAD"):
                status, headers, body = preflight(path, origin, method, extra=[
                    ("Access-Control-Request-Headers", "authorization,content-type")])
                expect(status == 204 and body == b"", f"{path} {origin} {method}: {status} {body!r}")
                expect(cors_headers(headers) == {
                    "access-control-allow-origin": origin,
                    "access-control-allow-methods": "GET, HEAD",
                    "access-control-allow-headers": "Authorization, Content-Type, X-Request-Id",
                    "access-control-max-age": "600"}, f"{path} {origin}: {headers}")
                vary = [v for k, v in headers if k == "vary"]
                expect(vary == ["Origin, Access-Control-Request-Method, Access-Control-Request-Headers"], vary)
                expect(not any(k in ("content-length", "content-type") for k, _ in headers) or
                       dict(headers).get("content-length") == "0", f"a 204 with a body header: {headers}")
                expect(dict(headers).get("x-request-id"), "no X-Request-Id on a preflight")
        # Refused: near misses, no Origin, two Origins, a method the route does not serve.
        refused = [(o, "GET", ()) for o in CORS_REFUSED] + [(None, "GET", ())]
        refused += [(CORS_ORIGINS[0], m, ()) for m in ("POST", "DELETE", "get", None)]
        refused += [(CORS_ORIGINS[0], "GET", [("Origin", CORS_ORIGINS[0])])]
        for origin, method, extra in refused:
            status, headers, body = preflight(path, origin, method, extra=extra)
            what = f"{path} origin={origin!r} method={method!r} extra={extra}"
            expect(status == 403 and json.loads(body) == {"error": "cors_not_allowed"}, f"{what}: {status} {body!r}")
            expect(not cors_headers(headers), f"{what}: {headers}")
            expect(dict(headers).get("vary", "").startswith("Origin"), f"{what}: no Vary: {headers}")
    # Actual requests: a listed origin may read the answer (200 and errors alike), others may not;
    # every answer varies by Origin.
    expose = "X-Request-Id, Retry-After, Content-Disposition, WWW-Authenticate"
    for path in SESSION_ROUTES:
        for auth in ([("Authorization", "Bearer " + token)], []):
            status, headers, _ = header_list("GET", path, [("Origin", CORS_ORIGINS[-1])] + auth)
            expect(status in (200, 401, 403), f"{path}: {status}")
            expect(cors_headers(headers) == {"access-control-allow-origin": CORS_ORIGINS[-1],
                                             "access-control-expose-headers": expose}, f"{path}: {headers}")
            expect([v for k, v in headers if k == "vary"] == ["Origin"], f"{path}: {headers}")
            for origin in [o for o in CORS_REFUSED if o] + [None]:
                h = [("Origin", origin)] if origin is not None else []
                status, headers, _ = header_list("GET", path, h + auth)
                expect(not cors_headers(headers), f"{path} {origin!r}: {headers}")
                expect([v for k, v in headers if k == "vary"] == ["Origin"], f"{path} {origin!r}: {headers}")
    status, headers, _ = header_list("GET", "/api/me", [("Origin", CORS_ORIGINS[0]),
                                                        ("Authorization", "Bearer " + token)])
    expect(status == 200 and dict(headers)["access-control-allow-origin"] == CORS_ORIGINS[0], (status, headers))
    # Never CORS off the session routes: webhooks, probes, metrics, retired and unknown routes.
    body = user_event("user_cors_webhook")
    hooks = [("Origin", CORS_ORIGINS[0]), *svix.headers(SECRET, body).items(), ("Content-Length", str(len(body)))]
    conn = http.client.HTTPConnection(SHIM_HOST, SHIM_PORT, timeout=10)
    conn.request("POST", "/api/webhooks/clerk", body=body, headers=dict(hooks))
    resp = conn.getresponse()
    resp.read()
    conn.close()
    expect(resp.status == 200 and not [k for k, _ in resp.getheaders()
                                       if k.lower().startswith("access-control-") or k.lower() == "vary"],
           f"webhook: {resp.status} {resp.getheaders()}")
    for path, want in (("/api/webhooks/clerk", 404), ("/healthz", 404), ("/readyz", 404), ("/metrics", 404),
                       ("/api/auth/login", 410), ("/api/nothing", 404)):
        status, headers, _ = preflight(path, CORS_ORIGINS[0])
        expect(status == want and not cors_headers(headers) and "vary" not in dict(headers),
               f"OPTIONS {path}: {status} {headers}")
        if path != "/api/webhooks/clerk":
            status, headers, _ = header_list("GET", path, [("Origin", CORS_ORIGINS[0])])
            expect(not cors_headers(headers) and "vary" not in dict(headers), f"GET {path}: {headers}")


@test
def cors_is_off_without_jnx_cors_origins():
    with PrivateShim("jnx-shim-nocors", JNX_CORS_ORIGINS="") as shim:
        status, headers, _ = preflight("/api/me", "https://app.jnx.test", port=shim.port)
        expect(status == 404 and not cors_headers(headers) and "vary" not in dict(headers), (status, headers))
        status, headers, _ = header_list("GET", "/api/me", [("Origin", "https://app.jnx.test")], port=shim.port)
        expect(status == 401 and not cors_headers(headers) and "vary" not in dict(headers), (status, headers))


def shim_exit(**env):
    """Starts the shim with `env` on top of ours; (exit code or None if it kept running, its output)."""
    port = free_port()
    proc = subprocess.Popen([SHIM_BIN], env=dict(os.environ, JNX_LISTEN=f"{HOST}:{port}", **env),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=3)
        return proc.returncode, out
    except subprocess.TimeoutExpired:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
        return None, out


@test
def bad_cors_origins_or_stats_cache_stop_the_shim_at_start_with_exit_2():
    bad_origins = ("*", "https://app.jnx.test/", "https://app.jnx.test/path", "https://app.jnx.test,",
                   ",https://app.jnx.test", "https://a.jnx.test,,https://b.jnx.test",
                   "https://a.jnx.test, https://b.jnx.test", " https://app.jnx.test", "https://App.jnx.test",
                   "null", "app.jnx.test", "ftp://app.jnx.test", "https://app.jnx.test:443",
                   "http://app.jnx.test:80", "https://app.jnx.test:0", "https://app.jnx.test:65536",
                   "https://user@app.jnx.test", "https://app.jnx.test?x=1", "https://app.jnx.test#x",
                   "https://-app.jnx.test", "https://app..jnx.test", "https://*.jnx.test", "https://",
                   "https://[::1", "https://app.jnx.test\t")
    for value in bad_origins:
        code, out = shim_exit(JNX_CORS_ORIGINS=value)
        expect(code == 2, f"JNX_CORS_ORIGINS={value!r}: exit {code}: {out[-300:]}")
        expect("JNX_CORS_ORIGINS" in out and json.loads(out.splitlines()[-1])["level"] == "error", out)
        if "jnx.test" in value:
            expect(value.strip() not in out, f"the log repeats the value {value!r}")
    for value in ("-1", "3601", "ten", "1.5"):
        code, out = shim_exit(JNX_STATS_CACHE_SECONDS=value)
        expect(code == 2 and "JNX_STATS_CACHE_SECONDS" in out, f"JNX_STATS_CACHE_SECONDS={value!r}: {code} {out}")
    # The same checker accepts what browsers send.
    good = "https://app.jnx.test,http://localhost:3000,http://127.0.0.1:8080,https://[::1]:8443,https://x-y.a1.test"
    code, out = shim_exit(JNX_CORS_ORIGINS=good, JNX_STATS_CACHE_SECONDS="0")
    expect(code is None, f"valid origins refused: exit {code}: {out[-300:]}")


@test
def logs_are_json_lines_without_pii():
    time.sleep(0.2)
    with open(os.environ["JNX_SHIM_LOG"], encoding="utf-8", errors="replace") as f:
        lines = [line for line in f if line.strip()]
    expect(len(lines) > 50, f"only {len(lines)} log lines")
    requests = 0
    for line in lines:
        entry = json.loads(line)
        if "route" in entry:
            requests += 1
            for key in ("ts", "request_id", "route", "status"):
                expect(key in entry, f"log line without {key}: {line}")
    expect(requests > 50, f"{requests} request lines")
    text = "".join(lines)
    for needle in ("@example.com", "Grace", "Lovelace", "192.0.2.10", "v1,", "whsec_",
                   SECRET[6:20], "Mozilla"):
        expect(needle not in text, f"log contains {needle!r}")


@test
def no_backend_crashed_during_the_suite():
    # A backend killed by a signal restarts the whole server: data loss in
    # production. The server's log names every such death; this run's part of it is read.
    with open(SERVER_LOG, encoding="utf-8", errors="replace") as f:
        f.seek(SERVER_LOG_START)
        deaths = [line.strip() for line in f if "terminated by signal" in line
                  and not any(f"(PID {pid})" in line for pid in KILLED_BACKENDS)]
    expect(not deaths, f"backend crashes: {deaths[:3]}")


def main() -> int:
    # Test names as arguments run only those (for development); none runs all.
    unknown = set(sys.argv[1:]) - {fn.__name__ for fn in TESTS}
    if unknown:
        print(f"no such test: {sorted(unknown)}")
        return 2
    passed = failed = 0
    for n, fn in enumerate(TESTS, 1):
        if sys.argv[1:] and fn.__name__ not in sys.argv[1:]:
            continue
        try:
            fn()
            sys.stdout.flush()
            print(f"ok {n} - {fn.__name__}")
            passed += 1
        except Exception:  # noqa: BLE001 - every failure is reported
            print(f"not ok {n} - {fn.__name__}")
            traceback.print_exc()
            failed += 1
    print(f"shim: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
