"""Under steady writes the WAL still rewinds: no commit in the event loop checkpoints it itself.

A passive checkpoint never catches up with a WAL that grows under steady writes, so the WAL
would never rewind, and once it reached `wal_autocheckpoint` a commit would checkpoint it in
the event loop (tens of milliseconds). The background checkpoint takes the write lock when the
WAL is long, so the WAL rewinds and stays short.
"""

from __future__ import annotations

import pytest

from cobrowse.store import Session, sqlite_db
from cobrowse.store.sqlite import SqliteSessionStore

NOW = 1_700_000_000_000
WRITES = 4_000
PAGE = 4096


@pytest.fixture
def eager_checkpoints(monkeypatch):
    monkeypatch.setattr(sqlite_db, "CHECKPOINT_INTERVAL_S", 0.01)
    monkeypatch.setattr(sqlite_db, "REWIND_AFTER_FRAMES", 100, raising=False)
    # No safety net: commits never checkpoint by themselves here.
    monkeypatch.setattr(sqlite_db, "AUTOCHECKPOINT_PAGES", 1_000_000)


async def test_the_wal_stays_short_under_steady_writes(eager_checkpoints, tmp_path) -> None:
    store = SqliteSessionStore.at(tmp_path / "node.db")
    try:
        for index in range(WRITES):
            await store.create(
                Session(f"{index:09d}", f"1{index:022d}", NOW, NOW + 600_000, customer_id="c")
            )
        wal_bytes = (tmp_path / "node.db-wal").stat().st_size
    finally:
        await store.close()
    # Every create appends two or three pages: a WAL that never rewound would hold them all
    # (over 10 000 pages); one that rewinds holds what came since the last rewind.
    assert wal_bytes < WRITES * PAGE, f"the WAL grew to {wal_bytes // PAGE} pages"
