"""`cobrowse soak`: moderate Locust load on a local cluster for a long time, watching for drift.

It is `cobrowse loadtest` with two more readings: the resident memory (RSS) of every node
(Gunicorn master and workers) and of the load balancer, sampled through the run, and the trend
of p99 minute by minute. Growth that keeps going, or a p99 that keeps rising, is what a soak is
for; the report shows both, with the errors.
"""

from __future__ import annotations

import csv
import json
import os
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from cobrowse.loadtest.cpushare import read_processes
from cobrowse.loadtest.runner import LoadTestOptions, run_loadtest

PROC = Path("/proc")
RSS_INTERVAL_S = 5.0


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


def p99_by_minute(history_path: Path) -> list[tuple[int, float]]:
    """Return (minute, median of the 10-second-window p99s) over the run, from Locust's history."""
    with history_path.open(newline="") as handle:
        rows = [
            row
            for row in csv.DictReader(handle)
            if row["Name"] == "Aggregated" and row["99%"] not in ("N/A", "")
        ]
    if not rows:
        return []
    start = int(rows[0]["Timestamp"])
    minutes: dict[int, list[float]] = {}
    for row in rows:
        minutes.setdefault((int(row["Timestamp"]) - start) // 60, []).append(float(row["99%"]))
    return [(minute, statistics.median(values)) for minute, values in sorted(minutes.items())]


def format_soak(rss: RssSampler, trend: list[tuple[int, float]], failures: int) -> str:
    """Return the soak report: RSS at start and end per process, errors, p99 per minute."""
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
    lines.append("p99 by minute: " + ", ".join(f"{m + 1}: {p99:.0f} ms" for m, p99 in trend))
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
    report: dict[str, Path] = {}
    status = run_loadtest(
        options, extra_samplers=(rss,), on_done=lambda path: report.update(directory=path)
    )
    directory = report.get("directory")
    if directory is None or not rss.samples or not (directory / "stats_stats.csv").exists():
        return status or 1
    outcome = json.loads((directory / "outcome.json").read_text())
    failures = int(outcome["measured"]["failures"])
    text = format_soak(rss, p99_by_minute(directory / "stats_stats_history.csv"), failures)
    (directory / "soak.txt").write_text(text + "\n")
    print("\nsoak:\n" + text)
    return status
