"""The hand-over of sessions from customers to agents: newest first, never after a stop."""

from __future__ import annotations

import time

import gevent

from tests.loadtest_modules import import_loadtest

pool_module = import_loadtest("pool")


def session(token: str, node: str = "node-1"):
    return pool_module.SharedSession(token, node)


def test_agents_claim_the_newest_session_first():
    pool = pool_module.SessionPool()
    for token in ("100000001", "100000002", "100000003"):
        pool.publish(session(token))
    assert [pool.claim().session_token for _ in range(3)] == ["100000003", "100000002", "100000001"]
    assert pool.claim() is None


def test_a_closed_session_is_never_claimed():
    pool = pool_module.SessionPool()
    old, new = session("100000001"), session("100000002")
    pool.publish(old)
    pool.publish(new)
    new.closed = True
    claimed = pool.claim()
    assert claimed is old
    assert claimed.claimed
    assert pool.claim() is None


def test_the_pool_is_bounded_and_drops_the_oldest():
    pool = pool_module.SessionPool(capacity=2)
    for token in ("100000001", "100000002", "100000003"):
        pool.publish(session(token))
    assert len(pool) == 2
    assert [pool.claim().session_token for _ in range(2)] == ["100000003", "100000002"]


def test_close_returns_at_once_when_an_agent_has_joined():
    shared = session("100000001")
    shared.claimed = True
    shared.joined.set()
    started = time.monotonic()
    assert pool_module.SessionPool.close(shared, hold_s=5.0, read_deadline_s=5.0)
    assert time.monotonic() - started < 1.0
    assert shared.closed


def test_close_gives_up_after_the_hold_when_no_agent_came():
    shared = session("100000001")
    started = time.monotonic()
    assert not pool_module.SessionPool.close(shared, hold_s=0.05, read_deadline_s=5.0)
    assert 0.04 <= time.monotonic() - started < 1.0
    assert shared.closed  # from now on no agent may claim it, so its stop races with nothing


def test_close_waits_for_a_read_in_flight_so_the_stop_cannot_overtake_it():
    shared = session("100000001")
    shared.claimed = True  # an agent's Get Session is on its way
    gevent.spawn_later(0.1, shared.joined.set)
    started = time.monotonic()
    assert pool_module.SessionPool.close(shared, hold_s=0.01, read_deadline_s=5.0)
    assert time.monotonic() - started >= 0.09


def test_a_claim_waits_for_a_publish_at_most_its_timeout():
    pool = pool_module.SessionPool()
    started = time.monotonic()
    assert pool.claim(timeout_s=0.05) is None
    assert 0.04 <= time.monotonic() - started < 1.0


def test_clear_empties_the_pool():
    pool = pool_module.SessionPool()
    pool.publish(session("100000001"))
    pool.clear()
    assert pool.claim() is None
