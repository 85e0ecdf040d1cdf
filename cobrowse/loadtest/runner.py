"""`cobrowse loadtest`: a local cluster, Locust headless against it, a report; then stop it all.

Locust runs as a subprocess: importing it here would monkey-patch this process for gevent.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from cobrowse.config.clusterfile import GeneratedNode, free_port, render_cluster_file
from cobrowse.config.loader import load_cluster
from cobrowse.loadtest.cpushare import CpuSampler
from cobrowse.loadtest.locuststats import (
    CREATE_NAME,
    DELIVERED_NAME,
    format_summary,
    read_outcome,
    read_stats,
    sustained_rate,
)
from cobrowse.ops.cluster import LocalCluster, StartError, cluster_parts

LOADTESTS = Path(__file__).resolve().parents[2] / "loadtests"
LOCUSTFILE = LOADTESTS / "locustfile.py"
LOCUST_CONF = LOADTESTS / "locust.conf"
LIVE_LOCUSTFILE = LOADTESTS / "live.py"  # the live-session scenarios (`--live`)
LIVE_CONF = LOADTESTS / "live.conf"
HOST = "127.0.0.1"
# Beyond the run time: Locust's start-up, the users' last requests, writing the reports.
LOCUST_GRACE_S = 60.0
LOCUST_STOP_S = 15.0
_TIMESPAN = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def timespan_s(text: str) -> int:
    """Return the seconds of a Locust run time: `90`, `60s`, `2m`, `1h30m`."""
    if text.isdigit():
        return int(text)
    match = _TIMESPAN.fullmatch(text)
    if not text or match is None:
        raise ValueError(f"invalid duration {text!r}: use e.g. 90, 60s, 2m or 1h30m")
    hours, minutes, seconds = (int(group or 0) for group in match.groups())
    return hours * 3600 + minutes * 60 + seconds


@dataclass(frozen=True)
class LoadTestOptions:
    """What `cobrowse loadtest` runs (`users` and `spawn_rate` in Locust's units: with `live`,
    a pair is two users)."""

    nodes: int = 3
    users: int = 50
    spawn_rate: float = 10.0
    duration: str = "60s"
    lb: str = "router"
    results: Path = Path("results")
    shape: str = ""
    workers: int = 2
    locustfile: Path = LOCUSTFILE
    locust_config: Path | None = LOCUST_CONF
    locust_args: Sequence[str] = field(default_factory=tuple)
    live: bool = False  # the live-session scenarios (loadtests/live.py) instead of REST
    speed: float = 1.0  # live: the recording's pace multiple

    @property
    def scenarios(self) -> tuple[Path, Path | None]:
        """The locustfile and its config file: the live ones for `live`, unless others given."""
        if not self.live:
            return self.locustfile, self.locust_config
        locustfile = LIVE_LOCUSTFILE if self.locustfile == LOCUSTFILE else self.locustfile
        config = LIVE_CONF if self.locust_config == LOCUST_CONF else self.locust_config
        return locustfile, config


def results_dir(root: Path, now: datetime | None = None) -> Path:
    """Create and return a new folder under `root` named after the time (UTC)."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    for attempt in range(100):
        directory = root / (stamp if attempt == 0 else f"{stamp}-{attempt}")
        try:
            directory.mkdir(parents=True)
        except FileExistsError:
            continue
        return directory
    raise FileExistsError(f"no free results folder for {stamp} under {root}")


# Every client of a load test comes from one address: the limits meant for one person do not fit.
LOAD_TEST_SECTIONS = {
    # Joining is limited to 10 a minute per client by default (a 9-digit code is only about 30
    # bits), even when rateLimit is 0: the live scenarios' agents join from this one address.
    "security": {"rateLimit.sessions.join": "0"},
}


def write_cluster_file(
    directory: Path,
    nodes: int,
    workers: int,
    sections: Mapping[str, Mapping[str, str]] | None = None,
) -> Path:
    """Write a cluster file whose every listener takes a free port; data under `directory`."""
    chosen: dict[str, dict[str, str]] = {
        # HAProxy's stats page, when HAProxy is the load balancer: never a fixed port.
        "lb": {"statsBind": f"{HOST}:{free_port()}"},
        **{section: dict(options) for section, options in LOAD_TEST_SECTIONS.items()},
    }
    for section, options in (sections or {}).items():
        chosen.setdefault(section, {}).update(options)
    path = directory / "cluster.ini"
    path.write_text(
        render_cluster_file(
            [GeneratedNode(f"node-{index}", free_port(), workers) for index in range(1, nodes + 1)],
            router_port=free_port(),
            data_dir=(directory / "data").resolve(),
            sections=chosen,
        )
    )
    return path


def locust_argv(options: LoadTestOptions, host: str, directory: Path) -> list[str]:
    """Return the Locust command line: headless, with CSV (full history), HTML and outcome."""
    argv = [sys.executable, "-m", "locust"]
    locustfile, config = options.scenarios
    if config is not None and config.exists():
        argv += ["--config", str(config)]  # its weights and SLOs; flags win
    return [
        *argv,
        "-f",
        str(locustfile),
        "--headless",
        "-H",
        host,
        "-u",
        str(options.users),
        "-r",
        str(options.spawn_rate),
        "-t",
        options.duration,
        "--csv",
        str(directory / "stats"),
        "--csv-full-history",  # per-request-type history: the steady-state create rate
        "--html",
        str(directory / "report.html"),
        "--only-summary",
        "--outcome-file",
        str(directory / "outcome.json"),
        # HAProxy cannot compute the ring: cookie-less agents reach the owner through the
        # node's documented 307 (README "Running behind a load balancer"), as a browser would.
        *(["--follow-redirects"] if options.lb == "haproxy" else []),
        *(["--live-speed", f"{options.speed:g}"] if options.live else []),
        *options.locust_args,
    ]


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM Locust's group (it then writes its reports), SIGKILL it if it lingers."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(LOCUST_STOP_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


class Sampler(Protocol):
    """Something that watches the cluster's process groups during the run (CPU, memory)."""

    def watch(self, name: str, group: int) -> None: ...

    # Optionally, `watch_url(name, kind, url)`: the part's URL (nodes: `<base><context>`).

    def start(self) -> None: ...

    def stop(self) -> None: ...


def run_loadtest(
    options: LoadTestOptions,
    extra_samplers: Sequence[Sampler] = (),
    on_done: Callable[[Path], None] | None = None,
) -> int:
    """Run the whole load test; return Locust's exit code (non-zero when an SLO is missed).

    `extra_samplers` watch every part and Locust too; `on_done` gets the results folder.
    """
    directory = results_dir(options.results)
    config_path = write_cluster_file(directory, options.nodes, options.workers)
    config = load_cluster(config_path)
    cluster = LocalCluster(cluster_parts(config, config_path, directory / "logs", lb=options.lb))
    host = next(part.url for part in cluster.parts if part.kind != "node")  # the LB's origin
    sampler = CpuSampler()
    samplers: list[Sampler] = [sampler, *extra_samplers]
    locust: subprocess.Popen[bytes] | None = None
    status = 1
    signal.signal(signal.SIGTERM, _interrupt)  # stop everything on SIGTERM as on Ctrl-C
    print(f"results in {directory}", file=sys.stderr)
    try:
        cluster.start()
        _watch_parts(cluster, samplers)
        print(f"{options.nodes} nodes behind the {options.lb} at {host}", file=sys.stderr)
        for watcher in samplers:
            watcher.start()
        env = {**os.environ, "LOADTEST_SHAPE": options.shape}
        with (directory / "locust.log").open("wb") as log:
            locust = subprocess.Popen(
                locust_argv(options, host, directory),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        for watcher in samplers:
            watcher.watch("locust", locust.pid)
        status = locust.wait(timespan_s(options.duration) + LOCUST_GRACE_S)
    except StartError as error:
        print(f"the cluster failed to start: {error}", file=sys.stderr)
        return 1
    except subprocess.TimeoutExpired:
        print("Locust overran its run time: stopped", file=sys.stderr)
    except KeyboardInterrupt:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)  # a second Ctrl-C must not cut the stop short
        print("interrupted: stopping Locust and the cluster…", file=sys.stderr)
        status = 130
    finally:
        if locust is not None and locust.poll() is None:
            _stop_group(locust)
        for watcher in samplers:
            watcher.stop()
        cluster.stop()
    status = report(directory, sampler, status, live=options.live)
    if on_done is not None:
        on_done(directory)
    return status


def _watch_parts(cluster: LocalCluster, samplers: Sequence[Sampler]) -> None:
    for part in cluster.parts:
        for watcher in samplers:
            watcher.watch(part.name, part.pid)  # each part leads its own process group
            watch_url = getattr(watcher, "watch_url", None)
            if callable(watch_url):
                watch_url(part.name, part.kind, part.url)


def report(directory: Path, sampler: CpuSampler, status: int, live: bool = False) -> int:
    """Print and save the summary of the run in `directory`; return `status`."""
    stats_path = directory / "stats_stats.csv"
    if not stats_path.exists():
        print(f"Locust wrote no statistics; its log:\n{_tail(directory / 'locust.log')}")
        return status or 1
    summary = format_summary(
        read_stats(stats_path),
        sustained_rate(
            directory / "stats_stats_history.csv", DELIVERED_NAME if live else CREATE_NAME
        ),
        read_outcome(directory / "outcome.json"),
        sampler.shares(),
    )
    (directory / "summary.txt").write_text(summary + "\n")
    print(summary)
    print(f"\nreport: {directory / 'report.html'} — exit code {status}")
    return status


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
