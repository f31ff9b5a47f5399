"""A webhook receiver for tests and benchmarks: a small HTTP server on 127.0.0.1 that records
each request and answers as a script says (a status, a hang, a dropped connection)."""

import contextlib
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.support.servers import free_port

RECEIVER_PORTS = range(8600, 8700)


class Receiver:
    """``answers``: what to do per request, in order (the last repeats): an int status,
    ``"hang"`` (answer nothing until ``release()``), or ``"drop"`` (close the connection)."""

    def __init__(self, answers=(200,)):
        self.answers = list(answers)
        self.requests = []  # (monotonic time, headers dict, body bytes)
        self.arrived = threading.Condition()
        self.released = threading.Event()
        self.port = free_port(RECEIVER_PORTS)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                with receiver.arrived:
                    n = len(receiver.requests)
                    receiver.requests.append((time.monotonic(), dict(self.headers), body))
                    receiver.arrived.notify_all()
                answer = receiver.answers[min(n, len(receiver.answers) - 1)]
                if answer == "hang":
                    receiver.released.wait(60)
                    answer = 200
                if answer == "drop":
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(2)
                    return
                self.send_response(answer)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/hook"

    def wait_for(self, count, timeout=10.0):
        """Wait until ``count`` requests arrived; return them (fails the test on timeout)."""
        deadline = time.monotonic() + timeout
        with self.arrived:
            while len(self.requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"the receiver got {len(self.requests)} of {count} requests in {timeout}s"
                    )
                self.arrived.wait(left)
            return list(self.requests)

    def release(self):
        self.released.set()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.release()
        self.server.shutdown()
        self.server.server_close()
