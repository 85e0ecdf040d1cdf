"""`cobrowse loadtest --idle-sessions N`: what an idle live session costs a node in memory.

One node (`--workers` workers) on free ports, no load balancer. This process (asyncio, the
`websockets` client: 2N WebSockets in one process, past what Locust's greenlets would carry
cheaply) opens N sessions the way the live scenarios do: Create Session, the agent's join, both
channels with hello, the customer's consent, and the answer to its snapshot-request (the first
batch of the demo recording: a Meta event, a full snapshot and one incremental event, 12 KB).
Then every socket stays open and silent (the node's pings and their pongs aside). Like browsers,
the client negotiates permessage-deflate (`IdleOptions(compression=False)` to compare); the
node's `[realtime] compression` decides what that costs it.

Memory is read from /proc for the node's process group (Gunicorn's master and its workers):
RSS, as asked, and PSS, which shares the pages the workers inherited from the master instead of
counting them once per worker. Before: after a warm-up (a few sessions opened and ended, so that
code paths, caches and pools the first sessions fill are not charged to the measured ones) and
a settling pause. After: with the N sessions open, after the same pause. Per session:
(after - before) / N, both channels included. `idle.txt` in the results folder has the table.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cobrowse.config.loader import load_cluster
from cobrowse.loadtest.cpushare import read_processes
from cobrowse.loadtest.runner import HOST, LOADTESTS, results_dir, write_cluster_file
from cobrowse.ops.cluster import LocalCluster, StartError, cluster_parts

ORIGIN = "http://localhost:8080"
FIXTURE = LOADTESTS / "fixtures" / "demo-recording.json"
CONCURRENCY = 32
STEP_TIMEOUT_S = 30.0
PROC = Path("/proc")
# Idle sessions must stay open for the whole measurement: no timeout may end them meanwhile.
IDLE_SECTIONS = {"session": {"inactivityTimeout": "3600", "agentTimeout": "3600"}}


@dataclass(frozen=True)
class IdleOptions:
    """What `cobrowse loadtest --idle-sessions` measures."""

    sessions: int = 1000
    workers: int = 2
    results: Path = Path("results")
    warmup: int = 20
    settle_s: float = 10.0
    compression: bool = True  # permessage-deflate, as browsers negotiate it
    snapshot: bool = True  # the customer answers its snapshot-request, as the real script does


@dataclass(frozen=True, slots=True)
class Memory:
    """Resident memory of a process group, per process and summed."""

    rss: dict[int, int]  # pid -> bytes
    pss: dict[int, int]

    @property
    def rss_total(self) -> int:
        return sum(self.rss.values())

    @property
    def pss_total(self) -> int:
        return sum(self.pss.values())


def _pss_bytes(pid: int, proc: Path = PROC) -> int:
    try:
        for line in (proc / str(pid) / "smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def group_memory(group: int, proc: Path = PROC) -> Memory:
    """Return the RSS and PSS of every process of process group `group`."""
    page = os.sysconf("SC_PAGE_SIZE")
    rss, pss = {}, {}
    for reading in read_processes(proc):
        if reading.group != group:
            continue
        try:
            pages = int((proc / str(reading.pid) / "statm").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
        rss[reading.pid] = pages * page
        pss[reading.pid] = _pss_bytes(reading.pid, proc)
    return Memory(rss, pss)


def raise_file_limit(needed: int) -> int:
    """Raise this process's open-file limit to the hard limit; return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, needed)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    if wanted < needed:
        raise OSError(f"{needed} open files needed, the hard limit is {hard}: raise `ulimit -Hn`")
    return wanted


def first_batch_frame(path: Path = FIXTURE) -> str:
    """The customer's answer to snapshot-request: the recording's first batch (full snapshot)."""
    batches = json.loads(path.read_text())
    return json.dumps({"type": "events", "cseq": 1, "data": batches[0]["events"]})


# ---------------------------------------------------------------------------------------------
# the clients


def _post(url: str, body: dict[str, Any], origin: str | None = None) -> dict[str, Any]:
    headers = {"Content-Type": "application/json", **({"Origin": origin} if origin else {})}
    request = urllib.request.Request(  # noqa: S310 - http to the local node
        url, data=json.dumps(body).encode(), headers=headers, method="POST"
    )
    with urllib.request.urlopen(request, timeout=STEP_TIMEOUT_S) as response:  # noqa: S310
        answer: dict[str, Any] = json.loads(response.read())
        return answer


@dataclass
class IdleSession:
    """One session's two open sockets."""

    customer: Any
    agent: Any


@dataclass
class Opener:
    """Open sessions against one node, CONCURRENCY at a time."""

    base: str  # http://host:port/<context>
    compression: bool
    snapshot_frame: str | None
    opened: list[IdleSession] = field(default_factory=list)

    def channel_url(self, server_url: str, token: str) -> str:
        return server_url.replace("http", "ws", 1) + f"/rest/live/users/{token}/channel"

    async def connect(self, url: str) -> Any:
        from websockets.asyncio.client import connect

        socket = await connect(
            url,
            origin=ORIGIN,  # type: ignore[arg-type]
            compression="deflate" if self.compression else None,
            ping_interval=None,  # silent: only the node pings (and is answered)
            open_timeout=STEP_TIMEOUT_S,
        )
        return socket

    async def expect(self, socket: Any, kind: str) -> dict[str, Any]:
        while True:
            frame: dict[str, Any] = json.loads(
                await asyncio.wait_for(socket.recv(), STEP_TIMEOUT_S)
            )
            if frame.get("type") == kind:
                return frame

    async def open_one(self) -> IdleSession:
        api = f"{self.base}/rest/live"
        created = await asyncio.to_thread(_post, f"{api}/sessions", {})
        server = self.base  # the node itself: its sessionServerUrl names a router not started
        customer = await self.connect(self.channel_url(server, created["userToken"]))
        await customer.send('{"type":"hello","lastSeq":0}')
        await self.expect(customer, "welcome")
        joined = await asyncio.to_thread(
            _post, f"{api}/sessions/{created['sessionToken']}/join", {"name": "Idle"}, ORIGIN
        )
        agent = await self.connect(self.channel_url(server, joined["userToken"]))
        await agent.send('{"type":"hello","lastSeq":0}')
        await self.expect(agent, "welcome")
        request = await self.expect(customer, "join-request")
        consent = {"type": "consent", "userId": request["userId"], "accept": True}
        await customer.send(json.dumps(consent))
        await self.expect(customer, "snapshot-request")
        if self.snapshot_frame is not None:
            await customer.send(self.snapshot_frame)
            await self.expect(customer, "ack")
            await self.expect(agent, "events")
        else:
            await self.expect(agent, "joined")
        return IdleSession(customer, agent)

    async def open(self, count: int) -> list[IdleSession]:
        limit = asyncio.Semaphore(CONCURRENCY)

        async def one() -> IdleSession:
            async with limit:
                return await self.open_one()

        sessions = await asyncio.gather(*(one() for _ in range(count)))
        self.opened.extend(sessions)
        return list(sessions)


async def close_sessions(sessions: list[IdleSession]) -> None:
    """The customers exit (the sessions end), then every socket closes."""

    async def close(session: IdleSession) -> None:
        with contextlib.suppress(Exception):
            await session.customer.send('{"type":"exit"}')
        for socket in (session.agent, session.customer):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(socket.close(), 5)

    await asyncio.gather(*(close(session) for session in sessions))


# ---------------------------------------------------------------------------------------------
# the report


@dataclass(frozen=True, slots=True)
class IdleResult:
    """Memory before and after, and what was opened."""

    sessions: int
    workers: int
    compression: bool
    before: Memory
    after: Memory
    channels: dict[str, int]  # the node's cobrowse_realtime_channels by role, after
    open_s: float

    @property
    def rss_per_session(self) -> float:
        return (self.after.rss_total - self.before.rss_total) / self.sessions

    @property
    def pss_per_session(self) -> float:
        return (self.after.pss_total - self.before.pss_total) / self.sessions


def format_idle(result: IdleResult, master: int) -> str:
    """Return the report: RSS and PSS per process before and after, and per session."""
    lines = [
        f"{result.sessions} idle sessions (customer and agent connected and silent) on one node "
        f"of {result.workers} workers, permessage-deflate "
        f"{'on' if result.compression else 'off'}; opened in {result.open_s:.1f} s",
        f"open channels (node metric): customer {result.channels.get('customer', 0)}, "
        f"agent {result.channels.get('agent', 0)}",
        "",
        "process          RSS before   RSS after    PSS before   PSS after",
    ]
    for pid in sorted(set(result.before.rss) | set(result.after.rss)):
        name = "master" if pid == master else f"worker {pid}"
        lines.append(
            f"{name:<16} {_mb(result.before.rss.get(pid))} {_mb(result.after.rss.get(pid))} "
            f"{_mb(result.before.pss.get(pid))} {_mb(result.after.pss.get(pid))}"
        )
    lines.append(
        f"{'total':<16} {_mb(result.before.rss_total)} {_mb(result.after.rss_total)} "
        f"{_mb(result.before.pss_total)} {_mb(result.after.pss_total)}"
    )
    lines += [
        "",
        f"per session (both channels): RSS {result.rss_per_session / 1024:.1f} KB, "
        f"PSS {result.pss_per_session / 1024:.1f} KB",
    ]
    return "\n".join(lines)


def _mb(size: int | None) -> str:
    return f"{'-':>9}   " if size is None else f"{size / 2**20:8.1f} MB"


def _node_channels(base: str) -> dict[str, int]:
    from cobrowse.loadtest.soak import channels_in_metrics

    try:
        with urllib.request.urlopen(f"{base}/metrics", timeout=5) as response:  # noqa: S310
            return channels_in_metrics(response.read().decode())
    except (OSError, urllib.error.URLError):
        return {}


@contextlib.contextmanager
def _running(directory: Path, workers: int) -> Iterator[tuple[LocalCluster, str]]:
    config_path = write_cluster_file(directory, 1, workers, sections=IDLE_SECTIONS)
    config = load_cluster(config_path)
    parts = [
        part
        for part in cluster_parts(config, config_path, directory / "logs")
        if part.kind == "node"
    ]
    cluster = LocalCluster(parts)
    cluster.start()
    try:
        yield cluster, parts[0].url
    finally:
        cluster.stop()


async def _measure(options: IdleOptions, base: str, group: int) -> IdleResult:
    frame = first_batch_frame() if options.snapshot else None
    opener = Opener(base, options.compression, frame)
    if options.warmup:
        await close_sessions(await opener.open(options.warmup))
    await asyncio.sleep(options.settle_s)
    before = group_memory(group)
    started = time.monotonic()
    sessions = await opener.open(options.sessions)
    open_s = time.monotonic() - started
    await asyncio.sleep(options.settle_s)
    after = group_memory(group)
    channels = _node_channels(base)
    await close_sessions(sessions)
    return IdleResult(
        options.sessions, options.workers, options.compression, before, after, channels, open_s
    )


def run_idle(options: IdleOptions) -> int:
    """Measure; print and save the report; return 0 (or 1 when the node failed to start)."""
    raise_file_limit(2 * (options.sessions + options.warmup) + 256)
    directory = results_dir(options.results)
    print(f"results in {directory}", file=sys.stderr)
    try:
        with _running(directory, options.workers) as (cluster, base):
            master = cluster.parts[0].pid
            print(
                f"one node of {options.workers} workers at {base}; opening "
                f"{options.sessions} sessions from {HOST}…",
                file=sys.stderr,
            )
            result = asyncio.run(_measure(options, base, master))
    except StartError as error:
        print(f"the node failed to start: {error}", file=sys.stderr)
        return 1
    text = format_idle(result, master)
    (directory / "idle.txt").write_text(text + "\n")
    print(text)
    return 0
