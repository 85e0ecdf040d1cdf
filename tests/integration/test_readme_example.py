"""The README's realtime example runs as printed, against `cobrowse cluster`."""

from __future__ import annotations

import re
import signal
import subprocess
import sys

from cobrowse.config.clusterfile import free_port
from tests.helpers import REPO, free_port_block, start_cluster_command

README_API = "http://127.0.0.1:8700"
README_ORIGIN = "http://localhost:8080"


def realtime_example() -> str:
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("### Joining, then the channel") :]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found, "the realtime section has no Python example"
    return found.group(1)


def test_the_readme_realtime_example_runs_as_printed(tmp_path):
    example = realtime_example()
    assert README_API in example
    assert README_ORIGIN in example
    port = free_port_block(3)  # the router, then the nodes on the next ports
    demo_port = free_port()  # its origin is allowed, as 8080 is by default
    output_path = tmp_path / "cluster.txt"
    cluster = start_cluster_command(
        output_path,
        *("--nodes", "2", "--port", str(port), "--data-dir", str(tmp_path / "data")),
        *("--demo-port", str(demo_port)),
    )
    try:
        code = example.replace(README_API, f"http://127.0.0.1:{port}").replace(
            README_ORIGIN, f"http://localhost:{demo_port}"
        )
        run = subprocess.run(
            [sys.executable, "-W", "error::DeprecationWarning", "-c", code],
            capture_output=True,
            check=False,
            text=True,
            timeout=30,
        )
    finally:
        cluster.send_signal(signal.SIGTERM)
        cluster.wait(30)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["welcome", "welcome", "joined", "events"]
