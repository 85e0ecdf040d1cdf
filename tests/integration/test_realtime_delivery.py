"""Delivery across 4 workers: many sessions at once, and a slow agent slows nobody."""

from __future__ import annotations

import json
import threading
import time

from tests.helpers import wait_until
from tests.integration.realtime_client import (
    LiveSession,
    Peer,
    StalledPeer,
    connect_pair,
    incremental,
    snapshot,
)

LIVE_SECTIONS = {
    "session": {"maxAgents": "2"},
    # Small, so that an agent that stops reading overflows quickly.
    "realtime": {
        "maxQueueBytes": "1048576",
        "maxFramesPerSecond": "500",
        "maxBytesPerSecond": "67108864",
    },
}
SESSIONS = 20
BATCHES = 30


def test_twenty_sessions_at_once_spread_over_the_workers_deliver_every_message(live_node):
    pairs = [connect_pair(LiveSession.create(live_node.base)) for _ in range(SESSIONS)]
    failures: list[str] = []

    def stream(customer: Peer) -> None:
        try:
            for cseq in range(2, BATCHES + 2):
                customer.send({"type": "events", "cseq": cseq, "data": incremental(cseq)})
            acks = [customer.expect("ack")["cseq"] for _ in range(BATCHES)]
            if acks != list(range(2, BATCHES + 2)):
                failures.append(f"acks {acks}")
        except Exception as error:  # reported below, with the others
            failures.append(repr(error))

    threads = [threading.Thread(target=stream, args=(customer,)) for customer, _, _ in pairs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures, failures
    for _, agent, _ in pairs:
        got = [agent.expect("events") for _ in range(BATCHES)]
        assert [frame["cseq"] for frame in got] == list(range(2, BATCHES + 2))
        seqs = [frame["seq"] for frame in got]
        assert seqs == sorted(set(seqs))
        assert agent.silent_for(0.05)

    # The kernel spread 80 channels over the 4 workers: most pairs crossed workers.
    def workers() -> set[int]:
        return {
            json.loads(line)["websocket"]["pid"]
            for line in (live_node.directory / "node-1.log").read_text().splitlines()
            if line.startswith("{") and '"websocket"' in line
        }

    assert len(wait_until(workers, 5, "channel log lines")) >= 2, workers()
    for customer, agent, _ in pairs:
        customer.close()
        agent.close()


def test_a_slow_agent_is_resynced_while_another_gets_everything_at_full_speed(live_node):
    session = LiveSession.create(live_node.base)
    customer, fast, _ = connect_pair(session, "Fast")
    joined = session.join("Slow")
    slow = StalledPeer(live_node.base, joined["userToken"])
    slow.send({"type": "hello", "lastSeq": 0})
    customer.expect("join-request", userId=joined["userId"])
    customer.send({"type": "consent", "userId": joined["userId"], "accept": True})
    fast.expect("joined", userId=joined["userId"])
    blob = "x" * 40_000
    got: list[int] = []
    reader = threading.Thread(
        target=lambda: got.extend(fast.expect("events")["cseq"] for _ in range(200))
    )
    reader.start()  # the fast agent reads as fast as it can; the slow one reads nothing
    started = time.monotonic()
    for cseq in range(2, 202):  # 8 MB: far over the slow agent's queue and socket buffers
        customer.send({"type": "events", "cseq": cseq, "data": [*incremental(cseq), blob]})
        customer.expect("ack", cseq=cseq)
    reader.join(30)
    elapsed = time.monotonic() - started
    assert got == list(range(2, 202))
    assert "resync" not in [frame["type"] for frame in fast.received]
    assert elapsed < 20, elapsed  # nobody waited for the slow agent
    # Now the slow agent reads: it was resynced from the last full snapshot, then caught up.
    frames = slow.read_until(lambda frame: frame.get("cseq") == 201)
    kinds = [frame["type"] for frame in frames]
    assert "resync" in kinds
    # Each resync restarts the stream from the last full snapshot; within a stretch, every
    # batch comes once, in order. (A reader that still cannot keep up is resynced again.)
    stretches: list[list[dict]] = []
    for frame in frames[kinds.index("resync") :]:
        if frame["type"] == "resync":
            stretches.append([])
        elif frame["type"] == "events":
            stretches[-1].append(frame)
    for stretch in stretches:
        assert (stretch[0]["cseq"], stretch[0]["data"]) == (1, snapshot())  # the snapshot first
        cseqs = [frame["cseq"] for frame in stretch]
        assert cseqs == list(range(1, len(cseqs) + 1))  # no gap, no duplicate, in order
    assert stretches[-1][-1]["cseq"] == 201
    customer.close()
    fast.close()
    slow.close()
