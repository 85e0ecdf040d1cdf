"""Active health checks: GET <context>/health on every node, every `checkInterval` seconds."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from lb.backends import Backend, CheckResult

log = logging.getLogger("cobrowse.lb.health")

LIVE_SESSIONS_HEADER = b"x-cobrowse-live-sessions"
MAX_HEAD_LINES = 12  # a node's health answer has a handful of headers


@dataclass(frozen=True, slots=True)
class Probe:
    """What one check found."""

    result: CheckResult
    detail: str | None = None
    live_sessions: int | None = None


async def probe(backend: Backend, path: str, timeout: float) -> Probe:
    """Run one check on a fresh connection, as HAProxy does; never raise."""
    spec = backend.spec
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(spec.host, spec.port)
            writer.write(
                f"GET {path} HTTP/1.1\r\nHost: {spec.bind}\r\nUser-Agent: cobrowse-lb-check\r\n"
                "Connection: close\r\n\r\n".encode()
            )
            status_line = await reader.readline()
            head = [await reader.readline() for _ in range(MAX_HEAD_LINES)]
    except TimeoutError:
        return Probe(CheckResult.FAILED, "timeout")
    except OSError as error:
        return Probe(CheckResult.FAILED, error.strerror or type(error).__name__)
    finally:
        if writer is not None:
            writer.close()
    parts = status_line.split(b" ", 2)
    status = parts[1] if len(parts) > 1 else b""
    if status == b"200":
        return Probe(CheckResult.READY, None, _live_sessions(head))
    if status == b"404":
        return Probe(CheckResult.DRAINING, None, _live_sessions(head))
    return Probe(CheckResult.FAILED, f"status {status.decode(errors='replace') or 'none'}")


def _live_sessions(head: list[bytes]) -> int | None:
    """Read the node's live-session count from its health answer's headers."""
    for line in head:
        name, _, value = line.partition(b":")
        if name.strip().lower() == LIVE_SESSIONS_HEADER:
            text = value.strip()
            return int(text) if text.isdigit() else None
        if not line.strip():
            break
    return None


class HealthChecker:
    """One asyncio task per node, spaced by the check interval."""

    def __init__(
        self,
        path: str,
        interval: float,
        timeout: float,
        on_change: Callable[[Backend], None] | None = None,
    ) -> None:
        self.path = path
        self.interval = interval
        self.timeout = timeout
        self.on_change = on_change
        self.tasks: dict[str, asyncio.Task[None]] = {}

    def watch(self, backend: Backend) -> None:
        """Start checking `backend` (first check now)."""
        self.forget(backend.name)
        self.tasks[backend.name] = asyncio.get_running_loop().create_task(
            self._loop(backend), name=f"health-{backend.name}"
        )

    def forget(self, name: str) -> None:
        """Stop checking the node called `name`."""
        task = self.tasks.pop(name, None)
        if task is not None:
            task.cancel()

    def stop(self) -> None:
        for name in list(self.tasks):
            self.forget(name)

    async def _loop(self, backend: Backend) -> None:
        while True:
            started = time.monotonic()
            found = await probe(backend, self.path, self.timeout)
            now_ms = time.time_ns() // 1_000_000
            if backend.record(found.result, now_ms, found.detail, found.live_sessions):
                log.warning(
                    "node %s is now %s (check: %s)",
                    backend.name,
                    backend.state.value,
                    backend.last_result,
                )
                if self.on_change is not None:
                    self.on_change(backend)
            await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - started)))
