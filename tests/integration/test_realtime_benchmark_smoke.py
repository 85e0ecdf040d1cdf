"""`scripts/bench realtime` runs end to end (short): real node, real floor, every batch checked."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.helpers import REPO

SERVERS = ["node (4 workers)", "node (1 worker)", "floor (websockets relay)"]


def test_realtime_benchmark_short_run():
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.realtime",
            "--pairs=10",
            "--duration=2",
            "--saturation-duration=2",
        ],
        cwd=REPO,
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = done.stdout
    # Not --check: a missed target is no failure, but a lost, duplicated or misordered batch,
    # an error frame, a close or a batch never acknowledged is.
    assert done.returncode == 0, output + done.stderr
    lines = output.splitlines()
    header = next(index for index, line in enumerate(lines) if line.startswith("server "))
    rows = lines[header + 1 : header + 7]
    parsed = [(row[:26].strip(), row[27:41].strip(), row[41:].split()) for row in rows]
    assert [(server, load) for server, load, _ in parsed] == [
        (server, load) for server in SERVERS for load in ("10x5/s", "saturation w2")
    ], output
    for server, load, numbers in parsed:
        rate, _p50, _p99, lost, duplicated, out_of_order, cpu_us, rss, pss = numbers[:9]
        assert (lost, duplicated, out_of_order) == ("0", "0", "0"), (server, load, output)
        assert float(rate) > 0
        assert float(cpu_us) > 0  # the server's process group was metered
        assert float(rss) > 0
        assert float(pss) > 0
    assert "rrweb model:" in output
    assert re.search(r"^node \(4 workers\): \d+/10 pairs cross-worker", output, re.M), output
    assert re.search(r"^  saturation w2: same-worker pairs \d+ batches", output, re.M), output
    assert "saturation per server CPU-second" in output
    assert re.search(r"^workers 4 vs 1: saturation \d+ vs \d+ msgs/s", output, re.M), output
    for target in ("p99 at 10x5/s <= 50 ms", "0 lost / duplicated / out of order", "the floor"):
        assert re.search(rf"^target: .*{re.escape(target)}.*: (met|MISSED)$", output, re.M), output
