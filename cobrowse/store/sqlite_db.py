"""SQLite connections for a multi-process, multi-threaded node.

- Connections are opened lazily, per process and per thread, so that nothing opened in the
  Gunicorn master is ever inherited by a worker.
- WAL lets readers run beside the one writer.
- Writers queue on a lock file (flock) instead of on SQLite's busy handler: the busy handler
  sleeps 1, 2, 5, 10... ms between retries, far longer than a write (~50 us), whereas a blocked
  flock wakes the moment it is released.
- Checkpoints (copying the WAL back into the database, with an fsync) run in a background
  thread of each process instead of inside whichever request happens to commit the 1000th page.
- On the event loop (`write`), a write never waits: it takes the write lock without blocking
  when it is free and then runs inline (tens of microseconds, no fsync in WAL with
  synchronous=NORMAL); only when another process holds the lock does it wait for it in a thread,
  so the loop keeps serving meanwhile.
- Writes that coroutines ask for in the same turn of the loop are committed together (group
  commit): one lock, one transaction, one commit, each write in a savepoint of its own, so a
  write that fails undoes only itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from cobrowse.store import StoreUnavailableError
from cobrowse.store.schema import migrate

log = logging.getLogger("cobrowse.store")

CHECKPOINT_INTERVAL_S = 0.25
# Past this many frames in the WAL, the background checkpoint takes the write lock, so that it
# completes and the next commit rewinds the WAL (see `_checkpoint_loop`).
REWIND_AFTER_FRAMES = 4_000
# Commits only checkpoint by themselves if the background thread falls this far behind.
AUTOCHECKPOINT_PAGES = 10_000

T = TypeVar("T")


Outcome = tuple[Any, BaseException | None]


def _checkpoint(connection: sqlite3.Connection) -> int:
    """Run a passive checkpoint; return the frames in the WAL (0 when not in WAL mode)."""
    row = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return 0 if row is None or row[1] < 0 else int(row[1])


def _read_only(outcome: Outcome) -> bool:
    """Return whether a write failed because its connection cannot write."""
    error = outcome[1]
    return isinstance(error, sqlite3.OperationalError) and "readonly" in str(error)


def _run_batch(
    connection: sqlite3.Connection, works: list[Callable[[sqlite3.Connection], Any]]
) -> list[Outcome]:
    """Run writes in one transaction, each in a savepoint; return each one's result or error."""
    if len(works) == 1:  # alone: its own statement (or `transaction`) commits it
        try:
            return [(works[0](connection), None)]
        except Exception as error:
            return [(None, error)]
    outcomes: list[Outcome] = []
    try:
        connection.execute("BEGIN")
        for work in works:
            connection.execute("SAVEPOINT one_write")
            try:
                result = work(connection)
            except Exception as error:
                connection.execute("ROLLBACK TO one_write")
                connection.execute("RELEASE one_write")
                outcomes.append((None, error))
                continue
            connection.execute("RELEASE one_write")
            outcomes.append((result, None))
        connection.execute("COMMIT")
    except sqlite3.DatabaseError as error:  # the commit failed (a full disk): all of it did
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        return [(None, error)] * len(works)
    return outcomes


class _LoopWriter:
    """The per-process state of writes made from the event loop.

    Its own lock-file descriptor: flock locks belong to an open file description, so writes from
    the loop and writes from threads of the same process (`writing`) still exclude each other.
    """

    def __init__(self, lock_path: str) -> None:
        self.pid = os.getpid()
        self.descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        self.loop: asyncio.AbstractEventLoop | None = None
        # Writes asked for, and the task committing them; one batch at a time per process.
        self.batch: list[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]]] = []
        self.committer: asyncio.Task[None] | None = None
        self.scheduled = False  # a flush is due in this turn of the loop
        # One thread is enough: it only ever waits for the lock, then hands it to the loop.
        self.waiter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-lock")
        self.waited = 0  # batches that had to wait for another process (for tests, metrics)
        self.batches = 0


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
        self._loop_writer: _LoopWriter | None = None

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

    async def write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work` under the node-wide write lock without ever blocking the event loop.

        `work` runs in a transaction of its own (a savepoint when it shares the commit of
        others): it must not begin or commit one itself (`transaction` nests, it does not).
        """
        self.connection()  # first: opening creates the directory and migrates
        try:
            writer = self._writer_for_loop()
        except OSError as error:  # the lock file cannot be opened: a read-only or full disk
            raise StoreUnavailableError(f"cannot open {self.path}.lock: {error}") from error
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        writer.batch.append((work, future))
        if not writer.scheduled and (writer.committer is None or writer.committer.done()):
            # A callback, not an immediate write: it runs after the coroutines ready in this
            # turn of the loop have asked for their writes too.
            writer.scheduled = True
            loop.call_soon(self._flush, writer)
        return await future

    def _flush(self, writer: _LoopWriter) -> None:
        """Commit the writes asked for this turn inline if the lock is free, else in a task."""
        writer.scheduled = False
        if not writer.batch or (writer.committer is not None and not writer.committer.done()):
            return
        try:
            fcntl.flock(writer.descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # another process writes: wait for it without blocking the loop
            writer.committer = asyncio.get_running_loop().create_task(self._commit(writer))
            return
        except OSError as error:
            self._fail_all(writer, StoreUnavailableError(f"cannot lock {self.path}: {error}"))
            return
        self._commit_locked(writer)

    async def _commit(self, writer: _LoopWriter) -> None:
        """Commit the batches asked for, one after the other, waiting for the lock."""
        while writer.batch:
            try:
                try:
                    fcntl.flock(writer.descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    await self._wait_for_lock(writer)
            except BaseException as error:
                # Nobody may wait forever: every write asked for so far fails with this.
                self._fail_all(
                    writer,
                    StoreUnavailableError(f"cannot lock {self.path}: {error}")
                    if isinstance(error, OSError)
                    else error,
                )
                raise
            self._commit_locked(writer)

    @staticmethod
    def _fail_all(writer: _LoopWriter, failure: BaseException) -> None:
        batch, writer.batch = writer.batch, []
        for _, future in batch:
            if not future.done():
                future.set_exception(failure)

    def _commit_locked(self, writer: _LoopWriter) -> None:
        """Run the pending batch under the lock already taken, release it, settle each write."""
        batch = [item for item in writer.batch if not item[1].done()]
        writer.batch = []
        works = [work for work, _ in batch]
        if not works:  # every write asked for was cancelled meanwhile
            fcntl.flock(writer.descriptor, fcntl.LOCK_UN)
            return
        try:
            connection = self.connection()
            outcomes = _run_batch(connection, works)
            if any(_read_only(outcome) for outcome in outcomes):
                # Opened while the disk was read-only, a connection stays read-only: a
                # new one writes once the disk is writable again (nothing was written).
                self.forget_connection()
                outcomes = _run_batch(self.connection(), works)
        except StoreUnavailableError as error:  # the new connection cannot open
            outcomes = [(None, error)] * len(works)
        finally:
            fcntl.flock(writer.descriptor, fcntl.LOCK_UN)
        writer.batches += 1
        for (_, future), (result, problem) in zip(batch, outcomes, strict=True):
            if problem is None:
                future.set_result(result)
            else:
                future.set_exception(problem)

    async def write_in_thread(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run a long write (a sweep over every session) in a thread, off the event loop."""

        def write() -> T:
            with self.writing() as connection:
                return work(connection)

        return await asyncio.to_thread(write)

    async def read_in_thread(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run a long read (a count over every session) in a thread, off the event loop."""
        return await asyncio.to_thread(lambda: work(self.connection()))

    def _writer_for_loop(self) -> _LoopWriter:
        writer = self._loop_writer
        loop = asyncio.get_running_loop()
        if writer is None or writer.pid != os.getpid():
            writer = self._loop_writer = _LoopWriter(f"{self.path}.lock")
        if writer.loop is not loop:
            # A task belongs to one loop (tests run several in turn).
            writer.loop, writer.committer, writer.scheduled = loop, None, False
        return writer

    @staticmethod
    async def _wait_for_lock(writer: _LoopWriter) -> None:
        writer.waited += 1
        loop = asyncio.get_running_loop()
        acquired = loop.run_in_executor(
            writer.waiter, fcntl.flock, writer.descriptor, fcntl.LOCK_EX
        )
        try:
            await asyncio.shield(acquired)
        except asyncio.CancelledError:
            # The thread still gets the lock: give it back as soon as it does.
            def release(done: asyncio.Future[None]) -> None:
                if not done.cancelled() and done.exception() is None:
                    fcntl.flock(writer.descriptor, fcntl.LOCK_UN)

            acquired.add_done_callback(release)
            raise

    def _open(self) -> sqlite3.Connection:
        if self.path.exists() and not os.access(self.path, os.W_OK):
            # SQLite would open it read-only, and every later connection of this process would
            # share that state (one inode, one -shm) until the last one closed: the worker could
            # never write again, even once the disk is writable. Open nothing until then.
            raise StoreUnavailableError(f"cannot open {self.path}: not writable (read-only disk?)")
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
            migrate(connection, self.busy_timeout_ms / 1000)
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
        while not self._closed.wait(CHECKPOINT_INTERVAL_S):
            try:
                # PASSIVE never waits for readers or writers. The next commit after a complete
                # checkpoint rewinds the WAL; but under steady writes a checkpoint never catches
                # up with the WAL's end, the WAL never rewinds, and once it reaches
                # AUTOCHECKPOINT_PAGES a commit checkpoints it itself, in the event loop (tens
                # of milliseconds). So past REWIND_AFTER_FRAMES the checkpoint runs again under
                # the node-wide write lock (writers wait for it off the loop), and completes.
                if _checkpoint(self.connection()) >= REWIND_AFTER_FRAMES:
                    with self.writing() as connection:
                        _checkpoint(connection)
            except (StoreUnavailableError, sqlite3.DatabaseError, OSError) as error:
                log.debug("checkpoint of %s failed: %s", self.path, error)
        self.forget_connection()

    def forget_connection(self) -> None:
        """Close this thread's connection; the next use opens a new one."""
        connection = getattr(self._local, "connection", None)
        if connection is not None and getattr(self._local, "pid", None) == os.getpid():
            with contextlib.suppress(sqlite3.Error):
                connection.close()
        self._local.pid = None

    def close(self) -> None:
        """Close this thread's connection and stop the checkpoint thread."""
        self._closed.set()
        writer, self._loop_writer = self._loop_writer, None
        if writer is not None and writer.pid == os.getpid():
            writer.waiter.shutdown(wait=False)
            os.close(writer.descriptor)
        connection = getattr(self._local, "connection", None)
        if connection is not None and getattr(self._local, "pid", None) == os.getpid():
            connection.close()
        self._local = threading.local()
