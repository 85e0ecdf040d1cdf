"""The end of a session reaches every channel at once; restarts and reloads lose nothing acked."""

from __future__ import annotations

import signal
import sqlite3
import time

import pytest

from tests.helpers import children_of, start_node, wait_until, write_cluster
from tests.integration.realtime_client import (
    ORIGIN,
    LiveSession,
    Peer,
    connect_pair,
    incremental,
)

INACTIVITY_S = 3
LIVE_SECTIONS = {"session": {"inactivityTimeout": str(INACTIVITY_S)}}


def ended_within(peer: Peer, reason: str, seconds: float) -> float:
    started = time.monotonic()
    assert peer.expect("ended", timeout=seconds + 5)["reason"] == reason
    assert peer.close_code() == 4410
    return time.monotonic() - started


def test_stop_session_ends_every_channel_within_a_second(live_node):
    session = LiveSession.create(live_node.base)
    customer, agent, _ = connect_pair(session)
    started = time.monotonic()
    session.stop()
    for peer in (customer, agent):
        ended_within(peer, "stop", 1)
    assert time.monotonic() - started < 1.0


def test_the_customers_exit_ends_the_session(live_node):
    session = LiveSession.create(live_node.base)
    customer, agent, _ = connect_pair(session)
    customer.send({"type": "exit"})
    ended_within(agent, "exit", 1)
    ended_within(customer, "exit", 1)


def test_an_agents_exit_leaves_and_frees_its_place(live_node):
    session = LiveSession.create(live_node.base)
    customer, agent, joined = connect_pair(session)
    agent.send({"type": "exit"})
    assert agent.close_code() == 1000
    assert customer.expect("left")["userId"] == joined["userId"]
    session.join("Next")  # maxAgents = 1, and the place is free again
    customer.close()


def test_an_open_customer_channel_keeps_the_session_alive_then_inactivity_ends_it(live_node):
    session = LiveSession.create(live_node.base)
    customer, agent, _ = connect_pair(session)
    time.sleep(INACTIVITY_S + 1.5)  # longer than inactivityTimeout: the open channel is activity
    customer.send({"type": "events", "cseq": 2, "data": incremental(2)})
    customer.expect("ack", cseq=2)
    agent.expect("events", cseq=2)
    customer.close()
    # Without the customer, the agent's channel ends with the session, within a second of its
    # deadline (the last activity plus inactivityTimeout).
    closed_at = time.monotonic()
    waited = ended_within(agent, "timeout", INACTIVITY_S + 1)
    assert waited <= INACTIVITY_S + 1, waited
    assert time.monotonic() - closed_at >= 0  # for the reader: measured from the close


def test_the_log_of_an_ended_session_is_gone(live_node):
    session = LiveSession.create(live_node.base)
    customer, agent, _ = connect_pair(session)
    customer.send({"type": "events", "cseq": 2, "data": incremental(2)})
    customer.expect("ack", cseq=2)
    session.stop()
    ended_within(agent, "stop", 1)
    kinds, user_data = stored_log_and_data(live_node, session.user_token)
    # Only the `ended` marker stays, for the workers to deliver; the sweep removes it later.
    assert kinds == ["ended"]
    assert user_data is None


def stored_log_and_data(node, session_key: str) -> tuple[list[str], str | None]:
    """Read what the store keeps of a session's log and attached data, on either backend."""
    if node.store["backend"] == "redis":
        import redis

        client = redis.Redis.from_url(node.store["url"])
        prefix = node.store["prefix"]
        entries = client.xrange(f"{prefix}l:{session_key}")
        data = client.hget(f"{prefix}s:{session_key}", "user_data")
        return [fields[b"k"].decode() for _, fields in entries], data
    database = node.directory / "data" / "node-1" / "node-1.db"
    with sqlite3.connect(database) as connection:
        kinds = connection.execute(
            "SELECT kind FROM live_log WHERE session_key = ?", (session_key,)
        ).fetchall()
        (data,) = connection.execute(
            "SELECT user_data FROM sessions WHERE user_token = ?", (session_key,)
        ).fetchone()
    return [kind for (kind,) in kinds], data


@pytest.fixture
def restartable(tmp_path):
    config = write_cluster(
        tmp_path,
        nodes=1,
        workers=4,
        sections={
            "cross-origin": {"allowedOrigins": ORIGIN},
            "security": {"rateLimit.sessions.join": "0"},
        },
    )
    from cobrowse.config.loader import load_cluster

    base = load_cluster(config).node("node-1").base_url + "/cobrowse"
    nodes = [start_node(config, "node-1", tmp_path)]
    yield config, base, nodes
    for node in nodes:
        node.stop()


def test_a_node_restart_closes_with_1001_and_clients_resume_losing_nothing(restartable, tmp_path):
    config, base, nodes = restartable
    session = LiveSession.create(base)
    customer, agent, joined = connect_pair(session)
    for cseq in range(2, 12):
        customer.send({"type": "events", "cseq": cseq, "data": incremental(cseq)})
        customer.expect("ack", cseq=cseq)
    got = [agent.expect("events") for _ in range(10)]
    agent_last = got[-1]["seq"]
    customer_last = max(frame.get("seq", 0) for frame in customer.received)
    assert nodes[0].stop() == 0
    assert customer.close_code() == 1001
    assert agent.close_code() == 1001
    nodes.append(start_node(config, "node-1", tmp_path))
    customer = Peer.open(base, session.user_token)
    customer.hello(last_seq=customer_last)
    agent = Peer.open(base, joined["userToken"])
    agent.hello(last_seq=agent_last)
    # Resent after the restart: 11 was acked before it, so it is acked again but not stored.
    for cseq in range(11, 14):
        customer.send({"type": "events", "cseq": cseq, "data": incremental(cseq)})
        customer.expect("ack", cseq=cseq)
    after = [agent.expect("events")["cseq"] for _ in range(2)]
    assert after == [12, 13]
    assert agent.silent_for(0.3)
    customer.close()
    agent.close()


def test_a_reload_closes_channels_with_1012_and_they_resume(restartable):
    _, base, nodes = restartable
    session = LiveSession.create(base)
    customer, agent, joined = connect_pair(session)
    before = set(children_of(nodes[0].pid))
    nodes[0].signal(signal.SIGHUP)
    assert customer.close_code(timeout=30) == 1012
    assert agent.close_code(timeout=30) == 1012
    wait_until(
        lambda: not set(children_of(nodes[0].pid)) & before and len(children_of(nodes[0].pid)) == 4,
        30,
        "workers replaced",
    )
    customer = Peer.open(base, session.user_token)
    customer.hello(last_seq=0)
    agent = Peer.open(base, joined["userToken"])
    agent.hello(last_seq=1)
    customer.send({"type": "events", "cseq": 2, "data": incremental(2)})
    customer.expect("ack", cseq=2)
    assert agent.expect("events", cseq=2)
    customer.close()
    agent.close()
