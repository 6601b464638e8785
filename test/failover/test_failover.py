#!/usr/bin/env python3
"""Failover under a stream of webhooks: a primary and a streaming standby (pg_basebackup -R), two
throwaway clusters of their own under /tmp (Unix sockets only, ports of their own), and one
jnx-shim given both with libpq's multi-host conninfo and target_session_attrs=read-write.

Round 1, promote then stop: during a stream of signed deliveries from 4 senders, the standby is
promoted and the old primary stopped a moment later. Every delivery is answered 200 or 503
(never 500, never a reset or a timeout); the shim reaches the new primary by itself within 10 s;
then a Svix-style resend of every event (same ids and bodies, re-signed with a fresh timestamp)
leaves each applied exactly once there. Deliveries the old primary acknowledged after the
standby's last replayed change (the window between promotion and stop, and replication lag)
are missing on the new primary until that resend: counted and printed, not hidden.

Round 2, fence then promote then stop: the old primary is made read-only first
(default_transaction_read_only, reloaded), the standby catches up and is promoted, then the
old one stops. Deliveries meeting the fenced server get 25006, which the shim must answer 503
(dropping the connection, retrying elsewhere), never 500; and no acknowledged delivery is lost,
before any resend.

Run by test/failover/run.sh (which cleans up); standard library only.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "test", "fixtures"))
import svix  # noqa: E402

BASE = os.environ["JNX_FAILOVER_BASE"]
PGBIN = os.environ.get("JNX_PGBIN", "/usr/lib/postgresql/15/bin")
SOCK = os.path.join(BASE, "run")
SHIM_BIN = os.environ.get("JNX_SHIM_BIN", os.path.join(ROOT, "shim", "jnx-shim"))
DB = "jnx"
RUN = os.urandom(3).hex()
FIXTURE = json.load(open(os.path.join(ROOT, "test", "fixtures", "user_created.json"), encoding="utf-8"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def as_postgres(*args, check=True, capture=False):
    return subprocess.run(["runuser", "-u", "postgres", "--", *args], cwd="/", check=check,
                          capture_output=capture, text=True)


def expect(cond, message):
    if not cond:
        raise AssertionError(message)


class Node:
    """One PostgreSQL 15 cluster: a data directory under BASE, a Unix socket in SOCK."""

    def __init__(self, name, port):
        self.name, self.port = name, port
        self.data = os.path.join(BASE, name)
        self.log = os.path.join(BASE, f"{name}.log")

    def psql(self, sql, db=DB):
        out = subprocess.run(["psql", "-X", "-tA", "-v", "ON_ERROR_STOP=1", "-h", SOCK, "-p", str(self.port),
                              "-U", "postgres", "-d", db, "-c", sql], check=True, capture_output=True, text=True)
        return out.stdout.strip()

    def ctl(self, *args):
        as_postgres(f"{PGBIN}/pg_ctl", "-D", self.data, *args, capture=True)

    def start(self):
        self.ctl("-l", self.log, "-w", "-t", "60", "start")

    def stop(self, mode):
        self.ctl("-m", mode, "-w", "stop")

    def running(self):
        return as_postgres(f"{PGBIN}/pg_ctl", "-D", self.data, "status", check=False, capture=True).returncode == 0

    def init_primary(self):
        as_postgres(f"{PGBIN}/initdb", "-D", self.data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
                    "--locale=C.UTF-8", capture=True)
        self.configure()
        self.start()

    def configure(self):
        with open(os.path.join(self.data, "postgresql.conf"), "a", encoding="ascii") as f:
            f.write(f"\nlisten_addresses = ''\nunix_socket_directories = '{SOCK}'\nport = {self.port}\n"
                    "max_connections = 50\nshared_buffers = 32MB\nwal_level = replica\n"
                    "max_wal_senders = 4\nhot_standby = on\nlog_min_messages = warning\n")

    def clone_from(self, primary):
        """A streaming standby of `primary`: pg_basebackup -R writes standby.signal and
        primary_conninfo (its socket and port)."""
        if os.path.exists(self.data):
            shutil.rmtree(self.data)
        as_postgres(f"{PGBIN}/pg_basebackup", "-D", self.data, "-R", "-X", "stream", "-c", "fast",
                    "-h", SOCK, "-p", str(primary.port), "-U", "postgres", capture=True)
        self.configure()  # the last port = line wins: its own
        self.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if primary.psql("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'") == "1":
                return
            time.sleep(0.1)
        raise AssertionError(f"{self.name} is not streaming from {primary.name}")

    def in_recovery(self):
        return self.psql("SELECT pg_is_in_recovery()") == "t"


class Shim:
    def __init__(self, nodes, hosts=None, ports=None):
        self.port = free_port()
        hosts = hosts or ",".join(SOCK for _ in nodes)
        ports = ports or ",".join(str(n.port) for n in nodes)
        self.env = dict(os.environ, JNX_LISTEN=f"127.0.0.1:{self.port}", JNX_POOL_SIZE="4",
                        JNX_DATABASE_URL=f"host={hosts} port={ports} dbname={DB} user=jnx_authenticator "
                                         "target_session_attrs=read-write")
        self.log_path = os.path.join(BASE, "shim.log")
        self.proc = None

    def __enter__(self):
        self.log = open(self.log_path, "w", encoding="utf-8")
        self.proc = subprocess.Popen([SHIM_BIN], env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        with open(os.path.join(BASE, "shim.pid"), "w", encoding="ascii") as f:
            f.write(str(self.proc.pid))  # for run.sh's cleanup, should this script die
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError("the shim did not start")

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()
        return False

    def deliver(self, body, headers, timeout=30):
        """(status, outcome): outcome is the webhook status, the error, or the failure."""
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("POST", "/api/webhooks/clerk", body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        except OSError as e:
            return f"no answer: {e!r}", None
        finally:
            conn.close()
        try:
            doc = json.loads(data)
        except ValueError:
            return resp.status, repr(data[:80])
        return resp.status, doc.get("status") or doc.get("error")


def events(tag, users):
    """A user.created for each user and, for every third, a later user.updated (new name): the
    final users table is known from the events alone."""
    out = []
    for i in range(users):
        for version in range(2 if i % 3 == 0 else 1):
            event = json.loads(json.dumps(FIXTURE))
            event["type"] = "user.updated" if version else "user.created"
            uid = f"user_{tag}_{i}_{RUN}"
            event["data"].update(id=uid, first_name=f"N{i}v{version}", updated_at=1764150000000 + version * 1000)
            event["data"]["email_addresses"][0]["email_address"] = f"{uid}@example.com"
            out.append((f"msg_{tag}_{i}_{version}_{RUN}", uid, f"N{i}v{version}", json.dumps(event).encode()))
    return out


def stream(shim, secret, evs, fault, senders=4, pace=0.01):
    """Sends every event once from `senders` threads (in order, each sender pacing itself);
    `fault()` runs on its own thread. Returns [(status, outcome, sent_at, answered_at)]."""
    answers = [None] * len(evs)
    lock = threading.Lock()
    nxt = [0]

    def sender():
        while True:
            with lock:
                i = nxt[0]
                nxt[0] += 1
            if i >= len(evs):
                return
            svix_id, _, _, body = evs[i]
            sent = time.monotonic()
            status, outcome = shim.deliver(body, svix.headers(secret, body, msg_id=svix_id))
            answers[i] = (status, outcome, sent, time.monotonic())
            time.sleep(pace)

    def run_fault():
        while nxt[0] < len(evs) // 3:
            time.sleep(0.005)
        fault()

    threads = [threading.Thread(target=sender) for _ in range(senders)]
    faulter = threading.Thread(target=run_fault)
    for th in threads + [faulter]:
        th.start()
    for th in threads + [faulter]:
        th.join()
    return answers


def probe_until_200(shim, secret, tag, since, limit=15):
    """Fresh deliveries every 50 ms until one is 200: seconds from `since` to that answer."""
    n = 0
    while time.monotonic() - since < limit:
        body = json.dumps({"type": "organizationInvitation.created", "object": "event",
                           "data": {"id": f"orginv_{tag}_{n}_{RUN}"}}).encode()
        status, _ = shim.deliver(body, svix.headers(secret, body, msg_id=f"msg_probe_{tag}_{n}_{RUN}"), timeout=15)
        n += 1
        if status == 200:
            return time.monotonic() - since
        time.sleep(0.05)
    return None


def check_answers(answers, what):
    bad = [a for a in answers if a is None or a[0] not in (200, 503)]
    expect(not bad, f"{what}: answers other than 200/503: {bad[:3]}")
    outcomes = {}
    for a in answers:
        key = f"{a[0]} {a[1]}"
        outcomes[key] = outcomes.get(key, 0) + 1
    return outcomes


def state(node, tag):
    rows = node.psql(f"SELECT svix_id FROM jnx.webhook_events WHERE svix_id LIKE 'msg_{tag}_%'")
    return set(rows.split()) if rows else set()


def resend_all(shim, secret, node, evs, tag):
    """Svix's resend of every event: same id and body, signed anew with a fresh timestamp. Ids
    already on `node` must be answered duplicate; the others processed (or stale, for a
    user.created behind its update)."""
    present = state(node, tag)
    missing = [e for e in evs if e[0] not in present]
    for svix_id, _, _, body in evs:
        status, outcome = shim.deliver(body, svix.headers(secret, body, msg_id=svix_id))
        expect(status == 200, f"resend {svix_id}: {status} {outcome}")
        if svix_id in present:
            expect(outcome == "duplicate", f"resend of {svix_id}, stored already: {outcome}")
        else:
            expect(outcome in ("processed", "stale"), f"resend of {svix_id}, missing: {outcome}")
    return missing


def check_applied_once(node, evs, tag):
    counts = node.psql(f"SELECT count(*) || ' ' || count(DISTINCT svix_id) FROM jnx.webhook_events "
                       f"WHERE svix_id LIKE 'msg_{tag}_%'")
    expect(counts == f"{len(evs)} {len(evs)}", f"webhook_events rows / distinct ids: {counts} for {len(evs)}")
    want = {}
    for _, uid, name, _ in evs:
        want[uid] = name  # the later version of a user comes later in the list
    rows = node.psql(f"SELECT clerk_user_id || ' ' || first_name FROM jnx.users "
                     f"WHERE clerk_user_id LIKE 'user_{tag}_%'").splitlines()
    got = dict(r.split(" ", 1) for r in rows)
    expect(got == want, f"users differ from the events: {len(got)} rows for {len(want)} users; "
                        f"e.g. {sorted(set(got.items()) ^ set(want.items()))[:3]}")
    audits = node.psql(f"SELECT count(*) FROM jnx.audit_logs WHERE target_id LIKE 'user_{tag}_%' "
                       "AND action = 'user.create'")
    expect(audits == str(len(want)), f"user.create audit rows {audits} for {len(want)} users")


def jnx_backends(node):
    return int(node.psql("SELECT count(*) FROM pg_stat_activity WHERE usename = 'jnx_authenticator'"))


def main():
    for d in (BASE, SOCK):
        os.makedirs(d, exist_ok=True)
        shutil.chown(d, "postgres", "postgres")
        os.chmod(d, 0o755 if d == BASE else 0o700)
    p1, p2 = 5433, 5434  # Unix sockets in a directory of our own: no other cluster can clash
    a, b = Node("node_a", p1), Node("node_b", p2)
    a.init_primary()
    a.psql("CREATE DATABASE jnx", db="postgres")
    secret = "whsec_" + __import__("base64").b64encode(os.urandom(32)).decode()
    a.psql("SET client_min_messages = warning; CREATE EXTENSION jnx_auth")
    a.psql(f"SELECT jnx.set_webhook_secrets('{secret}')")
    b.clone_from(a)
    expect(b.in_recovery(), "the standby is not in recovery")

    with Shim([a, b]) as shim:
        warm = [shim.deliver(body, svix.headers(secret, body)) for body in
                [json.dumps({"type": "x.warm", "object": "event", "data": {"id": f"w{i}"}}).encode() for i in range(8)]]
        expect(all(w[0] == 200 for w in warm), f"before any fault: {warm}")
        expect(jnx_backends(a) >= 1 and jnx_backends(b) == 0, "the shim is not on the primary only")

        # --- round 1: promote the standby, then stop the old primary -------------------------
        evs = events("r1", 240)
        times = {}

        def promote_then_stop():
            b.ctl("-w", "promote")
            times["promoted"] = time.monotonic()
            time.sleep(0.3)  # the window: both accept writes; the old one's are lost to the new
            a.stop("fast")
            times["stopped"] = time.monotonic()
            times["recovered"] = probe_until_200(shim, secret, "r1", times["stopped"])

        answers = stream(shim, secret, evs, promote_then_stop)
        outcomes = check_answers(answers, "round 1")
        expect("stopped" in times and not b.in_recovery(), "the standby was not promoted")
        expect(times["recovered"] is not None and times["recovered"] < 10,
               f"no 200 within 10 s of the old primary's stop: {times.get('recovered')}")
        after_stop = [x for x in answers if x[2] > times["stopped"]]
        expect(after_stop and any(x[0] == 200 for x in after_stop), "no delivery after the stop succeeded")
        expect(jnx_backends(b) >= 1, "the shim holds no connection to the new primary")
        acked = {evs[i][0] for i, x in enumerate(answers) if x[0] == 200}
        lost = acked - state(b, "r1")
        missing = resend_all(shim, secret, b, evs, "r1")
        check_applied_once(b, evs, "r1")
        print(f"# round 1 (promote, 0.3 s, stop): answers {outcomes}; 200 again "
              f"{times['recovered']:.2f}s after the stop; {len(lost)} acknowledged deliveries were "
              f"missing on the new primary (acked by the old one after the promotion); the resend "
              f"applied {len(missing)} ({len(missing) - len(lost)} first answered 503), each once")

        # --- round 2: fence the primary (read-only), promote the standby, then stop -------------
        a.clone_from(b)  # the old primary comes back as the new one's standby
        evs = events("r2", 240)
        times = {}

        def fence_promote_stop():
            b.psql("ALTER SYSTEM SET default_transaction_read_only = on", db="postgres")
            b.psql("SELECT pg_reload_conf()", db="postgres")
            # Each backend applies the reload at its next command: give them 0.1 s.
            time.sleep(0.1)
            times["fenced"] = time.monotonic()
            time.sleep(0.3)  # deliveries meet the read-only server: 25006
            # No write after the fence: the standby replays everything there is, then is promoted.
            lsn = b.psql("SELECT pg_current_wal_lsn()", db="postgres")
            deadline = time.monotonic() + 10
            while a.psql(f"SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn", db="postgres") != "t":
                expect(time.monotonic() < deadline, "the standby did not catch up")
                time.sleep(0.02)
            times["promoting"] = time.monotonic()  # pg_ctl -w returns up to 0.1 s after it is done
            a.ctl("-w", "promote")
            times["promoted"] = time.monotonic()
            b.stop("fast")
            times["stopped"] = time.monotonic()
            times["recovered"] = probe_until_200(shim, secret, "r2", times["promoted"])

        answers = stream(shim, secret, evs, fence_promote_stop)
        outcomes = check_answers(answers, "round 2")
        expect(times["recovered"] is not None and times["recovered"] < 10,
               f"no 200 within 10 s of the promotion: {times.get('recovered')}")
        in_fence = [x for x in answers if times["fenced"] < x[2] and x[3] < times["promoting"]]
        expect(in_fence and all(x[0] == 503 for x in in_fence),
               f"deliveries sent and answered while fenced: {len(in_fence)}, "
               f"{sorted({str(x[:2]) for x in in_fence})}")
        acked = {evs[i][0] for i, x in enumerate(answers) if x[0] == 200}
        lost = acked - state(a, "r2")
        expect(not lost, f"{len(lost)} acknowledged deliveries lost despite the fence: {sorted(lost)[:3]}")
        missing = resend_all(shim, secret, a, evs, "r2")
        check_applied_once(a, evs, "r2")
        with open(b.log, encoding="utf-8", errors="replace") as f:
            refused = sum(1 for line in f if "in a read-only transaction" in line)
        expect(refused > 0, "no delivery met the read-only server (25006): round 2 proved nothing")
        print(f"# round 2 (fence, promote, stop): answers {outcomes}; {refused} writes refused with 25006 "
              f"by the fenced server; {len(in_fence)} answered 503 while fenced; 200 again {times['recovered']:.2f}s after the promotion; none lost; the resend "
              f"applied the {len(missing)} first answered 503, each once")
    for line in open(shim.log_path, encoding="utf-8"):
        json.loads(line)  # JSON lines only
        expect(secret[6:20] not in line and "@example.com" not in line, "the shim log holds a secret or an email")

    # --- round 3: the first listed server hangs (accepts, never answers) --------------------------
    # A dead machine or a frozen server does not refuse: libpq's non-blocking connect has no
    # per-host timeout, so the shim gives each listed server its share of the connect deadline.
    hang = socket.socket()
    hang.bind(("127.0.0.1", 0))
    hang.listen(64)
    held = []
    stop = threading.Event()

    def accept_and_say_nothing():
        hang.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(hang.accept()[0])
            except OSError:
                pass

    acceptor = threading.Thread(target=accept_and_say_nothing)
    acceptor.start()
    try:
        with Shim([], hosts=f"127.0.0.1,{SOCK}", ports=f"{hang.getsockname()[1]},{a.port}") as shim:
            evs = events("r3", 20)
            t0 = time.monotonic()
            svix_id, _, _, body = evs[0]
            first = shim.deliver(body, svix.headers(secret, body, msg_id=svix_id))
            first_s = time.monotonic() - t0
            expect(first[0] == 200, f"first delivery with a hanging first server: {first}")
            expect(first_s < 3, f"the first delivery took {first_s:.2f}s")
            t0 = time.monotonic()
            rest = [shim.deliver(body, svix.headers(secret, body, msg_id=svix_id))
                    for svix_id, _, _, body in evs[1:]]
            rest_s = time.monotonic() - t0
            expect(all(x[0] == 200 for x in rest), f"later deliveries: {sorted({str(x) for x in rest})}")
            expect(len(held) >= 1, "the hanging server was never tried: round 3 proved nothing")
            check_applied_once(a, evs, "r3")
            print(f"# round 3 (first server hangs): first delivery 200 after {first_s:.2f}s; "
                  f"{len(rest)} more in {rest_s:.2f}s; {len(held)} connection(s) left hanging")
    finally:
        stop.set()
        acceptor.join()
        for c in held:
            c.close()
        hang.close()
    print("failover: 3 rounds passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
