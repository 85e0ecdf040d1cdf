"""`cobrowse loadtest --live` and `cobrowse soak --live`, short: a real cluster, real Locust
customers streaming the recording to real agents over the realtime channel."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO

DEADLINE_S = 120  # cluster start, Locust's start and the run, the reports, the stop


def cobrowse(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cobrowse.cli", *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
        check=False,
    )


def only_run(results: Path) -> Path:
    (run,) = [path for path in results.iterdir() if path.is_dir()]
    return run


def test_live_sessions_through_the_router_lose_nothing(tmp_path):
    done = cobrowse(
        "loadtest",
        "--live",
        "--pairs",
        "5",
        "--spawn-rate",
        "5",
        "--duration",
        "10s",
        "--speed",
        "2",
        "--results",
        str(tmp_path),
        # Latency on a shared CI machine is not what this test is about; loss is.
        "--",
        "--slo-delivery-p99-ms",
        "5000",
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]

    run = only_run(tmp_path)
    outcome = json.loads((run / "outcome.json").read_text())
    assert outcome["kind"] == "live"
    assert outcome["passed"], outcome["summary"]
    measured = outcome["measured"]
    assert (measured["lost"], measured["duplicated"], measured["out_of_order"]) == (0, 0, 0)
    assert measured["missing_snapshots"] == measured["join_failures"] == 0
    assert measured["consent_timeouts"] == 0
    counters = outcome["counters"]
    assert counters["sessions"] == counters["agents joined"] == 5
    # About 7 batches a second per pair at twice the recorded pace, minus the start.
    assert measured["delivered"] > 100
    assert counters["batches acked"] > 100

    with (run / "stats_stats.csv").open(newline="") as handle:
        rows = {row["Name"]: row for row in csv.DictReader(handle)}
    for name in ("/sessions", "/sessions/[token]/join", "agent: events", "customer: ack"):
        assert int(rows[name]["Request Count"]) > 0, name
        assert int(rows[name]["Failure Count"]) == 0, name
    assert (run / "report.html").stat().st_size > 0
    assert (run / "summary.txt").exists()

    assert "messages delivered live to agents" in done.stdout
    assert "SLO passed" in done.stdout
    cpu_rows = {line.split()[0] for line in done.stdout.splitlines() if line.startswith("  ")}
    assert {"node-1", "node-2", "node-3", "router", "locust"} <= cpu_rows


def test_a_short_live_soak_reports_memory_channels_and_delivery(tmp_path):
    done = cobrowse(
        "soak",
        "--live",
        "--pairs",
        "3",
        "--spawn-rate",
        "3",
        "--nodes",
        "2",
        "--duration",
        "12s",
        "--speed",
        "2",
        "--results",
        str(tmp_path),
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "RSS start" in done.stdout
    for part in ("node-1", "node-2", "router", "locust"):
        assert part in done.stdout
    assert "errors: 0" in done.stdout
    assert ", lost 0, duplicated 0, out of order 0" in done.stdout
    assert "delivery p99 by minute: 1:" in done.stdout
    # Every customer and agent has its channel open, through a router tunnel each.
    assert "open channels by minute: 1: customers 3, agents 3, tunnels 6" in done.stdout
    assert (only_run(tmp_path) / "soak.txt").exists()
