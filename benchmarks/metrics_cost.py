"""What metrics cost: Get Session with `[metrics] enabled` on and off, node and router, one run.

    scripts/bench metrics_cost [--rounds 3] [--duration 5] [--connections 16]

Two nodes serve the same 1000 sessions, identical but for `[metrics] enabled`; two routers, one
with metrics and one without, front the metrics-on node. Each round measures every path
(bracketed by the baseline, order alternating); medians over rounds. The budget (issue 8):
metrics may take at most 5% off Get Session throughput, on the node and through the router.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from benchmarks.common import Scenario, interleaved_rounds, lua_cycle, running
from benchmarks.node import ORIGIN, seed_sessions
from cobrowse.clusterfile import GeneratedNode, free_port, render_cluster_file
from cobrowse.config import load_cluster

BUDGET = 0.95


def write_config(
    directory: Path, name: str, node_port: int, router_port: int, enabled: bool
) -> Path:
    path = directory / f"{name}.ini"
    path.write_text(
        render_cluster_file(
            [GeneratedNode("node-1", node_port, 2)],
            router_port=router_port,
            data_dir=directory / name,
            allowed_origins=ORIGIN,
            sections={"metrics": {"enabled": "true" if enabled else "false"}},
        )
    )
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cobrowse-bench-metrics-") as scratch:
        directory = Path(scratch)
        ports = {key: free_port() for key in ("node_on", "node_off", "router_on", "router_off")}
        on = write_config(directory, "on", ports["node_on"], ports["router_on"], enabled=True)
        off = write_config(directory, "off", ports["node_off"], ports["router_off"], enabled=False)
        # The metrics-off router fronts the metrics-on node: only the router's metrics differ.
        off_router = write_config(
            directory, "off-router", ports["node_on"], ports["router_off"], enabled=False
        )
        sessions = seed_sessions(load_cluster(on).node_settings("node-1"), 1000)
        seeded_off = seed_sessions(load_cluster(off).node_settings("node-1"), 1000)
        assert [s.session_token for s in sessions] == [s.session_token for s in seeded_off]
        script = lua_cycle(
            "GET",
            [f"/cobrowse/rest/live/sessions/{s.session_token}" for s in sessions],
            {"Origin": ORIGIN},
        )
        cobrowse = [sys.executable, "-m", "cobrowse.cli"]
        url = {key: f"http://127.0.0.1:{port}" for key, port in ports.items()}
        with (
            running(
                [*cobrowse, "node", "--config", str(on), "--name", "node-1"],
                directory / "node-on.log",
                f"{url['node_on']}/cobrowse/health",
            ),
            running(
                [*cobrowse, "node", "--config", str(off), "--name", "node-1"],
                directory / "node-off.log",
                f"{url['node_off']}/cobrowse/health",
            ),
            running(
                [*cobrowse, "router", "--config", str(on)],
                directory / "router-on.log",
                f"{url['router_on']}/health",
            ),
            running(
                [*cobrowse, "router", "--config", str(off_router)],
                directory / "router-off.log",
                f"{url['router_off']}/health",
            ),
        ):
            run = {
                "rounds": args.rounds,
                "duration": args.duration,
                "connections": args.connections,
            }
            print("node:", file=sys.stderr)
            node = interleaved_rounds(
                Scenario("node, metrics off", url["node_off"], script),
                [Scenario("node, metrics on", url["node_on"], script)],
                **run,
            )
            print("router:", file=sys.stderr)
            router = interleaved_rounds(
                Scenario("router, metrics off", url["router_off"], script),
                [Scenario("router, metrics on", url["router_on"], script)],
                **run,
            )
    status = 0
    for summaries in (node, router):
        for summary in summaries:
            print(summary.row())
        ratio = summaries[1].ratio or 0.0
        verdict = "within" if ratio >= BUDGET else "OVER"
        print(f"  metrics cost: {(1 - ratio) * 100:.1f}% of throughput ({verdict} the 5% budget)")
        status |= any(s.errors for s in summaries)
    return 1 if status else 0


if __name__ == "__main__":
    sys.exit(main())
