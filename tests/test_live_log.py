"""The live log in each store: bounded from the last full snapshot, seqs in order, once."""

from __future__ import annotations

import uuid

import pytest

from cobrowse.realtime import messages
from cobrowse.store import Session
from cobrowse.store.live import AGENTS

NOW = 1_700_000_000_000
KEY = "1" + "k" * 22


@pytest.fixture(params=["sqlite", "redis"])
async def stores(request, tmp_path):
    """A session store and a live store on one backend, with one live session."""
    if request.param == "sqlite":
        from cobrowse.store.sqlite import SqliteSessionStore
        from cobrowse.store.sqlite_live import SqliteLiveStore

        sessions = SqliteSessionStore.at(tmp_path / "live.db")
        live = SqliteLiveStore(sessions.database)
    else:
        from cobrowse.config.settings import StoreSettings
        from cobrowse.store.redis import RedisSessionStore, connect
        from cobrowse.store.redis_live import RedisLiveStore
        from cobrowse.store.sqlite import SqliteSessionStore

        server = request.getfixturevalue("redis_server")
        prefix = f"log-{uuid.uuid4().hex}:"
        client = connect(StoreSettings(backend="redis", url=server.url, prefix=prefix))
        sessions = RedisSessionStore(client, prefix, SqliteSessionStore.at(tmp_path / "n.db"))
        live = RedisLiveStore(client, prefix)
    await sessions.create(Session("123456789", KEY, NOW, NOW + 600_000, customer_id="c1"))
    yield sessions, live
    await sessions.close()


def batch(cseq: int, size: int = 100, snapshot: bool = False) -> messages.Draft:
    data = [{"type": 2 if snapshot else 3, "data": {"x": "y" * size}}]
    return messages.events("c1", cseq, data)


async def store(live, cseq, **options):
    return await live.append_events(
        KEY,
        cseq,
        batch(cseq, **options),
        NOW,
        max_log_bytes=2_000,
        snapshot_request=messages.snapshot_request("log"),
    )


async def test_batches_get_increasing_seqs_and_a_resent_one_is_stored_once(stores):
    _, live = stores
    first = await store(live, 1, snapshot=True)
    second = await store(live, 2)
    again = await store(live, 2)
    assert (first.stored.seq, second.stored.seq) == (1, 2)
    assert again.stored is None
    assert again.refused is None  # acknowledged again, not stored twice
    kept = await live.entries_after(KEY, 0, 100)
    assert [entry.seq for entry in kept] == [1, 2]
    assert all(entry.audience == AGENTS for entry in kept)
    assert b'"cseq":2' in kept[1].payload


async def test_past_the_bound_a_snapshot_is_requested_then_batches_refused_until_one_comes(
    stores,
):
    _, live = stores
    await store(live, 1, snapshot=True)
    outcomes = [await store(live, cseq, size=400) for cseq in range(2, 12)]
    requested = [entry for outcome in outcomes for entry in outcome.entries]
    kinds = [entry.kind for entry in requested]
    assert kinds.count("snapshot-request") == 1  # once, until the next snapshot
    assert outcomes[-1].refused == "full"  # past twice the bound: incremental batches refused
    fresh = await store(live, 12, snapshot=True)  # a snapshot is always taken
    assert fresh.stored is not None
    kept = [entry for entry in await live.entries_after(KEY, 0, 100) if entry.kind == "events"]
    # The log starts again at the new snapshot: the batches before it are gone.
    assert [entry.seq for entry in kept] == [fresh.stored.seq]
    after = await store(live, 13, size=400)
    assert after.refused is None


async def test_ending_the_session_drops_its_live_content(stores):
    sessions, live = stores
    await store(live, 1, snapshot=True)
    await store(live, 2)
    result = await sessions.stop(KEY, NOW + 1)
    assert [entry.kind for entry in result.entries] == ["ended"]
    assert [entry.kind for entry in await live.entries_after(KEY, 0, 100)] == ["ended"]
    assert (await store(live, 3)).refused == "ended"
