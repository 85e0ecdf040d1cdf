"""Realtime channel: delivery throughput and latency of the node, against a minimal relay.

    scripts/bench realtime [--pairs 200] [--rate 5] [--duration 20] [--saturation-duration 10]
                           [--window 2] [--workers 4] [--skip-floor] [--skip-single-worker]
                           [--check] [--store sqlite|redis]

N customer/agent pairs speak REALTIME.md to one node (`cobrowse node`, `--workers` workers, on
the servers' CPU): each customer creates a session, accepts its agent's join (consent), sends a
full snapshot, then batches of rrweb events (the model in benchmarks/rrweb_model.py); each
agent checks every message it gets (seq strictly increasing, each cseq once and in order,
every batch acknowledged to the customer delivered) and measures the delivery latency, customer
send -> agent receive, from the send time stamped inside each batch.

Each server runs two loads on the same connections, one after the other:
- fixed: every customer sends `--rate` batches per second (open loop, random phases) for
  `--duration` seconds. Targets: p99 <= 50 ms, nothing lost, duplicated or out of order.
- saturation: every customer keeps `--window` batches sent but not yet delivered to its agent
  (closed loop) for `--saturation-duration` seconds; the messages per second delivered is the
  server's saturation throughput. Target: the node >= 0.5x the floor.

`--store redis` adds, right after it, the same node on the shared store: its live logs in a
local `redis-server` the benchmark starts (on the servers' CPU, AOF with `appendfsync always`, as
`cobrowse cluster --store redis` runs it), delivery across workers through Redis Streams; the
report compares both backends at both loads (target: p99 <= 50 ms at the fixed load on Redis
too) and gives Redis's own CPU per message, which the node's column leaves out.

Servers, in this order: the node with `--workers` workers; the node with 1 worker (every pair
on one worker: no cross-worker path); the floor (benchmarks/relay_floor.py, a single-process
`websockets` relay: no auth, no store, no consent). With several workers the kernel spreads
connections over them: which worker holds each connection is read from /proc (the sockets the
workers hold), and both loads' latencies are shown for same-worker and cross-worker pairs.

Columns: msgs/s, batches delivered per second during the load; p50/p99, delivery latency;
lost (acknowledged, never delivered), dup, ooo (a cseq below one delivered, or a seq not above
the last); cpu µs/msg, the server's process group CPU time (master and workers) from the start
of the load until every batch was delivered, over the batches delivered (each one frame in, an
ack and a frame out); rss/pss MB, summed over the group after the load; gen cpu, this load
generator's share of one CPU (near 100 % it, not the server, is the limit); others, what the
rest of the machine used (in CPUs: the host is shared, and other processes are not pinned);
srv busy, how busy the servers' CPU was, whoever used it. A saturation ratio per server
CPU-second (1 / cpu per msg) is printed too: it moves less than msgs/s on a noisy host.

The load generator is this process (asyncio, uvloop, the `websockets` client), pinned to the
load CPU. Like browsers it negotiates permessage-deflate (the node, through Uvicorn, and the
floor, through `websockets`, both accept it with the same settings); its own frames are
deflated at level 1 to spare its CPU (the servers still inflate each one). Each agent reads a
forwarded batch's seq, cseq and send time from the frame's head, and parses every 16th frame in
full. `--timeline PREFIX` writes every latency sample with its time, pair and path.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import uvloop
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

from benchmarks.common import LOAD_CPUS, SERVER_CPUS, Server, group_cpu_seconds
from benchmarks.rrweb_model import MODEL, Batches, make_batches
from cobrowse.config.clusterfile import GeneratedNode, free_port, render_cluster_file
from cobrowse.loadtest.cpushare import machine_ticks, read_processes

ORIGIN = "http://localhost:8080"
CONTEXT = "/cobrowse"
P99_TARGET_MS = 50.0
RATIO_TARGET = 0.5
SETUP_CONCURRENCY = 16
DRAIN_S = 15.0
HELLO = b'{"type":"hello","lastSeq":0}'
ACK = b'{"type":"ack","cseq":'
# The head of a forwarded batch, as the node (and the floor) write it: read without parsing the
# whole frame; every FULL_PARSE_EVERY-th frame (and any other shape) is parsed in full as well.
EVENTS_HEAD = re.compile(
    rb'\{"type":"events","seq":(\d+),"from":"[^"]*","cseq":(\d+),"data":\[\{"type":5,'
    rb'"data":\{"tag":"bench","payload":\{"t":([0-9.eE+-]+)\}'
)
FULL_PARSE_EVERY = 16

# A long run must not trip the node's per-connection limits (1008) nor its inactivity timeout.
NODE_SECTIONS = {
    "cluster": {"shutdownDelay": "0"},
    "security": {"rateLimit.sessions.join": "0"},
    "session": {"inactivityTimeout": "3600"},
    "realtime": {"maxFramesPerSecond": "100000", "maxBytesPerSecond": "1000000000"},
}


# ---------------------------------------------------------------------------------------------
# the load generator


@dataclass
class Stats:
    """What the pairs saw during one load (the readers add to the current one)."""

    sent: int = 0
    acked: int = 0
    delivered: int = 0
    latencies: list[float] = field(default_factory=list)  # seconds
    by_path: dict[str, list[float]] = field(default_factory=lambda: {"same": [], "cross": []})
    duplicated: int = 0
    out_of_order: int = 0  # a cseq below one already delivered, or a seq not above the last
    resyncs: int = 0
    errors: int = 0
    first_error: str | None = None
    closes: Counter[int] = field(default_factory=Counter)
    send_lag: list[float] = field(default_factory=list)  # seconds behind the pacing schedule


@dataclass
class Pair:
    index: int
    customer: ClientConnection
    agent: ClientConnection
    cseq: int = 0  # the last batch sent
    acked: set[int] = field(default_factory=set)
    seen: set[int] = field(default_factory=set)  # cseqs delivered to the agent
    max_cseq: int = 0  # the highest cseq delivered to the agent
    last_seq: int = 0  # the agent's last seq
    snapshot_wanted: bool = False  # a snapshot-request came: the next batch is a full snapshot
    snapshot_requested: asyncio.Event = field(default_factory=asyncio.Event)
    progress: asyncio.Event = field(default_factory=asyncio.Event)  # the agent got something
    path: str | None = None  # "same" or "cross" worker, when known
    closing: bool = False
    next_template: int = 0


class Generator:
    """Drives pairs of channels and checks what the agents receive."""

    def __init__(self, batches: Batches, seed: int = 1) -> None:
        self.batches = batches
        self.pairs: list[Pair] = []
        self.stats = Stats()
        self.tasks: list[asyncio.Task[None]] = []
        self.rng = random.Random(seed)
        self.received = 0  # frames the agents received
        self.timeline: list[tuple[str, float, float, int, str | None]] | None = None
        self.phase = "setup"

    # sending
    async def send_batch(self, pair: Pair) -> None:
        pair.cseq += 1
        if pair.snapshot_wanted or pair.cseq == 1:
            pair.snapshot_wanted = False
            frame = self.batches.frame(pair.cseq, time.time(), None)
        else:
            pair.next_template += 1
            frame = self.batches.frame(pair.cseq, time.time(), pair.next_template)
        self.stats.sent += 1
        await pair.customer.send(frame, text=True)

    async def paced(self, pair: Pair, rate: float, start: float, end: float) -> None:
        loop = asyncio.get_running_loop()
        interval = 1.0 / rate
        due = start + self.rng.random() * interval
        while due < end:
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self.stats.send_lag.append(loop.time() - due)
            await self.send_batch(pair)
            due += interval

    async def windowed(self, pair: Pair, window: int, end: float) -> None:
        loop = asyncio.get_running_loop()
        while loop.time() < end:
            while pair.cseq - pair.max_cseq >= window:
                pair.progress.clear()
                left = end - loop.time()
                if left <= 0:
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(pair.progress.wait(), left)
            if loop.time() >= end:
                return
            await self.send_batch(pair)

    # receiving
    async def read_customer(self, pair: Pair) -> None:
        try:
            while True:
                message = await pair.customer.recv(decode=False)
                if message.startswith(ACK):
                    pair.acked.add(int(message[len(ACK) : -1]))
                    self.stats.acked += 1
                    continue
                frame = orjson.loads(message)
                kind = frame.get("type")
                if kind == "join-request":
                    await pair.customer.send(
                        orjson.dumps(
                            {"type": "consent", "userId": frame["userId"], "accept": True}
                        ),
                        text=True,
                    )
                elif kind == "snapshot-request":
                    if pair.snapshot_requested.is_set():
                        pair.snapshot_wanted = True  # the log is full: the node asks for a base
                    pair.snapshot_requested.set()
                elif kind == "error":
                    self._error(frame)
        except ConnectionClosed as closed:
            self._closed(pair, closed)

    async def read_agent(self, pair: Pair) -> None:
        try:
            while True:
                message = await pair.agent.recv(decode=False)
                now = time.time()
                self.received += 1
                head = EVENTS_HEAD.match(message)
                if head is None or self.received % FULL_PARSE_EVERY == 0:
                    try:
                        frame = orjson.loads(message)  # also: the frame is well-formed JSON
                    except orjson.JSONDecodeError:
                        self._error({"errorMessage": f"not JSON: {message[:80]!r}"})
                        continue
                    if head is not None and (
                        frame["seq"] != int(head[1]) or frame["cseq"] != int(head[2])
                    ):
                        self._error({"errorMessage": f"generator misread {head[0]!r}"})
                if head is not None:
                    self.agent_events(pair, int(head[1]), int(head[2]), now - float(head[3]))
                    continue
                seq, kind = frame.get("seq"), frame.get("type")
                if isinstance(seq, int):
                    self.agent_seq(pair, seq)
                if kind == "events":  # not stamped by this generator: count it all the same
                    self.agent_events(pair, None, frame["cseq"], None)
                elif kind == "resync":
                    self.stats.resyncs += 1
                elif kind == "error":
                    self._error(frame)
        except ConnectionClosed as closed:
            self._closed(pair, closed)

    def agent_seq(self, pair: Pair, seq: int) -> bool:
        disordered = seq <= pair.last_seq
        if disordered:
            self.stats.out_of_order += 1
        pair.last_seq = max(pair.last_seq, seq)
        return disordered

    def agent_events(self, pair: Pair, seq: int | None, cseq: int, latency: float | None) -> None:
        stats = self.stats
        disordered = seq is not None and self.agent_seq(pair, seq)
        if cseq in pair.seen:
            stats.duplicated += 1
        else:
            if cseq < pair.max_cseq and not disordered:
                stats.out_of_order += 1
            pair.seen.add(cseq)
            pair.max_cseq = max(pair.max_cseq, cseq)
        stats.delivered += 1
        if latency is not None:
            stats.latencies.append(latency)
            if self.timeline is not None:
                self.timeline.append((self.phase, time.time(), latency, pair.index, pair.path))
            if pair.path is not None:
                stats.by_path[pair.path].append(latency)
        pair.progress.set()

    def _error(self, frame: dict[str, object]) -> None:
        self.stats.errors += 1
        if self.stats.first_error is None:
            self.stats.first_error = str(frame.get("errorMessage"))

    def _closed(self, pair: Pair, closed: ConnectionClosed) -> None:
        if not pair.closing:
            code = closed.rcvd.code if closed.rcvd is not None else 1006
            self.stats.closes[code] += 1

    # pairs
    async def add_pair(
        self, index: int, open_channels: Callable[[int], Awaitable[Pair]], consent: bool
    ) -> None:
        pair = await open_channels(index)
        self.pairs.append(pair)
        self.tasks.append(asyncio.create_task(self.read_customer(pair)))
        self.tasks.append(asyncio.create_task(self.read_agent(pair)))
        if consent:  # the customer accepts the agent, then the node asks for a snapshot
            await asyncio.wait_for(pair.snapshot_requested.wait(), 30)
        else:
            pair.snapshot_requested.set()
        await self.send_batch(pair)  # cseq 1: Meta + FullSnapshot
        while 1 not in pair.seen:
            pair.progress.clear()
            await asyncio.wait_for(pair.progress.wait(), 30)

    def done(self) -> bool:
        return all(
            len(pair.acked) >= pair.cseq and pair.max_cseq >= pair.cseq for pair in self.pairs
        )

    async def drain(self, deadline_s: float = DRAIN_S) -> None:
        """Wait until every batch sent was acknowledged and delivered (or the deadline)."""
        end = time.monotonic() + deadline_s
        while not self.done() and time.monotonic() < end:
            await asyncio.sleep(0.02)

    def lost(self) -> int:
        """Batches acknowledged to a customer that its agent never received."""
        return sum(len(pair.acked - pair.seen) for pair in self.pairs)

    def unacked(self) -> int:
        return sum(pair.cseq - len(pair.acked) for pair in self.pairs)

    async def close(self) -> None:
        for pair in self.pairs:
            pair.closing = True
        await asyncio.gather(
            *(ws.close() for pair in self.pairs for ws in (pair.customer, pair.agent)),
            return_exceptions=True,
        )
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.pairs, self.tasks = [], []


# ---------------------------------------------------------------------------------------------
# servers


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def post_json(url: str, body: dict[str, object], headers: dict[str, str]) -> dict[str, str]:
    request = urllib.request.Request(
        url,
        data=orjson.dumps(body),
        headers={"Content-Type": "application/json", **headers},
        method="POST",
    )
    with _NO_PROXY.open(request, timeout=30) as answer:
        result: dict[str, str] = orjson.loads(answer.read())
        return result


async def open_ws(url: str, compression: bool) -> ClientConnection:
    # The generator's own frames are deflated at level 1 (browsers pick their own level): the
    # server still inflates every frame, and the generator spends less of its CPU.
    extensions = (
        [ClientPerMessageDeflateFactory(compress_settings={"level": 1, "memLevel": 5})]
        if compression
        else None
    )
    ws = await connect(
        url,
        origin=ORIGIN,
        compression=None,
        extensions=extensions,
        proxy=None,
        max_size=4 * 1_048_576,
    )
    await ws.send(HELLO, text=True)
    welcome = orjson.loads(await ws.recv(decode=False))
    if welcome.get("type") != "welcome":
        raise RuntimeError(f"expected welcome, got {welcome}")
    return ws


@dataclass
class Target:
    """A server under test: how to start it and how to open one pair's channels."""

    label: str
    argv: list[str]
    ready_url: str
    port: int
    consent: bool
    open_pair: Callable[[int], Awaitable[Pair]]
    workers: int = 1
    store: str = "sqlite"
    store_group: int | None = None  # the shared store's process group (its CPU, apart)


def node_target(
    directory: Path,
    workers: int,
    compression: bool,
    redis: tuple[str, int] | None = None,
) -> Target:
    """The node with `workers` workers; on the shared store when `redis` = (url, pid)."""
    port = free_port()
    suffix = f"{workers}-redis" if redis else str(workers)
    sections = dict(NODE_SECTIONS)
    if redis:
        sections["store"] = {"backend": "redis", "url": redis[0]}
    config = directory / f"cluster-{suffix}.ini"
    config.write_text(
        render_cluster_file(
            [GeneratedNode("node-1", port, workers)],
            router_port=free_port(),
            data_dir=directory / f"data-{suffix}",
            sections=sections,
        )
    )
    http = f"http://127.0.0.1:{port}{CONTEXT}/rest/live"
    ws = f"ws://127.0.0.1:{port}{CONTEXT}/rest/live"

    async def open_pair(index: int) -> Pair:
        created = await asyncio.to_thread(post_json, f"{http}/sessions", {}, {})
        customer = await open_ws(f"{ws}/users/{created['userToken']}/channel", compression)
        joined = await asyncio.to_thread(
            post_json,
            f"{http}/sessions/{created['sessionToken']}/join",
            {"name": f"Agent {index}"},
            {"Origin": ORIGIN},
        )
        agent = await open_ws(f"{ws}/users/{joined['userToken']}/channel", compression)
        return Pair(index, customer, agent)

    cobrowse = str(Path(sys.executable).with_name("cobrowse"))
    return Target(
        f"node ({workers} worker{'s' if workers > 1 else ''}{', redis' if redis else ''})",
        [cobrowse, "node", "--config", str(config), "--name", "node-1"],
        f"http://127.0.0.1:{port}{CONTEXT}/health",
        port,
        consent=True,
        open_pair=open_pair,
        workers=workers,
        store="redis" if redis else "sqlite",
        store_group=redis[1] if redis else None,
    )


def floor_target(compression: bool) -> Target:
    port = free_port()
    ws = f"ws://127.0.0.1:{port}/pair"

    async def open_pair(index: int) -> Pair:
        customer = await open_ws(f"{ws}/{index}/customer", compression)
        agent = await open_ws(f"{ws}/{index}/agent", compression)
        return Pair(index, customer, agent)

    return Target(
        "floor (websockets relay)",
        [sys.executable, "-m", "benchmarks.relay_floor", "--port", str(port)],
        f"http://127.0.0.1:{port}/health",
        port,
        consent=False,
        open_pair=open_pair,
    )


def cpus_busy(cpus: set[int]) -> int:
    """Return the busy clock ticks so far of these CPUs (Linux /proc/stat), whoever used them."""
    busy = 0
    for line in Path("/proc/stat").read_text().splitlines():
        name, _, rest = line.partition(" ")
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
            values = [int(value) for value in rest.split()]
            busy += sum(values[:8]) - values[3] - values[4]  # all but idle and iowait
    return busy


def group_pids(group: int) -> list[int]:
    return [reading.pid for reading in read_processes() if reading.group == group]


def group_memory_mb(group: int) -> tuple[float, float]:
    """Return the RSS and the PSS (MB) summed over a process group (Linux /proc)."""
    rss = pss = 0
    for pid in group_pids(group):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
    return rss / 1024, pss / 1024


def connection_owners(group: int, port: int) -> dict[int, int]:
    """Map the client port of each connection to `port` to the server pid that holds it."""
    inodes: dict[int, int] = {}
    for pid in group_pids(group):
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if target.startswith("socket:["):
                        inodes[int(target[8:-1])] = pid
    owners: dict[int, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local_port = int(fields[1].rsplit(":", 1)[1], 16)
                inode = int(fields[9])
                if local_port == port and inode in inodes:
                    owners[int(fields[2].rsplit(":", 1)[1], 16)] = inodes[inode]
    return owners


def wait_for_workers(server: Server, workers: int, deadline: float = 30.0) -> None:
    """Wait until the node's master has forked all its workers."""
    end = time.monotonic() + deadline
    while len(group_pids(server.pid)) < workers + 1:
        if time.monotonic() > end:
            raise TimeoutError(f"{workers} workers did not start")
        time.sleep(0.1)


# ---------------------------------------------------------------------------------------------
# measuring


@dataclass
class Result:
    server: str
    load: str
    rate: float  # batches delivered per second during the load
    p50_ms: float
    p99_ms: float
    lost: int
    duplicated: int
    out_of_order: int
    cpu_us: float  # server CPU per delivered batch
    rss_mb: float
    pss_mb: float
    gen_cpu: float  # the load generator's share of one CPU
    other_cpu: float  # the rest of the machine's processes, in CPUs (a shared host is noisy)
    server_cpus_busy: float  # how busy the servers' CPUs were, whoever used them
    stats: Stats
    unacked: int = 0
    store_cpu_us: float | None = None  # the shared store's own CPU per delivered batch

    def row(self) -> str:
        return (
            f"{self.server:<26} {self.load:<14} {self.rate:>8.0f} {self.p50_ms:>7.2f}"
            f" {self.p99_ms:>8.2f} {self.lost:>5} {self.duplicated:>4} {self.out_of_order:>4}"
            f" {self.cpu_us:>9.0f} {self.rss_mb:>7.0f} {self.pss_mb:>7.0f}"
            f" {self.gen_cpu * 100:>6.0f}% {self.other_cpu * 100:>6.0f}%"
            f" {self.server_cpus_busy * 100:>8.0f}%"
        )

    def problems(self) -> list[str]:
        stats = self.stats
        found = []
        if stats.errors:
            found.append(f"{stats.errors} error frames (first: {stats.first_error})")
        if stats.closes:
            found.append(f"closed by the server: {dict(stats.closes)}")
        if stats.resyncs:
            found.append(f"{stats.resyncs} resyncs")
        if self.unacked:
            found.append(f"{self.unacked} batches never acknowledged")
        return found


HEADER = (
    f"{'server':<26} {'load':<14} {'msgs/s':>8} {'p50 ms':>7} {'p99 ms':>8} {'lost':>5}"
    f" {'dup':>4} {'ooo':>4} {'cpu µs/msg':>9} {'rss MB':>7} {'pss MB':>7} {'gen cpu':>7}"
    f" {'others':>7} {'srv busy':>9}"
)


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def measure_load(
    generator: Generator,
    server: Server,
    label: str,
    *,
    load: str,
    duration: float,
    drive: Callable[[Pair, float, float], Awaitable[None]],
    store_group: int | None = None,
) -> Result:
    loop = asyncio.get_running_loop()
    generator.stats = stats = Stats()
    generator.phase = load
    lost_before = generator.lost()
    store_before = group_cpu_seconds(store_group) if store_group else 0.0
    cpu_before = group_cpu_seconds(server.pid)
    machine_before = machine_ticks()[0]
    server_cpus_before = cpus_busy(SERVER_CPUS)
    gen_before = time.process_time()
    started_wall = time.monotonic()
    start = loop.time() + 0.05
    end = start + duration
    senders = [asyncio.create_task(drive(pair, start, end)) for pair in generator.pairs]
    await asyncio.sleep(max(0.0, end - loop.time()))
    delivered_in_window = stats.delivered
    await asyncio.gather(*senders)
    await generator.drain()
    cpu = group_cpu_seconds(server.pid) - cpu_before
    store_cpu = group_cpu_seconds(store_group) - store_before if store_group else None
    machine = (machine_ticks()[0] - machine_before) / os.sysconf("SC_CLK_TCK")
    server_cpus = (cpus_busy(SERVER_CPUS) - server_cpus_before) / os.sysconf("SC_CLK_TCK")
    generated = time.process_time() - gen_before
    wall = time.monotonic() - started_wall
    rss, pss = group_memory_mb(server.pid)
    return Result(
        label,
        load,
        delivered_in_window / duration,
        percentile(stats.latencies, 0.50) * 1000,
        percentile(stats.latencies, 0.99) * 1000,
        generator.lost() - lost_before,
        stats.duplicated,
        stats.out_of_order,
        cpu / max(1, stats.delivered) * 1e6,
        rss,
        pss,
        generated / wall,
        max(0.0, machine - cpu - (store_cpu or 0.0) - generated) / wall,
        server_cpus / wall / len(SERVER_CPUS),
        stats,
        unacked=generator.unacked(),
        store_cpu_us=None if store_cpu is None else store_cpu / max(1, stats.delivered) * 1e6,
    )


@dataclass
class Run:
    target: Target
    fixed: Result
    saturation: Result
    cross: tuple[int, int] | None = None  # cross-worker pairs, pairs with both ends located
    per_worker: list[int] = field(default_factory=list)  # connections each worker holds


async def run_target(target: Target, args: argparse.Namespace, batches: Batches, log: Path) -> Run:
    server = Server(target.argv, log)
    try:
        await asyncio.to_thread(server.wait_ready, target.ready_url, 60.0)
        if target.workers > 1:
            await asyncio.to_thread(wait_for_workers, server, target.workers)
        generator = Generator(batches)
        if args.timeline:
            generator.timeline = []
        limit = asyncio.Semaphore(SETUP_CONCURRENCY)

        async def add(index: int) -> None:
            async with limit:
                await generator.add_pair(index, target.open_pair, target.consent)

        await asyncio.gather(*(add(index) for index in range(args.pairs)))
        generator.pairs.sort(key=lambda pair: pair.index)
        run_cross, per_worker = locate(generator, server, target)
        await asyncio.sleep(1.0)  # let the snapshots' writes settle (WAL checkpoints)
        print(f"  {target.label}: {args.pairs} pairs ready", file=sys.stderr)

        def paced(pair: Pair, start: float, end: float) -> Awaitable[None]:
            return generator.paced(pair, args.rate, start, end)

        def windowed(pair: Pair, start: float, end: float) -> Awaitable[None]:
            return generator.windowed(pair, args.window, end)

        fixed = await measure_load(
            generator,
            server,
            target.label,
            load=f"{args.pairs}x{args.rate:g}/s",
            duration=args.duration,
            drive=paced,
            store_group=target.store_group,
        )
        saturation = await measure_load(
            generator,
            server,
            target.label,
            load=f"saturation w{args.window}",
            duration=args.saturation_duration,
            drive=windowed,
            store_group=target.store_group,
        )
        await generator.close()
        if args.timeline and generator.timeline is not None:
            path = Path(f"{args.timeline}.{target.label.split()[0]}-{target.workers}.json")
            path.write_bytes(orjson.dumps(generator.timeline))
        return Run(target, fixed, saturation, run_cross, per_worker)
    finally:
        await asyncio.to_thread(server.stop)


def locate(
    generator: Generator, server: Server, target: Target
) -> tuple[tuple[int, int] | None, list[int]]:
    """Find which worker holds each channel; mark each pair same- or cross-worker."""
    if target.workers <= 1:
        return None, []
    owners = connection_owners(server.pid, target.port)
    located = cross = 0
    for pair in generator.pairs:
        customer = owners.get(pair.customer.local_address[1])
        agent = owners.get(pair.agent.local_address[1])
        if customer is None or agent is None:
            continue
        located += 1
        pair.path = "same" if customer == agent else "cross"
        cross += pair.path == "cross"
    per_worker = sorted(Counter(owners.values()).values(), reverse=True)
    return (cross, located), per_worker


# ---------------------------------------------------------------------------------------------
# report


def report(runs: list[Run], args: argparse.Namespace, batches: Batches) -> int:
    """Print the table and the comparisons; return the exit status."""
    print(
        f"realtime channel: {args.pairs} pairs; fixed load {args.rate:g} batches/s per pair for "
        f"{args.duration:g} s, then saturation (each pair keeps <= {args.window} batches "
        f"undelivered) for {args.saturation_duration:g} s"
    )
    print(
        f"{MODEL}; here: full snapshot {len(batches.frame(1, time.time(), None)) / 1000:.0f} KB "
        f"({batches.node_count} nodes), incremental mean {batches.mean_incremental / 1000:.1f} KB"
    )
    print(HEADER)
    results = [result for run in runs for result in (run.fixed, run.saturation)]
    for result in results:
        print(result.row())
    status = 0
    for result in results:
        for problem in result.problems():
            print(f"  {result.server} {result.load}: {problem}")
            status = 1
        if result.lost or result.duplicated or result.out_of_order:
            status = 1  # correctness, at every load of every server, whatever --check says
        lag = percentile(result.stats.send_lag, 0.99) * 1000
        if result.stats.send_lag and lag > 5:
            print(f"  {result.server} {result.load}: generator pacing lag p99 {lag:.1f} ms")
    for run in runs:
        print_cross_worker(run)
    shared = [run for run in runs if run.target.store == "redis"]
    nodes = [run for run in runs if run.target.consent and run.target.store == "sqlite"]
    floor = next((run for run in runs if not run.target.consent), None)
    if len(nodes) > 1:
        many, one = nodes[0], nodes[1]
        print(
            f"workers {many.target.workers} vs {one.target.workers}: saturation "
            f"{many.saturation.rate:.0f} vs {one.saturation.rate:.0f} msgs/s "
            f"({many.saturation.rate / one.saturation.rate:.2f}x); cpu/msg at fixed load "
            f"{many.fixed.cpu_us:.0f} vs {one.fixed.cpu_us:.0f} µs; p50/p99 at fixed load "
            f"{many.fixed.p50_ms:.2f}/{many.fixed.p99_ms:.2f} vs "
            f"{one.fixed.p50_ms:.2f}/{one.fixed.p99_ms:.2f} ms"
        )
    if nodes and floor is not None:
        node = nodes[0]
        print(
            f"saturation per server CPU-second (1 / cpu per msg, less sensitive to a noisy host): "
            f"{node.target.label} {1e6 / node.saturation.cpu_us:.0f}, floor "
            f"{1e6 / floor.saturation.cpu_us:.0f} msgs "
            f"({floor.saturation.cpu_us / node.saturation.cpu_us:.2f}x)"
        )
    checks = targets(nodes[0] if nodes else None, floor)
    for run in shared:
        checks += compare_stores(run, nodes[0] if nodes else None)
    for text, met in checks:
        print(f"{text}: {'met' if met else 'MISSED'}")
        if args.check and not met:
            status = 1
    return status


def compare_stores(redis: Run, sqlite: Run | None) -> list[tuple[str, bool]]:
    """Print the shared store against SQLite; return its target (p99 at the fixed load)."""
    for result in (redis.fixed, redis.saturation):
        print(
            f"{redis.target.label} {result.load}: redis-server's own CPU "
            f"{result.store_cpu_us or 0:.0f} µs/msg (node + redis "
            f"{result.cpu_us + (result.store_cpu_us or 0):.0f} µs/msg)"
        )
    if sqlite is not None:
        print(
            f"redis vs sqlite ({redis.target.workers} workers): p50/p99 at fixed load "
            f"{redis.fixed.p50_ms:.2f}/{redis.fixed.p99_ms:.2f} vs "
            f"{sqlite.fixed.p50_ms:.2f}/{sqlite.fixed.p99_ms:.2f} ms; saturation "
            f"{redis.saturation.rate:.0f} vs {sqlite.saturation.rate:.0f} msgs/s "
            f"({redis.saturation.rate / sqlite.saturation.rate:.2f}x)"
        )
    fixed = redis.fixed
    return [
        (
            f"target: {redis.target.label} p99 at {fixed.load} <= {P99_TARGET_MS:g} ms: "
            f"{fixed.p99_ms:.2f} ms",
            fixed.p99_ms <= P99_TARGET_MS,
        ),
        (
            f"target: {redis.target.label} 0 lost / duplicated / out of order at {fixed.load}: "
            f"{fixed.lost} / {fixed.duplicated} / {fixed.out_of_order}",
            fixed.lost == fixed.duplicated == fixed.out_of_order == 0,
        ),
    ]


def print_cross_worker(run: Run) -> None:
    if run.cross is None:
        return
    cross, located = run.cross
    print(
        f"{run.target.label}: {cross}/{located} pairs cross-worker "
        f"({cross / max(1, located):.0%}); channels per worker {run.per_worker}"
    )
    for result in (run.fixed, run.saturation):
        same, crossed = result.stats.by_path["same"], result.stats.by_path["cross"]
        print(
            f"  {result.load}: same-worker pairs {len(same)} batches, p50/p99 "
            f"{percentile(same, 0.5) * 1000:.2f}/{percentile(same, 0.99) * 1000:.2f} ms; "
            f"cross-worker pairs {len(crossed)} batches, p50/p99 "
            f"{percentile(crossed, 0.5) * 1000:.2f}/{percentile(crossed, 0.99) * 1000:.2f} ms"
        )


def targets(node: Run | None, floor: Run | None) -> list[tuple[str, bool]]:
    """Return each target's line and whether it is met."""
    if node is None:
        return []
    fixed = node.fixed
    checks = [
        (
            f"target: {node.target.label} p99 at {fixed.load} <= {P99_TARGET_MS:g} ms: "
            f"{fixed.p99_ms:.2f} ms",
            fixed.p99_ms <= P99_TARGET_MS,
        ),
        (
            f"target: 0 lost / duplicated / out of order at {fixed.load}: "
            f"{fixed.lost} / {fixed.duplicated} / {fixed.out_of_order}",
            fixed.lost == fixed.duplicated == fixed.out_of_order == 0,
        ),
    ]
    if floor is not None:
        ratio = node.saturation.rate / floor.saturation.rate
        checks.append(
            (
                f"target: {node.target.label} saturation >= {RATIO_TARGET:.2f}x the floor: "
                f"{ratio:.2f}x ({node.saturation.rate:.0f} / {floor.saturation.rate:.0f} msgs/s)",
                ratio >= RATIO_TARGET,
            )
        )
    return checks


def start_redis(directory: Path, stack: contextlib.ExitStack) -> tuple[str, int]:
    """Start a local redis-server (stopped with `stack`); return its URL and process group."""
    from cobrowse.ops.cluster import redis_argv, redis_ping

    port = free_port()
    (directory / "redis").mkdir()
    server = Server(redis_argv(directory / "redis", port), directory / "redis.log")
    stack.callback(server.stop)
    end = time.monotonic() + 30
    while not redis_ping(port):
        if time.monotonic() > end or server.popen.poll() is not None:
            raise RuntimeError(f"redis-server did not start: see {directory / 'redis.log'}")
        time.sleep(0.05)
    return f"redis://127.0.0.1:{port}/0", server.pid


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=200, help="customer/agent pairs")
    parser.add_argument("--rate", type=float, default=5.0, help="batches/s per customer")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of fixed load")
    parser.add_argument(
        "--saturation-duration", type=float, default=10.0, help="seconds of saturation"
    )
    parser.add_argument(
        "--window", type=int, default=2, help="saturation: undelivered batches per pair"
    )
    parser.add_argument("--workers", type=int, default=4, help="the node's workers")
    parser.add_argument("--skip-floor", action="store_true", help="do not run the floor relay")
    parser.add_argument(
        "--skip-single-worker", action="store_true", help="do not run the node with 1 worker"
    )
    parser.add_argument(
        "--no-compression", action="store_true", help="do not negotiate permessage-deflate"
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument(
        "--store",
        choices=["sqlite", "redis"],
        default="sqlite",
        help="redis: also run the node on the shared store (a local redis-server), right "
        "after the SQLite node, and compare them (default %(default)s: SQLite only)",
    )
    parser.add_argument("--only-floor", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--timeline",
        metavar="PREFIX",
        help="write each server's (receive time, latency, pair, path) samples to PREFIX.*.json",
    )
    args = parser.parse_args(argv)
    os.sched_setaffinity(0, LOAD_CPUS)  # the servers get the other CPUs (benchmarks.common)
    compression = not args.no_compression
    batches = make_batches()
    with (
        tempfile.TemporaryDirectory(prefix="cobrowse-bench-rt-") as scratch,
        contextlib.ExitStack() as stack,
    ):
        directory = Path(scratch)
        targets = [] if args.only_floor else [node_target(directory, args.workers, compression)]
        if args.store == "redis" and not args.only_floor:
            redis = start_redis(directory, stack)
            targets.append(node_target(directory, args.workers, compression, redis))
        if args.workers != 1 and not (args.skip_single_worker or args.only_floor):
            targets.append(node_target(directory, 1, compression))
        if not args.skip_floor:
            targets.append(floor_target(compression))

        async def run_all() -> list[Run]:
            runs = []
            for index, target in enumerate(targets):
                runs.append(await run_target(target, args, batches, directory / f"{index}.log"))
            return runs

        try:
            runs = uvloop.run(run_all())
        except BaseException:
            for log in sorted(directory.glob("*.log")):
                tail = log.read_text(errors="replace")[-3000:]
                print(f"--- {log.name}\n{tail}", file=sys.stderr)
            raise
    return report(runs, args, batches)


if __name__ == "__main__":
    sys.exit(main())
