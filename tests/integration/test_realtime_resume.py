"""Reconnect and resume (REALTIME invariant 2): nothing acknowledged lost, nothing twice."""

from __future__ import annotations

from tests.integration.realtime_client import LiveSession, Peer, connect_pair, incremental, snapshot


def send_batches(customer: Peer, cseqs: range) -> None:
    for cseq in cseqs:
        customer.send({"type": "events", "cseq": cseq, "data": incremental(cseq)})
        customer.expect("ack", cseq=cseq)


def test_an_agent_resumes_from_its_last_seq_without_loss_or_duplicate(live_node):
    customer, agent, joined = connect_pair(LiveSession.create(live_node.base))
    send_batches(customer, range(2, 6))
    got = [agent.expect("events") for _ in range(4)]
    last_seq = got[-1]["seq"]
    agent.close()
    send_batches(customer, range(6, 11))  # while the agent is away
    again = Peer.open(live_node.base, joined["userToken"])
    again.hello(last_seq=last_seq)
    resumed = [again.expect("events") for _ in range(5)]
    assert [frame["cseq"] for frame in resumed] == list(range(6, 11))
    assert resumed[0]["seq"] > last_seq
    assert again.silent_for(0.3)
    customer.close()
    again.close()


def test_a_customer_resumes_and_resent_batches_are_acked_once_stored(live_node):
    session = LiveSession.create(live_node.base)
    customer, agent, _ = connect_pair(session)
    agent.send({"type": "pointer", "x": 1, "y": 1})
    first_pointer = customer.expect("pointer")
    customer.close()
    agent.send({"type": "pointer", "x": 2, "y": 2})  # while the customer is away
    agent.send({"type": "pointer", "x": 3, "y": 3})
    again = Peer.open(live_node.base, session.user_token)
    again.hello(last_seq=first_pointer["seq"])
    assert [again.expect("pointer")["x"] for _ in range(2)] == [2, 3]
    # Batches whose ack was lost are resent: acked again, stored and forwarded once.
    send_batches(again, range(2, 4))
    for cseq in (2, 3):
        again.send({"type": "events", "cseq": cseq, "data": incremental(cseq)})
        again.expect("ack", cseq=cseq)
    send_batches(again, range(4, 5))
    forwarded = [agent.expect("events")["cseq"] for _ in range(3)]
    assert forwarded == [2, 3, 4]
    assert agent.silent_for(0.3)
    again.close()
    agent.close()


def test_a_last_seq_no_longer_kept_is_resynced_from_the_last_full_snapshot(live_node):
    customer, agent, joined = connect_pair(LiveSession.create(live_node.base))
    send_batches(customer, range(2, 4))
    old = [agent.expect("events") for _ in range(2)][-1]["seq"]
    agent.close()
    send_batches(customer, range(4, 6))
    # A new page: a full snapshot replaces the log; what the agent missed is gone.
    customer.send({"type": "events", "cseq": 6, "data": snapshot("second-page")})
    customer.expect("ack", cseq=6)
    send_batches(customer, range(7, 9))
    again = Peer.open(live_node.base, joined["userToken"])
    again.hello(last_seq=old)
    assert again.next()["type"] == "resync"
    after = [again.expect("events") for _ in range(3)]
    assert [frame["cseq"] for frame in after] == [6, 7, 8]
    assert after[0]["data"][1]["data"]["marker"] == "second-page"
    customer.close()
    again.close()


def test_a_new_agent_starts_from_the_last_full_snapshot(live_node):
    session = LiveSession.create(live_node.base)
    customer, first, _ = connect_pair(session)
    send_batches(customer, range(2, 5))
    session.join("Second", expect=409)  # maxAgents = 1: the first still holds the place
    first.send({"type": "exit"})
    assert first.close_code() == 1000
    customer.expect("left")
    # A second agent after the first left: it sees the page from the last full snapshot.
    joined = session.join("Second")
    second = Peer.open(live_node.base, joined["userToken"])
    second.hello()
    customer.expect("join-request", userId=joined["userId"])
    customer.send({"type": "consent", "userId": joined["userId"], "accept": True})
    got = [second.expect("events") for _ in range(4)]
    assert [frame["cseq"] for frame in got] == [1, 2, 3, 4]
    assert got[0]["data"][1]["type"] == 2  # the full snapshot first
    customer.close()
    second.close()
