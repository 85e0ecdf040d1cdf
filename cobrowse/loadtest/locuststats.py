"""Read what a Locust run wrote (CSV stats, the scenario's outcome) and summarise it."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cobrowse.loadtest.cpushare import CpuShare

CREATE_NAME = "/sessions"  # the name the locustfile gives Create Session
DELIVERED_NAME = "agent: events"  # loadtests/live.py: customers' batches delivered live to agents
AGGREGATED = "Aggregated"
# loadtests/live.py's counters, in the order the summary shows them.
LIVE_COUNTERS = (
    "sessions",
    "agents joined",
    "batches sent",
    "batches acked",
    "delivered",
    "catch-up messages",
    "lost",
    "undelivered",
    "duplicated",
    "out of order",
    "missing snapshots",
    "resyncs",
    "join failures",
    "consent timeouts",
    "reconnects (customer)",
    "reconnects (agent)",
    "late batches",
)


@dataclass(frozen=True, slots=True)
class RequestStats:
    """One row of Locust's `<prefix>_stats.csv`: a request type, or all of them."""

    method: str
    name: str
    requests: int
    failures: int
    per_s: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None

    @property
    def label(self) -> str:
        return f"{self.method} {self.name}".strip() if self.name != AGGREGATED else "all"


@dataclass(frozen=True, slots=True)
class Rate:
    """Requests per second over a window of the run."""

    per_s: float
    window_s: float
    users: int


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the locustfile judged at the end (its `--outcome-file`)."""

    passed: bool
    summary: str
    misroutes: int
    counters: dict[str, int] = field(default_factory=dict)
    kind: str = "rest"  # or "live" (loadtests/live.py)


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None  # Locust writes N/A for a name without requests
    return value if math.isfinite(value) else None


def read_stats(path: Path) -> list[RequestStats]:
    """Return the rows of `<prefix>_stats.csv`, the aggregated row last."""
    with path.open(newline="") as handle:
        return [
            RequestStats(
                method=row["Type"],
                name=row["Name"],
                requests=int(row["Request Count"]),
                failures=int(row["Failure Count"]),
                per_s=_number(row["Requests/s"]) or 0.0,
                p50_ms=_number(row["50%"]),
                p95_ms=_number(row["95%"]),
                p99_ms=_number(row["99%"]),
            )
            for row in csv.DictReader(handle)
        ]


def sustained_rate(history_path: Path, name: str = CREATE_NAME) -> Rate | None:
    """Return the rate of `name` while the most users ran (ramps excluded), from the history.

    Needs `--csv-full-history` (per-name rows); None when the peak lasted under two samples.
    """
    with history_path.open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["Name"] == name]
    if not rows:
        return None
    peak = max(int(row["User Count"]) for row in rows)
    at_peak = [row for row in rows if int(row["User Count"]) == peak]
    first, last = at_peak[0], at_peak[-1]
    window_s = int(last["Timestamp"]) - int(first["Timestamp"])
    if window_s <= 0:
        return None
    done = int(last["Total Request Count"]) - int(first["Total Request Count"])
    return Rate(done / window_s, window_s, peak)


def read_outcome(path: Path) -> Outcome | None:
    """Return the locustfile's verdict, or None when Locust did not get as far as writing it."""
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return Outcome(
        passed=bool(data["passed"]),
        summary=str(data["summary"]),
        misroutes=int(data["measured"].get("misroutes", 0)),
        counters={str(key): int(value) for key, value in data.get("counters", {}).items()},
        kind=str(data.get("kind", "rest")),
    )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _table(rows: Sequence[Sequence[str]], right_from: int = 1) -> list[str]:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return [
        "  ".join(
            cell.rjust(width) if column >= right_from else cell.ljust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]


def format_summary(
    stats: Sequence[RequestStats],
    sustained: Rate | None,
    outcome: Outcome | None,
    cpu: Sequence[CpuShare],
) -> str:
    """Return the short report `cobrowse loadtest` prints.

    `sustained` is the rate of creates, or for a live run (its outcome says so) of the
    messages delivered to agents.
    """
    lines = []
    live = outcome is not None and outcome.kind == "live"
    creates = next((row for row in stats if row.name == CREATE_NAME), None)
    delivered = next((row for row in stats if row.name == DELIVERED_NAME), None)
    if live and delivered is not None:
        steady = (
            f"{sustained.per_s:.1f}/s sustained ({sustained.window_s} s at {sustained.users} "
            f"users), "
            if sustained
            else ""
        )
        lines.append(
            f"messages delivered live to agents: {steady}{delivered.per_s:.1f}/s over the run, "
            f"{delivered.requests} in all; latency p50 {_ms(delivered.p50_ms)}, "
            f"p95 {_ms(delivered.p95_ms)}, p99 {_ms(delivered.p99_ms)} ms"
        )
    elif creates is not None:
        steady = (
            f"{sustained.per_s:.1f}/s sustained ({sustained.window_s} s at {sustained.users} "
            f"users), "
            if sustained
            else ""
        )
        lines.append(
            f"sessions created: {steady}{creates.per_s:.1f}/s over the run, "
            f"{creates.requests} in all"
        )
    rows = [("request", "count", "fails", "req/s", "p50 ms", "p95 ms", "p99 ms")]
    rows += [
        (
            row.label,
            str(row.requests),
            str(row.failures),
            f"{row.per_s:.1f}",
            _ms(row.p50_ms),
            _ms(row.p95_ms),
            _ms(row.p99_ms),
        )
        for row in stats
    ]
    lines += ["", *_table(rows), ""]
    total = next((row for row in stats if row.name == AGGREGATED), None)
    if total is not None:
        ratio = total.failures / total.requests if total.requests else 0.0
        lines.append(f"failures: {total.failures} of {total.requests} ({ratio:.2%})")
    if outcome is None:
        lines.append("misroutes: unknown (Locust wrote no outcome)")
    elif live:
        counted = [name for name in LIVE_COUNTERS if name in outcome.counters]
        counted += sorted(set(outcome.counters) - set(LIVE_COUNTERS))
        lines.append("live: " + ", ".join(f"{name} {outcome.counters[name]}" for name in counted))
        lines.append(outcome.summary)
    else:
        lines += [f"misroutes: {outcome.misroutes}", outcome.summary]
    if cpu:
        window_s = cpu[0].window_s
        lines += ["", f"CPU during the run ({window_s:.0f} s; 100% = one CPU, {cpu[0].cpus} CPUs):"]
        cpu_rows = [("process", "CPU", "of machine")]
        cpu_rows += [
            (share.name, f"{share.of_one_cpu:.0%}", f"{share.of_machine:.0%}") for share in cpu
        ]
        lines += ["  " + line for line in _table(cpu_rows)]
    return "\n".join(lines)
