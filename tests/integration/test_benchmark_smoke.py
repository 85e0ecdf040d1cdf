"""The node benchmark runs end to end (short): real servers, real wrk, no errors."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import REPO


def test_node_benchmark_short_run():
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.node",
            "--rounds",
            "1",
            "--duration",
            "1",
            "--connections",
            "4",
        ],
        cwd=REPO,
        check=False,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for label in ("hello world", "create", "get", "stop", "health"):
        assert label in done.stdout
    assert "errors 0" in done.stdout


def test_router_benchmark_short_run():
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.router",
            "--rounds",
            "1",
            "--duration",
            "1",
            "--connections",
            "4",
        ],
        cwd=REPO,
        check=False,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for label in ("haproxy", "direct", "router", "CPU per request", "p99 added"):
        assert label in done.stdout


def test_metrics_cost_benchmark_short_run():
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.metrics_cost",
            "--rounds",
            "1",
            "--duration",
            "1",
            "--connections",
            "4",
        ],
        cwd=REPO,
        check=False,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("metrics cost:") == 2
