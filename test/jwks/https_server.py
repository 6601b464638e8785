#!/usr/bin/env python3
"""A small HTTPS server for test/jwks/run.sh (standard library only).

    https_server.py CERT KEY DIR PORT_FILE

Listens on 127.0.0.1 on a free port (written to PORT_FILE once listening) with
the given certificate and serves, for GET /NAME, the file DIR/NAME as
application/json, read at each request (so the test can change what it serves).
A few paths behave otherwise:

    /status/CODE     answers CODE with a body that the client must never log
    /redirect/NAME   302 to https://localhost:PORT/NAME
    /big-length      1 MiB + 1 byte, with Content-Length
    /big-stream      1 MiB + 1 byte, without Content-Length (ends at close)
    /hang            answers nothing for 20 s
    /trickle-headers a status line, then one header line every 2 s, for 120 s
    /trickle-body    Content-Length 1000, then one byte every 2 s
"""

import http.server
import os
import ssl
import sys
import time

CERT, KEY, DIR, PORT_FILE = sys.argv[1:5]
BODY_MARKER = b"SERVED-BODY-MARKER-7f3a"
BIG = 1024 * 1024 + 1


class Handler(http.server.BaseHTTPRequestHandler):
    # HTTP/1.0: without Content-Length the body ends when the connection closes.
    protocol_version = "HTTP/1.0"

    def log_message(self, fmt, *args):  # quiet: the test reads the client's output only
        pass

    def answer(self, code, body, content_type="application/json", length=True, headers=()):
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        if length:
            self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path.startswith("/status/"):
            self.answer(int(path[len("/status/"):]), b'{"error":"' + BODY_MARKER + b'"}')
        elif path.startswith("/redirect/"):
            target = "https://localhost:%d/%s" % (self.server.server_port, path[len("/redirect/"):])
            self.answer(302, BODY_MARKER, headers=[("Location", target)])
        elif path == "/big-length":
            self.answer(200, b" " * BIG)
        elif path == "/big-stream":
            self.answer(200, b" " * BIG, length=False)
        elif path == "/hang":
            time.sleep(20)
            self.answer(200, b"{}")
        elif path == "/trickle-headers":
            self.wfile.write(b"HTTP/1.1 200 OK\r\n")
            for i in range(60):
                time.sleep(2)
                self.wfile.write(b"X-Trickle-%d: x\r\n" % i)
        elif path == "/trickle-body":
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n{")
            for _ in range(60):
                time.sleep(2)
                self.wfile.write(b" ")
        else:
            name = os.path.basename(path)
            file = os.path.join(DIR, name)
            if not name or not os.path.isfile(file):
                self.answer(404, b'{"error":"not_found","detail":"' + BODY_MARKER + b'"}')
                return
            with open(file, "rb") as f:
                self.answer(200, f.read())


def main():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(CERT, KEY)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    tmp = PORT_FILE + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(server.server_port))
    os.replace(tmp, PORT_FILE)
    server.serve_forever()


if __name__ == "__main__":
    main()
