"""A real HTTP/1.1 server that reports what it received: the far side of router tests."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class EchoHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so that the router's pooling shows

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _answer(self) -> None:
        path = self.path
        if path.startswith("/cobrowse/health"):
            self._send(200, "OK", b"")
            return
        if path.startswith("/cobrowse/slow"):
            time.sleep(3)
        if path.startswith("/cobrowse/reset"):
            self.connection.close()
            self.close_connection = True
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        report = {
            "method": self.command,
            "path": path,
            "headers": [[name, value] for name, value in self.headers.items()],
            "body": body.decode("latin-1"),
            "peerPort": self.client_address[1],
        }
        payload = json.dumps(report).encode()
        self.send_response(201, "Fine Thanks")
        self.send_header("Content-Type", "application/json")
        self.send_header("Set-Cookie", "first=1; Path=/")
        self.send_header("Set-Cookie", "second=2; Path=/")
        self.send_header("Keep-Alive", "timeout=5")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _send(self, status: int, reason: str, body: bytes) -> None:
        self.send_response(status, reason)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _answer


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """Clients that give up (the router's timeout) are expected here."""


class EchoServer:
    """Serve EchoHandler on a loopback port in a thread; always `stop()` it."""

    def __init__(self, port: int) -> None:
        self.server = QuietServer(("127.0.0.1", port), EchoHandler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
