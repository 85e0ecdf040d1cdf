"""Wake the other workers of a node when a session's log grows (the SQLite backend's feed).

The log itself is the record, in SQLite; this only says "session K has something new". Each
worker binds a Unix datagram socket in the abstract namespace (no path length limit, nothing
left on disk) and leaves a marker file named by its pid in `<dataDir>/<node>.live/`, so that
peers find each other.

The keys a worker's loop turn stored go out together, one datagram per peer (newline-separated
keys). A peer whose queue is full (Linux queues only `net.unix.max_dgram_qlen` datagrams, often
10, while its loop is busy) keeps its keys pending, merged with later ones, and gets them a few
milliseconds later: a wake-up is delayed, never dropped. Every worker also checks all its
sessions' logs once a second, whatever the wake-ups say.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import logging
import os
import socket
import time
from pathlib import Path

log = logging.getLogger("cobrowse.realtime")

PEERS_REFRESH_S = 1.0
MAX_DATAGRAM = 65536
CHUNK = 8192  # bytes of keys per datagram
RETRY_S = 0.005  # after a full queue


class DatagramWakeup:
    """Tell peers which sessions changed; hear which sessions peers changed."""

    def __init__(self, directory: Path, namespace: str) -> None:
        self.directory = directory
        # One namespace per node database: several nodes may run on one host.
        self.prefix = "cobrowse-" + hashlib.sha256(namespace.encode()).hexdigest()[:16] + "-"
        self.pid = os.getpid()
        self.sock: socket.socket | None = None
        self.peers: list[int] = []
        self.peers_read_at = -PEERS_REFRESH_S
        self.changed: set[str] = set()
        self.arrived = asyncio.Event()
        self.announced = False
        self.outbox: set[str] = set()  # keys this loop turn stored, not sent yet
        self.pending: dict[int, set[str]] = {}  # peer -> keys it has yet to hear about
        self.flush_scheduled = False

    def _address(self, pid: int) -> str:
        return "\0" + self.prefix + str(pid)

    def start(self) -> None:
        """Bind this worker's socket and announce it."""
        self.pid = os.getpid()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(self._address(self.pid))
        sock.setblocking(False)
        self.sock = sock
        self.announced = False
        self._announce()
        asyncio.get_running_loop().add_reader(sock.fileno(), self._readable)

    def _announce(self) -> None:
        """Leave the marker peers look for; retried each second while the disk refuses it."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            (self.directory / str(self.pid)).touch()
        except OSError as error:
            log.warning("cannot announce this worker's wake-up socket yet: %s", error)
            return
        self.announced = True

    def stop(self) -> None:
        if self.sock is None:
            return
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(self.sock.fileno())
        self.sock.close()
        self.sock = None
        with contextlib.suppress(OSError):
            (self.directory / str(self.pid)).unlink()

    def _readable(self) -> None:
        assert self.sock is not None
        while True:
            try:
                data = self.sock.recv(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as error:
                log.warning("wake-up socket: %s", error)
                break
            self.changed.update(data.decode("ascii", "replace").split("\n"))
        self.arrived.set()

    def watch(self, session_key: str, after_seq: int) -> None:
        """Nothing to do: peers name the sessions that changed."""

    def advance(self, session_key: str, seq: int) -> None:
        """Nothing to do: peers name the sessions that changed."""

    def unwatch(self, session_key: str) -> None:
        """Nothing to do: peers name the sessions that changed."""

    def take(self, session_key: str, after_seq: int) -> None:
        """Nothing read ahead: a datagram names a session, the hub reads its log."""
        return None

    def notify(self, session_key: str) -> None:
        """Tell every other worker of this node that `session_key` has new entries."""
        if self.sock is None:
            return
        self.outbox.add(session_key)
        self._schedule(0.0)

    def _schedule(self, delay: float) -> None:
        if not self.flush_scheduled:
            self.flush_scheduled = True
            asyncio.get_running_loop().call_later(delay, self._flush)

    def _flush(self) -> None:
        """Send the keys stored this turn (and any still pending) to every peer."""
        self.flush_scheduled = False
        if self.sock is None:
            return
        keys, self.outbox = self.outbox, set()
        peers = self._current_peers()
        for pid in peers:
            self.pending.setdefault(pid, set()).update(keys)
        for pid in [pid for pid in self.pending if pid not in peers]:
            del self.pending[pid]  # a worker that is gone
        for pid, waiting in list(self.pending.items()):
            if waiting and not self._send(pid, waiting):
                self._schedule(RETRY_S)  # its queue is full: merge, and try again shortly

    def _send(self, pid: int, keys: set[str]) -> bool:
        """Send `keys` to one peer, removing what went; return whether all went."""
        assert self.sock is not None
        while keys:
            chunk: list[str] = []
            size = 0
            for key in keys:
                if size + len(key) + 1 > CHUNK and chunk:
                    break
                chunk.append(key)
                size += len(key) + 1
            try:
                self.sock.sendto("\n".join(chunk).encode(), self._address(pid))
            except BlockingIOError:
                return False
            except OSError as error:
                if error.errno in (errno.ECONNREFUSED, errno.ENOENT):
                    self._forget(pid)  # a worker that is gone
                    self.pending.pop(pid, None)
                    return True
                log.warning("wake-up of worker %d: %s", pid, error)
                return False
            keys.difference_update(chunk)
        return True

    async def wait(self, timeout: float) -> set[str] | None:
        """Return the sessions peers changed; None after `timeout` without any (check all)."""
        if not self.announced:
            self._announce()
        if not self.changed:
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), timeout)
        if not self.changed:
            return None
        changed, self.changed = self.changed, set()
        return changed

    def _current_peers(self) -> list[int]:
        now = time.monotonic()
        if now - self.peers_read_at >= PEERS_REFRESH_S:
            self.peers_read_at = now
            if not self.announced:
                self._announce()
            try:
                names = os.listdir(self.directory)
            except OSError:
                names = []
            self.peers = [int(name) for name in names if name.isdigit() and int(name) != self.pid]
        return self.peers

    def _forget(self, pid: int) -> None:
        with contextlib.suppress(ValueError):
            self.peers.remove(pid)
        with contextlib.suppress(OSError):
            (self.directory / str(pid)).unlink()
