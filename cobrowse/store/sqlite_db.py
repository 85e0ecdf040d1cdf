"""SQLite connections for a multi-process, multi-threaded node.

- Connections are opened lazily, per process and per thread, so that nothing opened in the
  Gunicorn master is ever inherited by a worker.
- WAL lets readers run beside the one writer.
- Writers queue on a lock file (flock) instead of on SQLite's busy handler: the busy handler
  sleeps 1, 2, 5, 10... ms between retries, far longer than a write (~50 us), whereas a blocked
  flock wakes the moment it is released.
- Checkpoints (copying the WAL back into the database, with an fsync) run in a background
  thread of each process instead of inside whichever request happens to commit the 1000th page.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cobrowse.store import StoreUnavailableError
from cobrowse.store.schema import migrate

log = logging.getLogger("cobrowse.store")

CHECKPOINT_INTERVAL_S = 1.0
# Commits only checkpoint by themselves if the background thread falls this far behind.
AUTOCHECKPOINT_PAGES = 10_000


class SqliteDatabase:
    """Hand out one connection per process and thread, migrating the schema on first use."""

    def __init__(self, path: Path, busy_timeout_ms: int = 5000) -> None:
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        self._writer: tuple[int, threading.Lock, int] | None = None  # (pid, lock, lock-file fd)
        self._setup = threading.Lock()  # unlocked at every fork, so safe to inherit
        self._checkpointer_pid: int | None = None
        self._closed = threading.Event()

    def connection(self) -> sqlite3.Connection:
        """Return this thread's connection, opening it if this process has none yet."""
        local = self._local
        if getattr(local, "pid", None) == os.getpid():
            connection: sqlite3.Connection = local.connection
            return connection
        connection = self._open()
        local.connection, local.pid = connection, os.getpid()
        self._start_checkpointer()
        return connection

    @contextmanager
    def writing(self) -> Iterator[sqlite3.Connection]:
        """Hold the node-wide write lock (threads, then processes) around one write."""
        connection = self.connection()
        pid = os.getpid()
        writer = self._writer
        if writer is None or writer[0] != pid:
            with self._setup:
                writer = self._writer
                if writer is None or writer[0] != pid:
                    descriptor = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
                    writer = self._writer = (pid, threading.Lock(), descriptor)
        _, thread_lock, descriptor = writer
        with thread_lock:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            try:
                yield connection
            finally:
                fcntl.flock(descriptor, fcntl.LOCK_UN)

    def _open(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: autocommit, so that every single statement is atomic on its
            # own and multi-statement transactions say BEGIN IMMEDIATE explicitly.
            connection = sqlite3.connect(
                self.path,
                timeout=self.busy_timeout_ms / 1000,
                isolation_level=None,
            )
            connection.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
            migrate(connection)
            # NORMAL is durable across process crashes in WAL mode; only an OS crash or power
            # loss can roll back the last transactions, and never corrupts the file.
            connection.execute("PRAGMA synchronous = NORMAL")
            connection.execute(f"PRAGMA wal_autocheckpoint = {AUTOCHECKPOINT_PAGES}")
        except (sqlite3.DatabaseError, OSError) as error:
            raise StoreUnavailableError(f"cannot open {self.path}: {error}") from error
        return connection

    def _start_checkpointer(self) -> None:
        pid = os.getpid()
        with self._setup:
            if self._checkpointer_pid == pid:
                return
            self._checkpointer_pid = pid
        threading.Thread(
            target=self._checkpoint_loop, name="sqlite-checkpoint", daemon=True
        ).start()

    def _checkpoint_loop(self) -> None:
        connection: sqlite3.Connection | None = None
        while not self._closed.wait(CHECKPOINT_INTERVAL_S):
            try:
                if connection is None:
                    connection = self._open()
                # PASSIVE never waits for readers or writers; the next commit after a complete
                # checkpoint rewinds the WAL, so it stays small.
                connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except (StoreUnavailableError, sqlite3.DatabaseError) as error:
                log.debug("checkpoint of %s failed: %s", self.path, error)
        if connection is not None:
            connection.close()

    def close(self) -> None:
        """Close this thread's connection and stop the checkpoint thread."""
        self._closed.set()
        connection = getattr(self._local, "connection", None)
        if connection is not None and getattr(self._local, "pid", None) == os.getpid():
            connection.close()
        self._local = threading.local()
