"""Every benchmark runs end to end (short): real servers, real wrk, no errors."""

from __future__ import annotations

import os
import re
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
    output = run_benchmark("node", SHORT, timeout=240)
    rows = [line for line in output.splitlines() if "req/s" in line]
    assert [row.split("  ")[0].strip() for row in rows] == [
        "asgi hello world",
        "wsgi gthread hello (previous baseline)",
        "create",
        "get",
        "stop",
        "ping",
        "health",
    ]
    for row in rows:
        assert "errors 0" in row
        assert float(row.split("req/s")[0].split()[-1]) > 0
        assert float(row.split("cpu")[1].split()[0]) > 0  # each server's CPU was metered
    assert "target >= 0.35x" in rows[2]
    assert "target >= 0.60x" in rows[3]
    lag = re.search(
        r"^loop lag p99 under create: <= ([\d.]+) ms \((\d+) samples\), "
        r"target < 5 ms: (met|MISSED)$",
        output,
        re.MULTILINE,
    )
    assert lag, output
    assert float(lag.group(1)) > 0
    assert int(lag.group(2)) > 0  # the node's loop was sampled while create ran
    assert re.search(r"^loop lag p99 under get: <= [\d.]+ ms \(\d+ samples\)$", output, re.M)


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
    output = run_benchmark("inprocess", arguments, timeout=180)
    lines = output.splitlines()
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:7]}
    assert set(rows) == {"hello", "get", "create", "stop", "ping", "health"}
    assert all(float(row[0]) > 0 for row in rows.values())
    layers = lines[lines.index(next(line for line in lines if line.startswith("where the time"))) :]
    for label in (
        "full app",
        "middleware chain",
        "ObservabilityMiddleware",
        "CorsMiddleware",
        "RateLimitMiddleware",
        "app without middleware",
        "falcon + resource",
        "service rules",
        "store call",
    ):
        row = next(line for line in layers if line.strip().startswith(label))
        assert len(re.findall(r"-?\d+\.\d", row.split(label)[1])) >= 2, row  # get and create
    assert "resources/sessions.py" in output  # the profile of get reached the session resource
