"""The soak command, short: a real cluster, real Locust, and its report."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import REPO


def test_short_soak(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "cobrowse.cli",
            "soak",
            "--duration",
            "15s",
            "--users",
            "6",
            "--spawn-rate",
            "6",
            "--nodes",
            "2",
            "--results",
            str(tmp_path),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "RSS start" in done.stdout
    for part in ("node-1", "node-2", "router", "locust"):
        assert part in done.stdout
    assert "errors: 0" in done.stdout
    assert "p99 by minute: 1:" in done.stdout
    (folder,) = tmp_path.iterdir()
    assert (folder / "soak.txt").exists()
