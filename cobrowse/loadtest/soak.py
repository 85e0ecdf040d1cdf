"""`cobrowse soak`: moderate Locust load on a local cluster for a long time, watching for drift.

It is `cobrowse loadtest` with two more readings: the resident memory (RSS) of every node
(Gunicorn master and workers) and of the load balancer, sampled through the run, and the trend
of p99 minute by minute. Growth that keeps going, or a p99 that keeps rising, is what a soak is
for; the report shows both, with the errors. With live sessions (`--live`), the p99 is the
delivery latency to agents, and the open channels are read minute by minute too: the nodes'
`cobrowse_realtime_channels` metric, and the router's tunnels (`/lb/status`).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import statistics
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from cobrowse.loadtest.cpushare import read_processes
from cobrowse.loadtest.locuststats import AGGREGATED, DELIVERED_NAME
from cobrowse.loadtest.runner import LoadTestOptions, run_loadtest

PROC = Path("/proc")
RSS_INTERVAL_S = 5.0
CHANNELS_INTERVAL_S = 5.0
SCRAPE_TIMEOUT_S = 2.0
_CHANNELS = re.compile(
    r'^cobrowse_realtime_channels\{[^}]*role="(?P<role>[^"]+)"[^}]*\}\s+(?P<value>\S+)$', re.M
)


def group_rss_bytes(groups: set[int], proc: Path = PROC) -> dict[int, int]:
    """Return the summed resident memory of every process in each process group."""
    page = os.sysconf("SC_PAGE_SIZE")
    totals = dict.fromkeys(groups, 0)
    for reading in read_processes(proc):
        if reading.group not in totals:
            continue
        try:
            totals[reading.group] += (
                int((proc / str(reading.pid) / "statm").read_text().split()[1]) * page
            )
        except (OSError, IndexError, ValueError):
            continue  # the process exited while being read
    return totals


@dataclass
class RssSampler:
    """Sample the RSS of named process groups every few seconds, from start() to stop()."""

    interval_s: float = RSS_INTERVAL_S
    groups: dict[int, str] = field(default_factory=dict)
    samples: list[dict[str, int]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)  # seconds since the first sample
    _stopping: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _started: float | None = None

    def watch(self, name: str, group: int) -> None:
        self.groups[group] = name

    def start(self) -> None:
        self.sample()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(5)
        self.sample()

    def _run(self) -> None:
        while not self._stopping.wait(self.interval_s):
            self.sample()

    def sample(self) -> None:
        rss = group_rss_bytes(set(self.groups))
        now = time.monotonic()
        if self._started is None:
            self._started = now
        self.times.append(now - self._started)
        self.samples.append({self.groups[group]: size for group, size in rss.items() if size})

    def by_minute(self) -> dict[str, list[tuple[int, int]]]:
        """Return each process's RSS at the end of every minute of the run (its last sample)."""
        minutes: dict[str, dict[int, int]] = {}
        for elapsed, sample in zip(self.times, self.samples, strict=True):
            for name, size in sample.items():
                minutes.setdefault(name, {})[int(elapsed // 60)] = size
        return {name: sorted(values.items()) for name, values in minutes.items()}


def channels_in_metrics(text: str) -> dict[str, int]:
    """Return the open channels by role from a node's Prometheus text."""
    found: dict[str, int] = {}
    for match in _CHANNELS.finditer(text):
        found[match["role"]] = found.get(match["role"], 0) + round(float(match["value"]))
    return found


def tunnels_in_status(status: dict[str, object]) -> int:
    """Return the WebSocket tunnels open through the router, from its `/lb/status`."""
    nodes = status.get("nodes")
    if not isinstance(nodes, list):
        return 0
    return sum(int(node.get("tunnels", 0)) for node in nodes if isinstance(node, dict))


def _get(url: str) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=SCRAPE_TIMEOUT_S) as response:  # noqa: S310
            body: bytes = response.read()
            return body
    except (OSError, urllib.error.URLError, ValueError):
        return None


@dataclass
class ChannelSampler:
    """Count open channels (nodes' metrics) and tunnels (the router's status) every few seconds.

    A Sampler of `run_loadtest`: it learns the parts' URLs through `watch_url`.
    """

    interval_s: float = CHANNELS_INTERVAL_S
    metrics_urls: dict[str, str] = field(default_factory=dict)  # node -> its metrics URL
    status_url: str | None = None  # the router's /lb/status
    times: list[float] = field(default_factory=list)
    samples: list[dict[str, int]] = field(default_factory=list)  # customer, agent, tunnels
    _stopping: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _started: float | None = None

    def watch(self, name: str, group: int) -> None:
        pass  # processes are the RSS sampler's business

    def watch_url(self, name: str, kind: str, url: str) -> None:
        if kind == "node":
            self.metrics_urls[name] = f"{url}/metrics"
        elif kind == "router":
            self.status_url = f"{url}/lb/status"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="channel-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(2 * SCRAPE_TIMEOUT_S * (len(self.metrics_urls) + 1))

    def _run(self) -> None:
        while not self._stopping.wait(self.interval_s):
            self.sample()

    def sample(self) -> None:
        counts: dict[str, int] = {}
        for url in self.metrics_urls.values():
            body = _get(url)
            for role, value in channels_in_metrics(body.decode() if body else "").items():
                counts[role] = counts.get(role, 0) + value
        if self.status_url is not None:
            body = _get(self.status_url)
            with contextlib.suppress(ValueError):
                counts["tunnels"] = tunnels_in_status(json.loads(body or b"{}"))
        now = time.monotonic()
        if self._started is None:
            self._started = now - self.interval_s  # the first sample ends the first interval
        self.times.append(now - self._started)
        self.samples.append(counts)

    def by_minute(self) -> list[tuple[int, dict[str, int]]]:
        """Return the counts at the end of every minute of the run (its last sample)."""
        minutes: dict[int, dict[str, int]] = {}
        for elapsed, sample in zip(self.times, self.samples, strict=True):
            minutes[int(elapsed // 60)] = sample
        return sorted(minutes.items())


def format_channels(sampler: ChannelSampler) -> str:
    """Return the open channels minute by minute, one line."""
    parts = []
    for minute, counts in sampler.by_minute():
        roles = f"customers {counts.get('customer', 0)}, agents {counts.get('agent', 0)}"
        tunnels = f", tunnels {counts['tunnels']}" if "tunnels" in counts else ""
        parts.append(f"{minute + 1}: {roles}{tunnels}")
    return "open channels by minute: " + ("; ".join(parts) or "none sampled")


def p99_by_minute(history_path: Path, name: str = AGGREGATED) -> list[tuple[int, float]]:
    """Return (minute, median of the 10-second-window p99s) of `name` (all requests by default)
    over the run, from Locust's history."""
    with history_path.open(newline="") as handle:
        rows = [
            row
            for row in csv.DictReader(handle)
            if row["Name"] == name and row["99%"] not in ("N/A", "")
        ]
    if not rows:
        return []
    start = int(rows[0]["Timestamp"])
    minutes: dict[int, list[float]] = {}
    for row in rows:
        minutes.setdefault((int(row["Timestamp"]) - start) // 60, []).append(float(row["99%"]))
    return [(minute, statistics.median(values)) for minute, values in sorted(minutes.items())]


def format_soak(
    rss: RssSampler,
    trend: list[tuple[int, float]],
    failures: int,
    live: dict[str, int] | None = None,
    channels: ChannelSampler | None = None,
) -> str:
    """Return the soak report: RSS at start and end per process, errors, p99 per minute; for
    live sessions, what was delivered and lost, and the open channels per minute."""
    first, middle, last = rss.samples[0], rss.samples[len(rss.samples) // 2], rss.samples[-1]
    # Growth over the second half tells a leak (keeps growing) from caches warming (levels off).
    lines = ["process        RSS start   RSS end   growth   second half"]
    for name in sorted(first):
        start, end = first[name], last.get(name, 0)
        whole, second_half = percent_change(start, end), percent_change(middle.get(name, 0), end)
        lines.append(
            f"{name:<14} {start / 2**20:8.1f} MB {end / 2**20:7.1f} MB "
            f"{whole:+7.1f}%  {second_half:+7.1f}%"
        )
    lines.append(f"\nerrors: {failures}")
    if live is not None:
        lines.append(
            f"delivered {live.get('delivered', 0)}, lost {live.get('lost', 0)}, "
            f"duplicated {live.get('duplicated', 0)}, out of order {live.get('out of order', 0)}"
        )
    label = "delivery p99 by minute: " if live is not None else "p99 by minute: "
    lines.append(label + ", ".join(f"{m + 1}: {p99:.0f} ms" for m, p99 in trend))
    if channels is not None:
        lines.append(format_channels(channels))
    lines.append("RSS by minute (MB):")
    for name, minutes in sorted(rss.by_minute().items()):
        values = ", ".join(f"{minute + 1}: {size / 2**20:.1f}" for minute, size in minutes)
        lines.append(f"  {name}: {values}")
    return "\n".join(lines)


def percent_change(before: int, after: int) -> float:
    """Return the change from `before` to `after` in percent (0 when there is no `before`)."""
    return (after - before) / before * 100 if before else 0.0


def run_soak(options: LoadTestOptions) -> int:
    """Run the soak; return Locust's exit code (SLOs), after printing the soak report."""
    rss = RssSampler()
    channels = ChannelSampler() if options.live else None
    report: dict[str, Path] = {}
    status = run_loadtest(
        options,
        extra_samplers=(rss,) if channels is None else (rss, channels),
        on_done=lambda path: report.update(directory=path),
    )
    directory = report.get("directory")
    if directory is None or not rss.samples or not (directory / "stats_stats.csv").exists():
        return status or 1
    try:
        outcome = json.loads((directory / "outcome.json").read_text())
    except (OSError, ValueError):
        return status or 1
    failures = int(outcome["measured"]["failures"])
    history = directory / "stats_stats_history.csv"
    if options.live:
        measured = outcome["measured"]
        live = {
            "delivered": int(measured["delivered"]),
            "lost": int(measured["lost"]),
            "duplicated": int(measured["duplicated"]),
            "out of order": int(measured["out_of_order"]),
        }
        trend = p99_by_minute(history, DELIVERED_NAME)
        text = format_soak(rss, trend, failures, live, channels)
    else:
        text = format_soak(rss, p99_by_minute(history), failures)
    (directory / "soak.txt").write_text(text + "\n")
    print("\nsoak:\n" + text)
    return status
