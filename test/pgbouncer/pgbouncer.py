"""A throwaway PgBouncer (Debian's package) in transaction mode, in front of a test cluster.

Its configuration is generated here, under a directory of its own in /tmp that the postgres
user owns (PgBouncer, like PostgreSQL, refuses to run as root). It listens on a free loopback
port; authentication is `trust` against a user list written at start (PgBouncer still wants
every user name listed). The admin console (database `pgbouncer`, user postgres) is how tests
see which server backends a pool holds (SHOW SERVERS: remote_pid) and which client connections
it serves (SHOW CLIENTS).

Usable as a module (PgBouncer class) and from the shell:
    pgbouncer.py start DIR PGHOST PGPORT POOL_SIZE   prints the port it listens on
    pgbouncer.py stop DIR
"""

import os
import shutil
import socket
import subprocess
import sys
import time

BIN = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
# After a failed login to the server PgBouncer refuses every client at once for this long.
SERVER_LOGIN_RETRY = 0.25


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def as_postgres(args, **kw):
    return subprocess.run(["runuser", "-u", "postgres", "--", *args], cwd="/", **kw)


class PgBouncer:
    def __init__(self, directory, pghost, pgport, pool_size=4, max_client_conn=400,
                 ignore_startup_parameters="extra_float_digits", query_wait_timeout=4, port=None,
                 extra=""):
        self.dir = directory
        self.pghost, self.pgport = pghost, int(pgport)
        self.pool_size = pool_size
        self.max_client_conn = max_client_conn
        self.ignore = ignore_startup_parameters
        self.query_wait_timeout = query_wait_timeout
        self.port = port or free_port()
        self.extra = extra
        self.ini = os.path.join(directory, "pgbouncer.ini")
        self.log = os.path.join(directory, "pgbouncer.log")
        self.pidfile = os.path.join(directory, "pgbouncer.pid")

    def conninfo(self, dbname, user="jnx_authenticator", **more):
        """What a client (the shim) gives libpq to reach the pooler."""
        parts = [f"host=127.0.0.1 port={self.port} dbname={dbname} user={user}"]
        parts += [f"{k}={v}" for k, v in more.items()]
        return " ".join(parts)

    def write_config(self):
        os.makedirs(self.dir, exist_ok=True)
        # Every user that logs in through it; trust: no password is checked, the names must exist.
        with open(os.path.join(self.dir, "userlist.txt"), "w", encoding="ascii") as f:
            f.write('"jnx_authenticator" ""\n"postgres" ""\n')
        with open(self.ini, "w", encoding="ascii") as f:
            f.write(f"""\
[databases]
; Any database name a client asks for, on the test cluster (its Unix socket).
* = host={self.pghost} port={self.pgport}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir = {self.dir}
auth_type = trust
auth_file = {self.dir}/userlist.txt
admin_users = postgres
logfile = {self.log}
pidfile = {self.pidfile}
pool_mode = transaction
; Fewer server connections than the shim's pool: several client connections share each.
default_pool_size = {self.pool_size}
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = {self.max_client_conn}
; Transaction mode runs no reset query (server_reset_query_always = 0): a client must leave no
; session state behind, which the shim does not. DISCARD ALL is what session mode would run.
server_reset_query = DISCARD ALL
server_reset_query_always = 0
; The shim sends no startup parameter PgBouncer does not know when JNX_TRANSACTION_POOLING=on
; (not `options`); psql and drivers send extra_float_digits.
ignore_startup_parameters = {self.ignore}
; A server that is down is told to clients at once, and tried again a quarter second later (the
; default 15 s would keep the pool failing long after the server came back).
server_login_retry = {SERVER_LOGIN_RETRY}
server_connect_timeout = 3
; A query waiting for a server connection longer than this is refused (the shim answers 503);
; within the shim's own deadline (statement timeout + 1 s).
query_wait_timeout = {self.query_wait_timeout}
log_connections = 0
log_disconnections = 0
{self.extra}
""")
        subprocess.run(["chown", "-R", "postgres:postgres", self.dir], check=True)
        os.chmod(self.dir, 0o755)

    def start(self):
        self.write_config()
        if os.path.exists(self.log):
            os.unlink(self.log)
        as_postgres([BIN, "-d", "-q", self.ini], check=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"pgbouncer did not start on port {self.port}; see {self.log}")

    def pid(self):
        try:
            with open(self.pidfile, encoding="ascii") as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def stop(self):
        pid = self.pid()
        if pid is None:
            return
        try:
            os.kill(pid, 15)  # SIGTERM: immediate shutdown
        except ProcessLookupError:
            return
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass

    def admin(self, command):
        """Rows of an admin console command, as lists of strings."""
        out = subprocess.run(["psql", "-X", "-tA", "-F", "\t", "-h", "127.0.0.1", "-p", str(self.port),
                              "-U", "postgres", "-d", "pgbouncer", "-c", command],
                             check=True, capture_output=True, text=True)
        return [line.split("\t") for line in out.stdout.splitlines() if line]

    def columns(self, command):
        out = subprocess.run(["psql", "-X", "-A", "-F", "\t", "-h", "127.0.0.1", "-p", str(self.port),
                              "-U", "postgres", "-d", "pgbouncer", "-c", command],
                             check=True, capture_output=True, text=True)
        lines = out.stdout.splitlines()
        header = lines[0].split("\t")
        return [dict(zip(header, line.split("\t"))) for line in lines[1:] if "\t" in line]

    def server_pids(self, database=None):
        """The PostgreSQL backends this pooler holds (for one database, or all)."""
        return sorted(int(r["remote_pid"]) for r in self.columns("SHOW SERVERS")
                      if database is None or r["database"] == database)

    def clients(self, application_name=None):
        """The client connections it serves, as (address, port), for one application or all."""
        return sorted((r["addr"], r["port"]) for r in self.columns("SHOW CLIENTS")
                      if r["database"] != "pgbouncer"
                      and (application_name is None or r.get("application_name") == application_name))


def main(argv):
    if len(argv) >= 2 and argv[0] == "start" and len(argv) == 5:
        bouncer = PgBouncer(argv[1], argv[2], argv[3], pool_size=int(argv[4])).start()
        print(bouncer.port)
        return 0
    if len(argv) == 2 and argv[0] == "stop":
        PgBouncer(argv[1], "", 0, port=1).stop()
        return 0
    print(__doc__.strip(), file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
