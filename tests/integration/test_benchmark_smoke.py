"""Every benchmark runs end to end (short): real servers, real wrk, no errors."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from tests.helpers import REPO

SHORT = ["--rounds", "1", "--duration", "1", "--connections", "4"]


def run_benchmark(module: str, arguments: list[str], timeout: float) -> str:
    """Run `python -m benchmarks.<module>`; return its output, failing on a non-zero exit."""
    done = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{module}", *arguments],
        cwd=REPO,
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_node_benchmark_short_run():
    output = run_benchmark("node", SHORT, timeout=180)
    rows = [line for line in output.splitlines() if "req/s" in line]
    assert [row.split("  ")[0].strip() for row in rows] == [
        "hello world",
        "create",
        "get",
        "stop",
        "health",
    ]
    for row in rows:
        assert "errors 0" in row
        assert float(row.split("cpu")[1].split()[0]) > 0  # each server's CPU was metered


def test_router_benchmark_short_run():
    output = run_benchmark("router", SHORT, timeout=240)
    for label in ("haproxy", "direct", "router", "CPU per request", "p99 added"):
        assert label in output


def test_metrics_cost_benchmark_short_run():
    output = run_benchmark("metrics_cost", SHORT, timeout=240)
    assert output.count("metrics cost:") == 2
    assert output.count("in CPU per request:") == 2
    assert output.count("µs of metric work per request") == 2


def test_group_cpu_seconds_counts_this_process_group():
    from benchmarks.common import group_cpu_seconds

    before = group_cpu_seconds(os.getpgrp())
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:
        pass
    assert group_cpu_seconds(os.getpgrp()) - before >= 0.1


def test_inprocess_benchmark_short_run():
    arguments = ["--requests", "200", "--rounds", "1", "--profile", "get"]
    output = run_benchmark("inprocess", arguments, timeout=120)
    rows = {line.split()[0]: line.split()[1:] for line in output.splitlines()[1:5]}
    assert set(rows) == {"hello", "get", "create", "health"}
    assert all(float(row[0]) > 0 for row in rows.values())
    assert "sessions.py" in output  # the profile of get reached the session resource
