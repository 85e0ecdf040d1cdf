"""The shared store's failover, for real: a node dies and its live sessions go on elsewhere.

Three nodes share one durable Redis (AOF, `appendfsync always`) behind the router, HAProxy (the
generated haproxy.cfg) and nginx (the generated nginx.conf), one balancer at a time. A customer
and an agent stream through the session's `sessionServerUrl` (`<lb>/<node>/cobrowse`); the
hosting node is killed (-9: its sockets close at once) or frozen (SIGSTOP: only the health checks
notice; not with nginx, which has none). Both channels are closed, reconnect to the same URLs and
resume at their `lastSeq` on another node; the time from the fault to both resumed is measured.
Every acknowledged batch reaches the agent once and in order, the customer resends what was not
acknowledged, and Get Session and Stop Session work afterwards.

Trials: `COBROWSE_FAILOVER_TRIALS` (default 1 of each fault per balancer) in one cluster, the
node restarted between trials; `scripts/reliability --failover` runs 10 and records the median
and the worst in RELIABILITY.md.

Also here: a client whose `lastSeq` is beyond the log (a Redis that lost its last writes) gets a
`resync` instead of waiting for seqs it believes it has.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import signal
import socket
import statistics
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from websockets.exceptions import InvalidHandshake

from cobrowse.config.clusterfile import free_port
from cobrowse.config.loader import load_cluster
from cobrowse.config.settings import ClusterConfig
from cobrowse.ops.cluster import LocalCluster, Part, cluster_parts, health_status
from cobrowse.ops.lbconfig.haproxy_stats import server_states
from cobrowse.ops.lbconfig.nginx import render_nginx
from tests.helpers import start_node, wait_until, write_cluster
from tests.integration.realtime_client import (
    ORIGIN,
    ClosedError,
    LiveSession,
    Peer,
    connect_pair,
    incremental,
    snapshot,
)
from tests.redis_server import RedisServer
from tests.reliability import Trial

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
TRIALS_ENV = "COBROWSE_FAILOVER_TRIALS"
RESUME_TARGET_S = 5.0
CHECK = {"checkInterval": "0.5", "checkFall": "2", "checkRise": "2", "checkTimeout": "0.5"}


def trials() -> int:
    return max(1, int(os.environ.get(TRIALS_ENV, "1")))


# ---------------------------------------------------------------------------------------------
# a client ahead of the log


def redis_command(port: int, *words: str) -> bytes:
    """Send one command to Redis (inline protocol) and return its first answer line."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(" ".join(words).encode() + b"\r\n")
        return connection.recv(256)


def test_a_client_whose_last_seq_is_beyond_the_log_is_resynced(tmp_path):
    # A Redis that restarts from an older state (an RDB snapshot here; a Sentinel failover to a
    # replica that missed the last writes is the same) has a log that ends before the lastSeq
    # its clients saw. Without a resync, an agent would wait for seqs it believes it has, and
    # skip the new entries that reuse them.
    server = RedisServer(tmp_path / "redis", durable=False).start()
    config = write_cluster(
        tmp_path,
        1,
        workers=2,
        sections={
            "store": {"backend": "redis", "url": server.url, "timeout": "0.5"},
            "cross-origin": {"allowedOrigins": ORIGIN},
            "security": {"rateLimit.sessions.join": "0"},
        },
    )
    node = start_node(config, "node-1", tmp_path)
    base = load_cluster(config).node("node-1").base_url + "/cobrowse"
    try:
        session = LiveSession.create(base)
        customer, agent, joined = connect_pair(session)
        for cseq in (2, 3):
            customer.send({"type": "events", "cseq": cseq, "data": incremental(cseq)})
            customer.expect("ack", cseq=cseq)
            agent.expect("events", cseq=cseq)
        assert redis_command(server.port, "SAVE").startswith(b"+OK")  # the state Redis keeps
        agent.send({"type": "pointer", "x": 1, "y": 2})
        customer.expect("pointer")
        for cseq in (4, 5, 6):
            customer.send({"type": "events", "cseq": cseq, "data": incremental(cseq)})
            customer.expect("ack", cseq=cseq)
        agent_seq = max(agent.expect("events", cseq=cseq)["seq"] for cseq in (4, 5, 6))
        customer_seq = max(
            [frame["seq"] for frame in customer.received if "seq" in frame], default=0
        )
        customer.close()
        agent.close()
        server.kill()
        server = RedisServer(server.directory, durable=False, port=server.port).start()
        wait_until(
            lambda: requests.get(f"{base}/health", timeout=5).status_code == 200,
            15,
            "node healthy once Redis is back",
        )

        agent = Peer.open(base, joined["userToken"])
        welcome = agent.hello(last_seq=agent_seq)
        assert welcome["seq"] < agent_seq  # the log lost its last entries
        assert agent.next(timeout=5)["type"] == "resync"  # at once, not silence
        replayed = [agent.expect("events", timeout=5)["cseq"] for _ in range(3)]
        assert replayed == [1, 2, 3]  # from the last full snapshot on

        customer = Peer.open(base, session.user_token)
        customer.hello(last_seq=customer_seq)
        assert customer.next(timeout=5)["type"] == "resync"
        customer.send({"type": "events", "cseq": 7, "data": incremental(7)})
        customer.expect("ack", cseq=7)
        fresh = agent.expect("events", timeout=5)
        assert fresh["cseq"] == 7  # a seq at or below the old lastSeq, delivered all the same
        assert fresh["seq"] <= agent_seq
        customer.close()
        agent.close()
    finally:
        node.stop()
        server.stop()


# ---------------------------------------------------------------------------------------------
# failover of a live session


class Customer:
    """The customer's channel: batches kept until acknowledged, resent after a reconnect."""

    def __init__(self, base: str, user_token: str, trial: Trial) -> None:
        self.base = base
        self.user_token = user_token
        self.trial = trial
        self.peer: Peer | None = None
        self.last_seq = 0
        self.next_cseq = 1
        self.unacked: dict[int, dict[str, Any]] = {}
        self.resent = 0

    def connect(self, deadline: float) -> Peer:
        self.peer = reconnect(self.base, self.user_token, self.last_seq, deadline, self.trial)
        for frame in self.unacked.values():  # the node acks a cseq it already stored again
            self.peer.send(frame)
            self.resent += 1
        return self.peer

    def send(self, data: list[dict[str, Any]] | None = None) -> int:
        cseq = self.next_cseq
        self.next_cseq += 1
        frame = {"type": "events", "cseq": cseq, "data": data or incremental(cseq)}
        self.unacked[cseq] = frame
        assert self.peer is not None
        self.peer.send(frame)
        return cseq

    def read(self, timeout: float) -> dict[str, Any]:
        assert self.peer is not None
        frame = self.peer.next(timeout)
        if "seq" in frame and frame["type"] != "welcome":
            self.last_seq = frame["seq"]
        if frame["type"] == "ack":
            self.unacked.pop(frame["cseq"], None)
        return frame

    def wait_acked(self, timeout: float = 10.0) -> None:
        end = time.monotonic() + timeout
        while self.unacked:
            self.read(max(0.01, end - time.monotonic()))


class Agent:
    """The agent's channel: checks that batches arrive once, in order, across reconnects."""

    def __init__(self, base: str, user_token: str, trial: Trial) -> None:
        self.base = base
        self.user_token = user_token
        self.trial = trial
        self.peer: Peer | None = None
        self.last_seq = 0
        self.cseqs: list[int] = []

    def connect(self, deadline: float) -> Peer:
        self.peer = reconnect(self.base, self.user_token, self.last_seq, deadline, self.trial)
        return self.peer

    def read(self, timeout: float) -> dict[str, Any]:
        assert self.peer is not None
        frame = self.peer.next(timeout)
        assert frame["type"] != "resync", "an agent that resumed on another node was resynced"
        if "seq" in frame and frame["type"] != "welcome":
            assert frame["seq"] > self.last_seq, (frame, self.last_seq)  # in order, once
            self.last_seq = frame["seq"]
        if frame["type"] == "events":
            self.cseqs.append(frame["cseq"])
        return frame

    def wait_for(self, cseq: int, timeout: float = 10.0) -> None:
        end = time.monotonic() + timeout
        while cseq not in self.cseqs:
            self.read(max(0.01, end - time.monotonic()))


def reconnect(base: str, token: str, last_seq: int, deadline: float, trial: Trial) -> Peer:
    """Open the channel under the same URL and say hello with `last_seq`, until it works."""
    while True:
        try:
            peer = Peer.open(base, token)
            peer.hello(last_seq=last_seq)
        except (InvalidHandshake, ClosedError, OSError, TimeoutError) as error:
            trial.record(error)
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
            continue
        trial.record(101)
        return peer


def drain_until_closed(side: Customer | Agent, timeout: float = 5.0) -> None:
    """Read what the dying node still sent, until the socket closes (fail after `timeout`)."""
    end = time.monotonic() + timeout
    while True:
        left = end - time.monotonic()
        if left <= 0:
            raise TimeoutError("the channel was not closed after its node died")
        try:
            side.read(left)
        except ClosedError:
            return


@dataclass
class Balanced:
    """Three nodes on one Redis behind a load balancer (the router or HAProxy)."""

    config: ClusterConfig
    parts: dict[str, Part]
    lb: str  # "router" | "haproxy"
    url: str
    socket: Path | None = None

    @property
    def base(self) -> str:
        return f"{self.url}{self.config.context_path}"

    def state(self, node: str) -> str:
        if self.lb == "nginx":  # no active checks: what the node itself answers
            return "up" if health_status(self.parts[node].health_url) == 200 else "down"
        if self.socket is not None:
            found = server_states(self.socket)[node]
            return "up" if found.up else found.status.lower()
        nodes = requests.get(f"{self.url}/lb/status", timeout=5).json()["nodes"]
        return next(entry["state"] for entry in nodes if entry["name"] == node)

    def wait_up(self, node: str, deadline: float = 20.0) -> None:
        wait_until(lambda: self.state(node) == "up", deadline, f"{self.lb} sees {node} up")


@pytest.fixture(scope="module")
def durable_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"), durable=True).start()
    yield server
    server.stop()


@contextlib.contextmanager
def balanced(directory: Path, redis: RedisServer, lb: str) -> Iterator[Balanced]:
    """Start 3 nodes (1 worker each) and `lb` on one Redis; stop them all after."""
    options: dict[str, str] = {**CHECK}
    if lb == "haproxy":
        options["statsBind"] = f"127.0.0.1:{free_port()}"
    config_path = write_cluster(
        directory,
        3,
        workers=1,
        sections={
            "store": {
                "backend": "redis",
                "url": redis.url,
                "prefix": f"failover-{uuid.uuid4().hex}:",
                "timeout": "1",
            },
            "cross-origin": {"allowedOrigins": ORIGIN},
            "security": {"rateLimit.sessions.join": "0"},
            "lb": options,
        },
    )
    config = load_cluster(config_path)
    log_dir = directory / "logs"
    if lb == "nginx":
        nodes = [
            part for part in cluster_parts(config, config_path, log_dir) if part.kind == "node"
        ]
        parts = [*nodes, nginx_part(config, directory)]
    else:
        parts = cluster_parts(config, config_path, log_dir, lb=lb)
    # The nodes first: nginx counts the failures of requests sent before they listen, and
    # would leave them out for fail_timeout.
    local = LocalCluster(parts[:-1])
    balancer_only = LocalCluster(parts[-1:])
    local.start(deadline=40)
    try:
        balancer_only.start(deadline=40)  # HAProxy: until its own probes see every node up
        named = {part.name: part for part in parts}
        balancer = named[lb]
        socket_path = directory / "logs" / "haproxy.sock" if lb == "haproxy" else None
        cluster = Balanced(config, named, lb, balancer.url, socket_path)
        for node in config.nodes:
            cluster.wait_up(node.name)
        yield cluster
    finally:
        balancer_only.stop()
        local.stop()


def nginx_part(config: ClusterConfig, directory: Path) -> Part:
    """nginx in the router's place, with the generated nginx.conf (as tests/integration/
    test_nginx.py runs it)."""
    run_dir = directory / "nginx"
    run_dir.mkdir()
    conf = run_dir / "nginx.conf"
    conf.write_text(render_nginx(config, command="tests", run_dir=str(run_dir)))
    host, _, port = config.router.bind.rpartition(":")
    url = f"http://{host}:{port}"
    prefixes = [f"{url}/{node.name}{config.context_path}/health" for node in config.nodes]
    return Part(
        "nginx",
        "nginx",
        url,
        prefixes[0],
        [NGINX, "-p", str(run_dir), "-c", str(conf), "-e", "stderr", "-g", "daemon off;"],
        directory / "logs" / "nginx.log",
        ready=lambda: all(health_status(prefix) == 200 for prefix in prefixes),
    )


def kill(part: Part) -> None:
    part.signal_group(signal.SIGKILL)
    assert part.process is not None
    part.process.wait(10)


FAULTS = {
    # kill -9: the node's sockets close at once; the balancer retries a refused connection
    # on another node before its checks even notice.
    "kill": kill,
    # A node that stops answering without closing anything (a frozen VM, a partition): only
    # the health checks notice, and the balancer closes its tunnels when it marks it down.
    "freeze": lambda part: part.signal_group(signal.SIGSTOP),
}


def one_failover(cluster: Balanced, trial: Trial, fault: str, restart: bool = True) -> float:
    """Stream, kill (or freeze) the hosting node, resume elsewhere, check; bring the node
    back (unless it was the last trial). Return the seconds from the fault to both channels
    resumed."""
    base = cluster.base
    created = requests.post(f"{base}/rest/live/sessions", timeout=5)
    trial.record(created.status_code)
    session = created.json()
    host, server_url = session["sessionServerName"], session["sessionServerUrl"]
    assert server_url == f"{cluster.url}/{host}{cluster.config.context_path}"
    # The router places the join by its token (the creating node, while it is up); HAProxy and
    # nginx cannot compute the ring: agents join under sessionServerUrl (from Get Session).
    join_base = base if cluster.lb == "router" else server_url
    answer = requests.post(
        f"{join_base}/rest/live/sessions/{session['sessionToken']}/join",
        json={"name": "Ann"},
        headers={"Origin": ORIGIN},
        timeout=5,
    )
    trial.record(answer.status_code)
    joined = answer.json()
    assert joined["sessionServerName"] == host, joined  # one node for the whole session
    customer = Customer(session["sessionServerUrl"], session["userToken"], trial)
    agent = Agent(joined["sessionServerUrl"], joined["userToken"], trial)
    customer.connect(time.monotonic() + 5)
    agent.connect(time.monotonic() + 5)
    request = customer.peer.expect("join-request")  # type: ignore[union-attr]
    customer.peer.send({"type": "consent", "userId": request["userId"], "accept": True})  # type: ignore[union-attr]
    while customer.read(5)["type"] != "snapshot-request":
        pass
    customer.send(snapshot())
    for _ in range(4):
        customer.send()
    customer.wait_acked()
    agent.wait_for(customer.next_cseq - 1)

    in_flight = [customer.send(), customer.send()]  # maybe stored, maybe not: resent
    killed_at = time.monotonic()
    FAULTS[fault](cluster.parts[host])
    drain_until_closed(customer)
    drain_until_closed(agent)
    deadline = killed_at + 10
    customer.connect(deadline)
    agent.connect(deadline)
    resumed = time.monotonic() - killed_at

    customer.wait_acked()  # the batches in flight, acked once stored (or again, if they were)
    for _ in range(3):
        customer.send()
    customer.wait_acked()
    agent.wait_for(customer.next_cseq - 1)
    assert agent.cseqs == list(range(1, customer.next_cseq)), (agent.cseqs, in_flight)

    # Get Session and Stop Session, without cookie and under the dead node's prefix.
    for url in (base, server_url):
        got = requests.get(
            f"{url}/rest/live/sessions/{session['sessionToken']}",
            headers={"Origin": ORIGIN},
            allow_redirects=False,
            timeout=5,
        )
        trial.record(got.status_code)
        if got.status_code != 200:
            trial.sessions_lost += 1
        assert got.status_code == 200, got.text
    stopped = requests.get(
        f"{server_url}/rest/live/users/{session['userToken']}/session/stop", timeout=5
    )
    trial.record(stopped.status_code)
    assert stopped.status_code == 200, stopped.text
    for side in (customer, agent):
        assert side.peer is not None
        assert side.peer.expect("ended")["reason"] == "stop"
        assert side.peer.close_code() == 4410
        side.peer.close()

    # Bring the node back for the next trial, once the balancer has seen it down (a restart
    # it never noticed would leave it "up" while the node boots).
    wait_until(lambda: cluster.state(host) == "down", 10, f"{cluster.lb} sees {host} down")
    part = cluster.parts[host]
    kill(part)  # a frozen node too
    assert resumed < RESUME_TARGET_S, f"resumed {resumed:.2f} s after the {fault}"
    if not restart:
        return resumed
    part.start()
    wait_until(
        lambda: health_status(part.health_url) == 200, 20, f"{host} healthy after its restart"
    )
    cluster.wait_up(host)
    if cluster.lb == "nginx":
        # Passive checks: nginx leaves a node that failed out for fail_timeout, then tries it
        # with real traffic again.
        fail_timeout = cluster.config.router.check_interval * cluster.config.router.check_rise
        time.sleep(math.ceil(fail_timeout) + 0.5)
    return resumed


def failover_trials(cluster: Balanced, trial: Trial) -> None:
    count = trials()
    notes = []
    # nginx has no active checks: a frozen node's tunnels stay open until tunnelTimeout.
    faults = ["kill"] if cluster.lb == "nginx" else list(FAULTS)
    for fault in faults:
        times = sorted(
            one_failover(cluster, trial, fault, restart=(fault, index) != (faults[-1], count - 1))
            for index in range(count)
        )
        notes.append(f"{fault}: median {statistics.median(times):.2f} s, worst {times[-1]:.2f} s")
    lb = cluster.config.router
    how = (
        f"freeze = SIGSTOP, noticed by the health checks: every {lb.check_interval:g} s, fall "
        f"{lb.check_fall}, timeout {lb.check_timeout:g} s"
        if "freeze" in faults
        else "no freeze: without active checks, nginx keeps a frozen node's tunnels"
    )
    trial.notes = (
        f"{count} trial(s) of each fault, to both channels resumed on another node (target "
        f"{RESUME_TARGET_S:g} s): {'; '.join(notes)} ({how}). Every acknowledged batch "
        "delivered once, in order; unacked batches resent; get and stop 200 after"
    )
    print(trial.notes)


def test_failover_of_a_live_session_through_the_router(tmp_path, durable_redis, reliability):
    """kill -9, or freeze, of the node hosting a live session, shared Redis store, router."""
    with balanced(tmp_path, durable_redis, "router") as cluster:
        failover_trials(cluster, reliability)


def test_failover_of_a_live_session_through_haproxy(tmp_path, durable_redis, reliability):
    """kill -9, or freeze, of the node hosting a live session, shared Redis store, HAProxy."""
    with balanced(tmp_path, durable_redis, "haproxy") as cluster:
        failover_trials(cluster, reliability)


def test_failover_of_a_live_session_through_nginx(tmp_path, durable_redis, reliability):
    """kill -9 of the node hosting a live session, shared Redis store, nginx."""
    with balanced(tmp_path, durable_redis, "nginx") as cluster:
        failover_trials(cluster, reliability)
