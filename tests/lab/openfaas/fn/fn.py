"""The lab's OpenFaaS function: a plain HTTP server on port 8080 (image streamops-lab/fn:1).

What it does with a request body is chosen by the environment variable FN_TRANSFORM, a comma
separated list of steps applied in order:

    upper              the body upper-cased
    reverse            the body reversed (by characters)
    fail-on:TEXT       HTTP 500 "fn: refusing input containing 'TEXT'" when the body contains TEXT
    sleep-ms:N         wait N milliseconds first
    env:NAME           answer the value of the environment variable NAME (the body is ignored)
    secret:NAME        answer the content of /var/openfaas/secrets/NAME
    echo               the body as it came (the default)

Request bodies may be chunked (the gateway sends them so). GET /_/health answers 200 (the
readiness probe). Every answer carries X-Fn-Pod (the pod's host name) and X-Fn-Transform.
SIGTERM ends the server at once, so pods go away without waiting out their grace period.
"""

import http.server
import os
import signal
import socket
import sys
import time

SECRETS = "/var/openfaas/secrets"
HOST = socket.gethostname()


class Failure(Exception):
    pass


def transform(steps, body):
    """Apply the steps to the body (bytes); raises Failure for the fail-on step."""
    text = body.decode("utf-8", "replace")
    for step in steps:
        name, _sep, arg = step.partition(":")
        if name == "upper":
            text = text.upper()
        elif name == "reverse":
            text = text[::-1]
        elif name == "fail-on":
            if arg and arg in text:
                raise Failure("fn: refusing input containing %r" % arg)
        elif name == "sleep-ms":
            time.sleep(int(arg or "0") / 1000.0)
        elif name == "env":
            text = os.environ.get(arg, "")
        elif name == "secret":
            with open(os.path.join(SECRETS, arg), encoding="utf-8", errors="replace") as fh:
                text = fh.read()
        elif name in ("", "echo"):
            pass
        else:
            raise Failure("fn: unknown FN_TRANSFORM step %r" % step)
    return text.encode("utf-8")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without TCP_NODELAY, Nagle and the peer's delayed ACK
    # hold every answer on a kept-alive connection for 40 ms.
    disable_nagle_algorithm = True
    steps = [s.strip() for s in os.environ.get("FN_TRANSFORM", "echo").split(",") if s.strip()]

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        pass  # one line per request would flood the pod logs

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()  # the CRLF after each chunk
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def answer(self, code, data):
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Fn-Pod", HOST)
        self.send_header("X-Fn-Transform", ",".join(self.steps))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def handle_any(self):
        body = self.read_body()
        if self.path.split("?", 1)[0] in ("/_/health", "/_/ready"):
            self.answer(200, b"OK")
            return
        try:
            self.answer(200, transform(self.steps, body))
        except Failure as e:
            self.answer(500, str(e).encode("utf-8"))
        except (OSError, ValueError) as e:
            self.answer(500, ("fn: %s" % e).encode("utf-8"))

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = handle_any


def main():
    signal.signal(signal.SIGTERM, lambda *unused: sys.exit(0))
    port = int(os.environ.get("PORT", "8080"))
    # 0.0.0.0 of the pod's own network namespace (BIND=127.0.0.1 to try it on the host)
    server = http.server.ThreadingHTTPServer((os.environ.get("BIND", "0.0.0.0"), port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
