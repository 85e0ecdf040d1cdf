"""The Redis live feed: one XREAD wakes the hub and hands it the entries, without a gap."""

from __future__ import annotations

import uuid

import pytest
import redis.asyncio as aioredis

from cobrowse.realtime.hub import PULL_PAGE
from cobrowse.realtime.redis_feed import RedisFeed

KEY = "1" + "c" * 22


async def _feed_with_entries(redis_server, seqs: range, watch_after: int):
    """Return a feed watching KEY from `watch_after`, and its client, over a stream of `seqs`."""
    prefix = f"test-{uuid.uuid4().hex}:"
    client = aioredis.Redis.from_url(redis_server.url)
    for seq in seqs:
        fields = {"k": "events", "a": "agents", "p": b"payload %d" % seq, "t": seq, "s": "0"}
        await client.xadd(f"{prefix}l:{KEY}", fields, id=f"{seq}-1")
    feed = RedisFeed(client, prefix)
    feed.watch(KEY, watch_after)
    return feed, client


@pytest.mark.parametrize(
    ("cursor", "expected"),
    [
        pytest.param(0, [1, 2, 3], id="all new"),
        pytest.param(2, [3], id="some delivered already"),
        pytest.param(3, [], id="all delivered already: nothing to read"),
    ],
)
async def test_the_hub_takes_what_the_wake_up_read(redis_server, cursor, expected):
    feed, client = await _feed_with_entries(redis_server, range(1, 4), watch_after=0)
    try:
        assert await feed.wait(2.0) == {KEY}
        taken = feed.take(KEY, cursor)
        assert taken is not None
        assert [entry.seq for entry in taken] == expected
        assert [entry.payload for entry in taken] == [b"payload %d" % seq for seq in expected]
        assert feed.take(KEY, cursor) is None, "taken twice"
    finally:
        await client.aclose()


async def test_a_gap_before_what_was_read_sends_the_hub_to_the_store(redis_server):
    """The feed read from seq 5 on, the hub delivered up to 2: 3 and 4 must come from the store."""
    feed, client = await _feed_with_entries(redis_server, range(1, 8), watch_after=4)
    try:
        assert await feed.wait(2.0) == {KEY}
        assert feed.take(KEY, 2) is None
    finally:
        await client.aclose()


async def test_a_full_page_already_delivered_sends_the_hub_to_the_store(redis_server):
    """Past a full page there may be more than the feed read: only the store can say."""
    feed, client = await _feed_with_entries(redis_server, range(1, PULL_PAGE + 6), watch_after=0)
    try:
        assert await feed.wait(2.0) == {KEY}
        assert feed.take(KEY, PULL_PAGE + 5) is None

    finally:
        await client.aclose()


async def test_a_full_page_of_new_entries_is_taken_and_the_rest_read_next(redis_server):
    feed, client = await _feed_with_entries(redis_server, range(1, PULL_PAGE + 6), watch_after=0)
    try:
        assert await feed.wait(2.0) == {KEY}
        taken = feed.take(KEY, 0)
        assert taken is not None
        assert [entry.seq for entry in taken] == list(range(1, PULL_PAGE + 1))
        feed.advance(KEY, PULL_PAGE)
        assert await feed.wait(2.0) == {KEY}
        rest = feed.take(KEY, PULL_PAGE)
        assert rest is not None
        assert [entry.seq for entry in rest] == list(range(PULL_PAGE + 1, PULL_PAGE + 6))
    finally:
        await client.aclose()


async def test_what_the_hub_did_not_take_is_forgotten_at_the_next_wake_up(redis_server):
    feed, client = await _feed_with_entries(redis_server, range(1, 3), watch_after=0)
    try:
        assert await feed.wait(2.0) == {KEY}
        assert await feed.wait(0.3) is None  # nothing newer than what it read
        assert feed.take(KEY, 0) is None, "stale entries handed over"
    finally:
        await client.aclose()
