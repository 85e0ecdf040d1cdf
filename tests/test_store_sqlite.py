"""The SQLite store: concurrent migrations, timeouts, history retention and token reuse."""

from __future__ import annotations

import asyncio
import fcntl
import itertools
import multiprocessing
import os
import sqlite3
import threading
import time

import pytest

from cobrowse.store import Session, TokenConflictError
from cobrowse.store.schema import MIGRATIONS, migrate
from cobrowse.store.sqlite import SqliteSessionStore

NOW = 1_700_000_000_000


def session(number: int, expires_in_ms: int = 60_000) -> Session:
    return Session(
        session_token=f"1{number:08d}",
        user_token=f"1{number:022d}",
        activation_time=NOW,
        expires_at=NOW + expires_in_ms,
    )


def _open_and_create(path: str, start, index: int) -> None:
    start.wait()
    store = SqliteSessionStore.at(__import__("pathlib").Path(path))
    asyncio.run(store.create(session(index)))


def test_many_processes_migrate_the_same_new_database_at_once(tmp_path):
    """Eight processes open a fresh file at the same instant: one migrates, none fails."""
    path = tmp_path / "race.db"
    # spawn, not fork: this test process runs checkpoint threads, and forking a process whose
    # other threads may hold SQLite's locks can deadlock the child (Gunicorn's master opens none).
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(8)
    workers = [
        context.Process(target=_open_and_create, args=(str(path), start, index))
        for index in range(8)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(90)  # spawn imports the project in each process: slow on a busy machine
    assert [worker.exitcode for worker in workers] == [0] * 8, "a process failed or hung"
    connection = sqlite3.connect(path)
    assert connection.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert connection.execute("SELECT count(*) FROM sessions").fetchone()[0] == 8


def _hold_write_lock(path, seconds: float) -> threading.Thread:
    """Create `path` (another application's table, in the default rollback journal), then hold
    SQLite's RESERVED lock on it from another connection for `seconds`."""
    sqlite3.connect(path).execute("CREATE TABLE other_app (x)").connection.close()
    holding = threading.Event()

    def hold() -> None:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        holding.set()
        time.sleep(seconds)
        other.execute("ROLLBACK")
        other.close()

    holder = threading.Thread(target=hold)
    holder.start()
    assert holding.wait(5), "the other connection never took the lock"
    return holder


def test_migration_waits_for_a_writer_while_switching_to_wal(tmp_path):
    """SQLite refuses the WAL switch at once, busy timeout or not, while another holds the lock."""
    path = tmp_path / "held.db"
    holder = _hold_write_lock(path, 0.3)
    connection = sqlite3.connect(path, isolation_level=None, timeout=5)
    started = time.monotonic()
    assert migrate(connection, timeout_s=5) == len(MIGRATIONS)
    holder.join(5)
    assert time.monotonic() - started >= 0.2, "migrated while another connection held the lock"
    assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_migration_gives_up_at_its_deadline_when_the_lock_is_never_released(tmp_path):
    path = tmp_path / "held.db"
    holder = _hold_write_lock(path, 1.0)
    connection = sqlite3.connect(path, isolation_level=None, timeout=0.1)
    started = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        migrate(connection, timeout_s=0.2)
    assert 0.15 <= time.monotonic() - started < 0.9
    holder.join(5)


async def test_a_live_token_cannot_be_taken_twice(tmp_path):
    store = SqliteSessionStore.at(tmp_path / "s.db")
    await store.create(session(1))
    clash = Session("100000001", "2" + "x" * 22, NOW, NOW + 1000)
    with pytest.raises(TokenConflictError):
        await store.create(clash)


async def test_a_token_is_free_again_once_its_session_ended(tmp_path):
    store = SqliteSessionStore.at(tmp_path / "s.db")
    await store.create(session(1))
    await store.stop(session(1).user_token, NOW + 10)
    await store.create(Session("100000001", "2" + "y" * 22, NOW + 20, NOW + 60_000))
    assert (await store.get_live("100000001", NOW + 30)).user_token == "2" + "y" * 22


async def test_inactivity_ends_a_session_at_its_deadline(tmp_path):
    store = SqliteSessionStore.at(tmp_path / "s.db")
    await store.create(session(1, expires_in_ms=60_000))
    assert await store.get_live("100000001", NOW + 59_999) is not None
    assert await store.get_live("100000001", NOW + 60_000) is None
    stopped = await store.stop(session(1).user_token, NOW + 500_000)
    assert stopped.session.deactivation_time == NOW + 60_000
    assert stopped.session.end_reason == "timeout"


async def test_sweep_ends_timed_out_sessions_and_purges_old_history(tmp_path):
    store = SqliteSessionStore.at(tmp_path / "s.db")
    await store.create(session(1, expires_in_ms=1_000))  # will time out
    await store.create(session(2))
    await store.create(session(3))
    await store.stop(session(3).user_token, NOW + 10)  # ended, history
    result = await store.sweep(NOW + 2_000, retention_ms=10_000)
    assert (result.timed_out, result.purged) == (1, 0)
    assert await store.live_count(NOW + 2_000) == 1
    result = await store.sweep(NOW + 20_000, retention_ms=10_000)
    assert result.purged == 2  # sessions 1 and 3 ended more than 10 s before
    assert await store.get_by_user_token(session(2).user_token) is not None


async def test_node_state_switches(tmp_path):
    store = SqliteSessionStore.at(tmp_path / "s.db")
    assert not (await store.node_state()).draining
    await store.set_node_state(draining=True)
    other = SqliteSessionStore.at(tmp_path / "s.db")  # another worker's view
    assert (await other.node_state()).draining
    await other.set_node_state(draining=False, stopping=True)
    assert (await store.node_state()).stopping
    assert not (await store.node_state()).draining


async def test_a_write_waits_for_another_process_without_stalling_the_loop(tmp_path):
    """While another process holds the write lock, the loop keeps running; the write follows."""
    store = SqliteSessionStore.at(tmp_path / "s.db")
    await store.open()
    # Another open file description of the lock file behaves as another process's lock.
    holder = os.open(f"{tmp_path / 's.db'}.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(holder, fcntl.LOCK_EX)
    loop = asyncio.get_running_loop()
    loop.call_later(0.3, fcntl.flock, holder, fcntl.LOCK_UN)
    ticks: list[float] = []

    async def tick() -> None:
        while len(ticks) < 30:
            ticks.append(loop.time())
            await asyncio.sleep(0.01)

    started = loop.time()
    ticker = asyncio.create_task(tick())
    await store.create(session(1))
    written = loop.time()
    await ticker
    os.close(holder)
    assert written - started >= 0.25, "the write did not wait for the lock"
    assert store.database._loop_writer.waited == 1
    gaps = [later - earlier for earlier, later in itertools.pairwise(ticks)]
    assert max(gaps) < 0.1, f"the loop stalled for {max(gaps):.3f} s"
    assert await store.get_live(session(1).session_token, NOW) is not None


async def test_writes_asked_for_together_commit_together_and_fail_alone(tmp_path):
    store = SqliteSessionStore.at(tmp_path / "s.db")
    await store.open()
    clash = Session("100000003", "9" + "z" * 22, NOW, NOW + 60_000)  # sessionToken of #3
    results = await asyncio.gather(
        *(store.create(session(number)) for number in range(1, 21)),
        store.create(clash),
        return_exceptions=True,
    )
    assert results[:20] == [None] * 20
    assert isinstance(results[20], TokenConflictError)  # it failed alone...
    for number in range(1, 21):  # ...and undid nothing of the others
        assert await store.get_live(session(number).session_token, NOW) is not None
    # One turn of the loop asked for 21 writes: they shared a commit or two, not 21.
    assert store.database._loop_writer.batches <= 2
