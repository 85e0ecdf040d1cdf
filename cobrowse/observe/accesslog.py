"""Access logs: one line per request, JSON by default, written in batches.

Every value goes through `json.dumps`, in both formats, so a hostile header can neither break a
line nor forge a field. Lines are buffered and written together at least every
`FLUSH_INTERVAL_S` (one write syscall per batch instead of one per request, which costs a few
percent of a node's throughput); a crash can lose the last fraction of a second of lines.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import time
from typing import Any

FLUSH_INTERVAL_S = 0.2
MAX_BUFFERED = 256
SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9-]{1,255}$")


def request_id_from(incoming: str | None) -> str:
    """Keep a client's X-Request-ID if sane (<= 255 letters, digits, dashes), else make one."""
    if incoming and SANE_REQUEST_ID.match(incoming):
        return incoming
    return os.urandom(16).hex()  # as unique as a uuid4, without building one per request


_ENCODER = json.JSONEncoder(separators=(",", ":"))  # one encoder, not one per line
_second_cache: list[object] = [-1, ""]  # (whole second, its formatted prefix)


def utc_timestamp(epoch_s: float) -> str:
    """Return an ISO 8601 UTC time with milliseconds (the seconds part formatted once a second)."""
    second = int(epoch_s)
    if _second_cache[0] != second:
        _second_cache[:] = [second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))]
    return f"{_second_cache[1]}.{int(epoch_s % 1 * 1000):03d}Z"


class AccessLog:
    """Buffered access-log lines to a file descriptor (stderr by default)."""

    def __init__(self, text_format: bool = False, descriptor: int = 2) -> None:
        self.text_format = text_format
        self.descriptor = descriptor
        self.lines: list[str] = []
        self.lock = threading.Lock()
        self.flusher_pid: int | None = None

    def record(self, entry: dict[str, Any]) -> None:
        """Queue one request's line; `entry` keys become the fields, in order."""
        self.record_line(self.render(entry))

    def record_request(
        self,
        method: str,
        route: str,
        status: int,
        seconds: float,
        *,
        client: str,
        node: str,
        request_id: str,
    ) -> None:
        """Queue the line of one HTTP request: the hot path, formatted without a dict.

        Only `client` (from X-Forwarded-For) can hold arbitrary text: it alone is JSON-encoded.
        The method is an HTTP token, the route a template of ours, the node name and request ID
        are checked when they are set.
        """
        if self.text_format:
            self.record(
                {
                    "time": utc_timestamp(time.time()),
                    "method": method,
                    "route": route,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 3),
                    "client": client,
                    "node": node,
                    "request_id": request_id,
                }
            )
            return
        self.record_line(
            f'{{"time":"{utc_timestamp(time.time())}","method":"{method}","route":"{route}",'
            f'"status":{status},"duration_ms":{round(seconds * 1000, 3)},'
            f'"client":{_ENCODER.encode(client)},"node":"{node}","request_id":"{request_id}"}}'
        )

    def record_line(self, line: str) -> None:
        """Queue a line already rendered."""
        if self.flusher_pid != os.getpid():
            self._start_flusher()
        with self.lock:
            self.lines.append(line)
            full = len(self.lines) >= MAX_BUFFERED
        if full:
            self.flush()

    def render(self, entry: dict[str, Any]) -> str:
        if not self.text_format:
            return _ENCODER.encode(entry)
        return " ".join(f"{key}={_ENCODER.encode(value)}" for key, value in entry.items())

    def flush(self) -> None:
        """Write every queued line now."""
        with self.lock:
            if not self.lines:
                return
            data = ("\n".join(self.lines) + "\n").encode("utf-8", "replace")
            self.lines = []
        with contextlib.suppress(OSError):  # a closed stderr must not fail requests
            os.write(self.descriptor, data)

    def _start_flusher(self) -> None:
        # One thread per process: Gunicorn forks after the log object exists, and lines queued
        # in the parent belong to the parent.
        with self.lock:
            if self.flusher_pid == os.getpid():
                return
            self.flusher_pid = os.getpid()
            self.lines = []
        threading.Thread(target=self._flush_forever, name="access-log", daemon=True).start()

    def _flush_forever(self) -> None:
        while True:
            time.sleep(FLUSH_INTERVAL_S)
            self.flush()
