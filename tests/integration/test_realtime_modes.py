"""Pointer and write modes: the agent's pointer reaches the customer; input only when granted."""

from __future__ import annotations

from tests.integration.realtime_client import LiveSession, connect_pair


def test_pointer_reaches_the_customer_and_input_needs_write_mode(live_node):
    customer, agent, joined = connect_pair(LiveSession.create(live_node.base))
    agent.send({"type": "pointer", "x": 120, "y": 40, "click": True})
    pointer = customer.expect("pointer")
    assert (pointer["x"], pointer["y"], pointer["click"]) == (120, 40, True)
    assert pointer["from"] == joined["userId"]
    assert isinstance(pointer["seq"], int)

    agent.send({"type": "input", "data": {"id": 7, "text": "hello"}})
    refused = agent.expect("error", request="input")
    assert "write mode" in refused["errorMessage"]

    agent.send({"type": "mode-request", "mode": "write"})
    customer.expect("mode-request", **{"from": joined["userId"]})
    customer.send({"type": "mode", "mode": "write"})
    assert customer.expect("mode")["mode"] == "write"
    assert agent.expect("mode")["mode"] == "write"
    agent.send({"type": "input", "data": {"id": 7, "text": "hello"}})
    forwarded = customer.expect("input")
    assert forwarded["data"] == {"id": 7, "text": "hello"}

    customer.send({"type": "mode", "mode": "pointer"})  # revoked
    agent.expect("mode", mode="pointer")
    agent.send({"type": "input", "data": {"id": 7, "text": "again"}})
    agent.expect("error", request="input")
    assert not [
        frame for frame in customer.received if frame.get("data") == {"id": 7, "text": "again"}
    ]
    customer.close()
    agent.close()


def test_roles_are_enforced(live_node):
    customer, agent, _ = connect_pair(LiveSession.create(live_node.base))
    customer.send({"type": "pointer", "x": 1, "y": 1})
    assert customer.expect("error")["request"] == "pointer"
    agent.send({"type": "mode", "mode": "write"})  # only the customer grants write mode
    assert agent.expect("error")["request"] == "mode"
    agent.send({"type": "events", "cseq": 9, "data": []})
    assert agent.expect("error")["request"] == "events"
    customer.send({"type": "no-such-type"})
    assert customer.expect("error")["request"] == "no-such-type"
    customer.send({"type": "hello", "lastSeq": 0})
    assert customer.expect("error")["request"] == "hello"
    # The sockets stay open after an error.
    customer.send({"type": "events", "cseq": 2, "data": []})
    customer.expect("ack", cseq=2)
    customer.close()
    agent.close()
