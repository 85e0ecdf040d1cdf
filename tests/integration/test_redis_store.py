"""The shared Redis store with real nodes: limits and tokens cluster-wide, Redis going down."""

from __future__ import annotations

import time

import requests

from cobrowse.config.loader import load_cluster
from tests.helpers import start_node, wait_until, write_cluster
from tests.integration.realtime_client import ORIGIN, LiveSession, Peer, connect_pair, incremental
from tests.redis_server import RedisServer


def two_nodes(tmp_path, redis_url: str, **extra: dict[str, str]):
    config = write_cluster(
        tmp_path,
        nodes=2,
        workers=2,
        sections={
            "store": {"backend": "redis", "url": redis_url, "timeout": "0.5"},
            "cross-origin": {"allowedOrigins": ORIGIN},
            **extra,
        },
    )
    cluster = load_cluster(config)
    bases = [node.base_url + "/cobrowse" for node in cluster.nodes]
    processes = [start_node(config, node.name, tmp_path) for node in cluster.nodes]
    return bases, processes


def test_rate_limits_and_token_uniqueness_hold_across_nodes(tmp_path, integration_redis):
    bases, processes = two_nodes(
        tmp_path, integration_redis.url, security={"rateLimit.sessions.create": "10"}
    )
    try:
        statuses = [
            requests.post(f"{bases[index % 2]}/rest/live/sessions", timeout=5).status_code
            for index in range(14)
        ]
        # One window for the cluster, whichever node counted: 10 allowed, then quarantine.
        assert statuses == [200] * 10 + [429] * 4
    finally:
        for process in processes:
            process.stop()


def test_tokens_are_unique_across_nodes_and_each_node_serves_the_others(
    tmp_path, integration_redis
):
    # Each node draws its codes; Redis reserves each one (SET NX) for the whole cluster.
    bases, processes = two_nodes(tmp_path, integration_redis.url)
    try:
        created = [
            requests.post(f"{bases[index % 2]}/rest/live/sessions", timeout=5).json()
            for index in range(200)
        ]
        tokens = [session["sessionToken"] for session in created]
        assert len(set(tokens)) == len(tokens)
        for index, session in enumerate(created[:20]):
            other = bases[(index + 1) % 2]  # not the node that created it
            got = requests.get(
                f"{other}/rest/live/sessions/{session['sessionToken']}",
                headers={"Origin": ORIGIN},
                timeout=5,
            )
            assert got.status_code == 200, got.text
        stopped = requests.get(
            f"{bases[1]}/rest/live/users/{created[0]['userToken']}/session/stop", timeout=5
        )
        assert stopped.status_code == 200
    finally:
        for process in processes:
            process.stop()


def test_nodes_answer_503_while_redis_is_down_and_recover_without_a_restart(tmp_path):
    server = RedisServer(tmp_path / "redis", durable=True).start()
    bases, processes = two_nodes(tmp_path, server.url)
    try:
        session = LiveSession.create(bases[0])
        customer, agent, joined = connect_pair(session)
        for cseq in range(2, 6):
            customer.send({"type": "events", "cseq": cseq, "data": incremental(cseq)})
            customer.expect("ack", cseq=cseq)
        acked_seq = max(agent.expect("events")["seq"] for _ in range(4))
        customer.close()
        agent.close()

        server.kill()  # a crash: only AOF (appendfsync always) keeps what was acknowledged
        for base in bases:
            wait_until(
                lambda base=base: requests.get(f"{base}/health", timeout=5).status_code == 503,
                10,
                "health 503 while Redis is down",
            )
        answer = requests.post(f"{bases[0]}/rest/live/sessions", timeout=5)
        assert answer.status_code == 503
        assert answer.headers["Content-Type"].startswith("application/json")

        server = RedisServer(server.directory, durable=True, port=server.port).start()
        for base in bases:
            wait_until(
                lambda base=base: requests.get(f"{base}/health", timeout=5).status_code == 200,
                15,
                "health 200 once Redis is back, without a restart",
            )
        assert requests.post(f"{bases[1]}/rest/live/sessions", timeout=5).status_code == 200
        # Nothing acknowledged was lost: the session and its log came back from the AOF.
        got = requests.get(
            f"{bases[1]}/rest/live/sessions/{session.session_token}",
            headers={"Origin": ORIGIN},
            timeout=5,
        )
        assert got.status_code == 200, got.text
        agent = Peer.open(bases[1], joined["userToken"])
        agent.hello(last_seq=0)
        replayed = []
        end = time.monotonic() + 10
        while time.monotonic() < end and not any(frame.get("cseq") == 5 for frame in replayed):
            frame = agent.next()
            if frame["type"] == "events":
                replayed.append(frame)
        assert [frame["cseq"] for frame in replayed] == [1, 2, 3, 4, 5]
        assert replayed[-1]["seq"] == acked_seq
        agent.close()
    finally:
        for process in processes:
            process.stop()
        server.stop()
