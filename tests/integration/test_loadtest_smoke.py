"""`cobrowse loadtest` end to end, short: a real cluster behind the router, real Locust users."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

from tests.helpers import COBROWSE, Process, wait_until

RUN_S = 15
DEADLINE_S = 60  # cluster start, Locust's start and the run, the reports, the stop

REQUEST_NAMES = {
    "/sessions",
    "/sessions/[token] (customer)",
    "/sessions/[token] (agent)",
    "/users/[userToken]/session/stop",
}


def processes_mentioning(text: str) -> list[str]:
    """Return the command lines of live processes that mention `text` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if text in command:
                found.append(f"{entry.name}: {command}")
    return found


def test_a_short_run_through_the_router_has_no_failure_and_no_misroute(tmp_path):
    command = Process(
        [
            COBROWSE,
            "loadtest",
            "--nodes",
            "3",
            "--users",
            "30",
            "--spawn-rate",
            "30",
            "--duration",
            f"{RUN_S}s",
            "--results",
            str(tmp_path),
            # Latency on a shared CI machine is not what this test is about.
            "--",
            "--slo-p95-ms",
            "5000",
        ],
        tmp_path / "command.log",
    )
    started = time.monotonic()
    try:
        wait_until(lambda: not command.alive(), DEADLINE_S, "cobrowse loadtest finished")
    finally:
        status = command.stop()
    took = time.monotonic() - started
    output = (tmp_path / "command.log").read_text()
    assert status == 0, output
    assert took < DEADLINE_S

    [run] = [path for path in tmp_path.iterdir() if path.is_dir()]
    outcome = json.loads((run / "outcome.json").read_text())
    assert outcome["passed"], output
    assert outcome["measured"]["failures"] == 0
    assert outcome["measured"]["misroutes"] == 0
    assert outcome["counters"]["created"] > 100
    assert outcome["counters"]["joined"] > 100  # agents did read customers' sessions

    with (run / "stats_stats.csv").open(newline="") as handle:
        rows = {row["Name"]: row for row in csv.DictReader(handle)}
    assert set(rows) >= REQUEST_NAMES
    for name in REQUEST_NAMES:
        assert int(rows[name]["Request Count"]) > 0, name
        assert int(rows[name]["Failure Count"]) == 0, name
    assert (run / "report.html").stat().st_size > 0

    assert "misroutes: 0" in output
    assert "SLO passed" in output
    cpu_rows = {line.split()[0] for line in output.splitlines() if line.startswith("  ")}
    assert {"node-1", "node-2", "node-3", "router", "locust"} <= cpu_rows

    time.sleep(0.2)
    assert processes_mentioning(str(tmp_path)) == []
