"""Consent first (REALTIME invariant 1): nothing of the page reaches an agent before it."""

from __future__ import annotations

from tests.integration.realtime_client import LiveSession, Peer, incremental, snapshot


def test_an_accepted_agent_receives_the_customers_events_in_order(live_node):
    session = LiveSession.create(live_node.base)
    joined = session.join("Ann")
    customer = Peer.open(live_node.base, session.user_token)
    welcome = customer.hello()
    assert (welcome["role"], welcome["mode"]) == ("customer", "pointer")
    request = customer.expect("join-request")
    assert (request["userId"], request["name"]) == (joined["userId"], "Ann")

    agent = Peer.open(live_node.base, joined["userToken"])
    agent_welcome = agent.hello()
    assert (agent_welcome["role"], agent_welcome["userId"]) == ("agent", joined["userId"])
    # Recorded before consent (a page the customer had open): must not reach the agent.
    customer.send({"type": "events", "cseq": 1, "data": snapshot("before-consent")})
    customer.expect("ack", cseq=1)
    customer.send({"type": "events", "cseq": 2, "data": incremental(2)})
    customer.expect("ack", cseq=2)
    assert agent.silent_for(0.5), agent.received

    customer.send({"type": "consent", "userId": joined["userId"], "accept": True})
    customer.expect("joined", userId=joined["userId"])
    customer.expect("snapshot-request")
    agent.expect("joined", userId=joined["userId"])
    customer.send({"type": "events", "cseq": 3, "data": snapshot("after-consent")})
    customer.expect("ack", cseq=3)
    for cseq in range(4, 24):
        customer.send({"type": "events", "cseq": cseq, "data": incremental(cseq)})
        customer.expect("ack", cseq=cseq)
    got = [agent.expect("events") for _ in range(21)]
    assert [frame["cseq"] for frame in got] == list(range(3, 24))
    assert got[0]["data"][1]["data"]["marker"] == "after-consent"
    seqs = [frame["seq"] for frame in got]
    assert seqs == sorted(set(seqs))
    assert all(frame["from"] == welcome["userId"] for frame in got)
    customer.close()
    agent.close()


def test_a_declined_agent_is_ended_and_its_token_refused(live_node):
    session = LiveSession.create(live_node.base)
    joined = session.join("Bob")
    customer = Peer.open(live_node.base, session.user_token)
    customer.hello()
    agent = Peer.open(live_node.base, joined["userToken"])
    agent.hello()
    customer.expect("join-request")
    customer.send({"type": "events", "cseq": 1, "data": snapshot()})
    customer.send({"type": "consent", "userId": joined["userId"], "accept": False})
    ended = agent.expect("ended")
    assert ended["reason"] == "declined"
    assert agent.close_code() == 4410
    again = Peer.open(live_node.base, joined["userToken"])
    again.send({"type": "hello", "lastSeq": 0})
    assert again.close_code() == 4404
    # Nothing of the page ever reached the declined agent.
    assert not [frame for frame in agent.received if frame["type"] == "events"]
    customer.close()


def test_a_waiting_agent_cannot_act(live_node):
    session = LiveSession.create(live_node.base)
    joined = session.join()
    agent = Peer.open(live_node.base, joined["userToken"])
    agent.hello()
    agent.send({"type": "pointer", "x": 1, "y": 1})
    error = agent.expect("error")
    assert error["request"] == "pointer"
    assert "accepted" in error["errorMessage"]
    agent.close()
