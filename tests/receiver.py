"""A webhook receiver for tests: an HTTP server on 127.0.0.1 that keeps every JSON body POSTed to it.

    with Receiver() as receiver:              # started; stopped (and its port closed) on leaving
        url = receiver.apprise_url            # json://127.0.0.1:PORT/hook, Apprise's JSON webhook
        receiver.wait_for(2)                  # the first two messages, or AssertionError
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length))
        self.server.receiver._keep(body)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


class Receiver:
    def __init__(self, port: int = 0) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        self.server.receiver = self
        self.port = self.server.server_address[1]
        self.messages: list[dict] = []
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def apprise_url(self) -> str:
        return f"json://127.0.0.1:{self.port}/hook"

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)

    def _keep(self, body: dict) -> None:
        with self._changed:
            self.messages.append(body)
            self._changed.notify_all()

    def wait_for(self, count: int, timeout: float = 60.0) -> list[dict]:
        """The first `count` messages, once they are all here (a liveness bound, not a timing)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{len(self.messages)} of {count} messages arrived: {self.messages}")
                self._changed.wait(left)
            return list(self.messages[:count])


def free_port() -> int:
    """A loopback port nothing listens on (for a receiver that is not there yet)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
