#!/usr/bin/env python3
"""What only applies behind PgBouncer in transaction mode (run by test/pgbouncer/run.sh after the
whole HTTP suite went through it): the cluster's shim multiplexes its connections over fewer
server connections; a shim not told it is behind a pooler finds out by itself and never answers
500; PgBouncer's own errors (too many clients, query_wait_timeout, a server connection lost
under a query) are 503, never 500.

Environment: as test/shim/test_shim.py with JNX_TEST_PGBOUNCER=1 and JNX_TEST_PGBOUNCER_PORT.
"""

import json
import os
import subprocess
import sys
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "shim"))
import test_shim as t  # noqa: E402  (its helpers: shims, signing, tokens, psql)

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def log_lines(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return [json.loads(line) for line in f if line.strip()]


def locked(table):
    """A psql session (straight to the database) holding an exclusive lock on `table`."""
    locker = subprocess.Popen(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    locker.stdin.write(f"BEGIN;\nLOCK TABLE {table} IN ACCESS EXCLUSIVE MODE;\n\\echo locked\n")
    locker.stdin.flush()
    line = locker.stdout.readline().strip()
    t.expect(line == "locked", f"psql: {line}")
    return locker


def unlock(locker):
    locker.stdin.write("COMMIT;\n")
    locker.stdin.close()
    locker.wait(timeout=10)


@test
def the_shims_eight_connections_share_four_server_connections():
    # 64 concurrent deliveries and sessions make the cluster's shim open its whole pool.
    tokens = [t.mint(t.session_claims(f"user_share{i}_{t.RUN}")) for i in range(8)]

    def one(i):
        if i % 2:
            return t.request("GET", "/api/me", headers={"Authorization": "Bearer " + tokens[i % 8]},
                             host=t.SHIM_HOST, port=t.SHIM_PORT)[0]
        return t.deliver(t.user_event(f"user_share_hook{i}"))[0]

    for _ in range(5):
        statuses = t.concurrently(64, one)
        t.expect(statuses == [200] * 64, statuses)
        clients = t.MAIN_BOUNCER.clients("jnx-shim")
        if len(clients) >= 6:
            break
    servers = t.MAIN_BOUNCER.server_pids(os.environ["PGDATABASE"])
    backends = int(t.psql("SELECT count(*) FROM pg_stat_activity WHERE usename = 'jnx_authenticator'"))
    t.expect(len(clients) > len(servers), f"{len(clients)} shim connections on {len(servers)} servers")
    t.expect(len(servers) <= 4 and backends <= 4, f"servers {servers}, jnx_authenticator backends {backends}")
    print(f"# the shim's {len(clients)} connections to PgBouncer ran on {len(servers)} server connections")


def without_the_setting(tag, ignore):
    """A shim without JNX_TRANSACTION_POOLING behind a PgBouncer with 2 server connections for its
    8: it must find out by itself (a logged warning), answer no 500 on the way, and keep the
    statement timeout."""
    bouncer = {"pool_size": 2, "ignore_startup_parameters": ignore}
    with t.PrivateShim(f"jnx-shim-{tag}", bouncer=bouncer, JNX_POOL_SIZE="8", JNX_STATEMENT_TIMEOUT_MS="1000",
                       JNX_TRANSACTION_POOLING="off") as shim:
        users = [f"user_{tag}{i}_{t.RUN}" for i in range(6)]
        tokens = [t.mint(t.session_claims(u)) for u in users]
        answers = []
        for _ in range(4):
            def one(i):
                if i % 3 == 0:
                    return ("hook", None) + shim.deliver(*signed(t.user_event(f"user_{tag}_hook{i}")))[:1]
                u = i % len(users)
                status, _, data = shim.request("GET", "/api/me", headers={"Authorization": "Bearer " + tokens[u]})
                return ("me", u, status, json.loads(data).get("clerk_user_id") if status == 200 else data)

            answers += t.concurrently(48, one)
        for a in answers:
            t.expect(a[-1 if a[0] == "hook" else 2] in (200, 503), f"{tag}: {a}")
            if a[0] == "me" and a[2] == 200:
                t.expect(a[3] == users[a[1]], f"{tag}: /api/me for {users[a[1]]} answered {a[3]}")
        ok = sum(1 for a in answers if (a[2] if a[0] == "hook" else a[2]) == 200)
        warnings = [e["msg"] for e in log_lines(shim.log_path) if e.get("level") == "warning"]
        t.expect(any("transaction pooler" in w for w in warnings), f"{tag}: no warning logged: {warnings}")
        # Once found out, everything succeeds.
        statuses = t.concurrently(24, lambda i: shim.request(
            "GET", "/api/me", headers={"Authorization": "Bearer " + tokens[i % len(tokens)]})[0])
        t.expect(statuses == [200] * 24, f"{tag}: after the switch {statuses}")
        # And the statement timeout holds, now set per transaction.
        body = t.user_event(f"user_{tag}_blocked")
        locker = locked("jnx.webhook_events")
        try:
            started = time.monotonic()
            status, _, data = shim.deliver(*signed(body), timeout=15)
            elapsed = time.monotonic() - started
        finally:
            unlock(locker)
        t.expect(status == 503 and json.loads(data) == {"error": "statement_timeout"}, (status, data))
        t.expect(elapsed < 1.8, f"{tag}: statement_timeout after {elapsed:.2f}s with a 1 s timeout")
        print(f"# {tag}: {ok} of {len(answers)} first answers 200, the rest 503; then {warnings[0][:60]}...")


def signed(body):
    return body, t.svix.headers(t.SECRET, body)


@test
def a_shim_not_told_finds_a_pooler_that_refuses_options():
    # PgBouncer's default: an unknown startup parameter (`options`) is refused at login.
    without_the_setting("refused", "extra_float_digits")


@test
def a_shim_not_told_finds_a_pooler_that_ignores_options():
    # ignore_startup_parameters = options: the login succeeds, the timeout in it is lost, and a
    # named statement is missing (26000) or already there (42P05) on the next server.
    without_the_setting("ignored", "extra_float_digits,options")


@test
def too_many_clients_is_503_never_500():
    # max_client_conn = 3 for a shim that wants 8 connections: PgBouncer refuses the rest at login
    # ("no more connections allowed").
    with t.PrivateShim("jnx-shim-maxclients", bouncer={"pool_size": 2, "max_client_conn": 3},
                       JNX_POOL_SIZE="8") as shim:
        statuses = t.concurrently(40, lambda i: shim.deliver(*signed(t.user_event(f"user_maxc{i}")))[0])
        t.expect(set(statuses) <= {200, 503}, statuses)
        t.expect(200 in statuses, statuses)
        with open(shim.bouncer.log, encoding="utf-8", errors="replace") as f:
            refused = sum(1 for line in f if "no more connections allowed" in line)
        t.expect(refused > 0, "PgBouncer never refused a connection: the test proved nothing")
        print(f"# max_client_conn: {statuses.count(200)} x 200, {statuses.count(503)} x 503; "
              f"{refused} logins refused by PgBouncer")


@test
def query_wait_timeout_and_a_server_lost_under_a_query_are_503_never_500():
    # One server connection. A delivery blocked by a lock holds it; a second request waits in
    # PgBouncer's queue until query_wait_timeout (1 s) and is refused: 503. Then the blocked
    # backend is terminated under its query ("server conn crashed?"): 503 or, retried after the
    # lock is gone, 200; never 500.
    with t.PrivateShim("jnx-shim-qwt", bouncer={"pool_size": 1, "query_wait_timeout": 1},
                       JNX_POOL_SIZE="2", JNX_STATEMENT_TIMEOUT_MS="4000") as shim:
        t.expect_status(shim.request("GET", "/readyz")[0], 200)
        locker = locked("jnx.webhook_events")
        first = {}
        try:
            body = t.user_event("user_qwt_blocked")
            headers = t.svix.headers(t.SECRET, body)
            blocked = threading.Thread(target=lambda: first.update(r=shim.deliver(body, headers, timeout=20)))
            blocked.start()
            time.sleep(0.3)
            started = time.monotonic()
            status, resp_headers, data = shim.request("GET", "/readyz", timeout=10)
            waited = time.monotonic() - started
            t.expect(status == 503 and resp_headers.get("retry-after"), (status, data))
            t.expect(0.9 <= waited < 2.5, f"query_wait_timeout 1 s: answered after {waited:.2f}s")
            pids = shim.backends()
            t.expect(len(pids) == 1, pids)
            t.psql(f"SELECT pg_terminate_backend({pids[0]})")
            time.sleep(0.2)
        finally:
            unlock(locker)
        blocked.join(20)
        t.expect("r" in first, "the blocked delivery was never answered")
        t.expect(first["r"][0] in (200, 503), f"after its server was terminated: {first['r'][:1]} {first['r'][2]!r}")
        with open(shim.bouncer.log, encoding="utf-8", errors="replace") as f:
            text = f.read()
        t.expect("query_wait_timeout" in text, "PgBouncer did not time the query out")
        # The same delivery again: applied exactly once.
        status, _, data = shim.deliver(body, headers)
        t.expect(status == 200 and json.loads(data)["status"] in ("processed", "duplicate"), (status, data))
        t.expect(t.stored(headers["svix-id"]) == "1", "stored more than once")
        print(f"# query_wait_timeout: 503 after {waited:.2f}s; the terminated one: {first['r'][0]}")


def main():
    names = {fn.__name__ for fn in TESTS}
    chosen = [a for a in sys.argv[1:] if a in names]
    if sys.argv[1:] and not chosen:
        return 0  # names of test_shim.py's tests only
    passed = failed = 0
    for n, fn in enumerate(TESTS, 1):
        if chosen and fn.__name__ not in chosen:
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
    print(f"pgbouncer: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
