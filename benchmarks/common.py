"""Shared benchmark plumbing: processes with deadlines, wrk runs and their parsed results."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

from cobrowse.loadtest.cpushare import parse_stat, read_processes

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}

# On a machine with two or more CPUs, the load generator gets CPU 0 and the servers the others:
# otherwise a costlier wrk script (per-request Lua) would steal CPU from the server it measures,
# and the ratios would compare wrk as much as the servers.
_CPUS = sorted(os.sched_getaffinity(0))
LOAD_CPUS = set(_CPUS[:1]) if len(_CPUS) > 1 else set(_CPUS)
SERVER_CPUS = set(_CPUS[1:]) if len(_CPUS) > 1 else set(_CPUS)


def _pin(cpus: set[int]) -> Callable[[], None]:
    def pin() -> None:
        os.sched_setaffinity(0, cpus)

    return pin


@dataclass(frozen=True)
class WrkResult:
    """What one wrk run measured."""

    label: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int  # socket errors plus non-2xx/3xx answers
    requests: int
    server_cpu_us: float | None = None  # the server's CPU time per request, when metered

    def row(self, baseline: WrkResult | None = None) -> str:
        ratio = f"{self.requests_per_s / baseline.requests_per_s:6.2f}x" if baseline else "       "
        return (
            f"{self.label:<28} {self.requests_per_s:>9.0f} req/s {ratio}  p50 {self.p50_ms:7.2f} ms"
            f"  p99 {self.p99_ms:7.2f} ms  errors {self.errors}"
        )


@dataclass(frozen=True)
class Scenario:
    """One thing to measure: a URL and an optional wrk script, which may differ per round.

    A script made per round is made right before its measurement, outside the CPU metering: it
    may prepare what the round needs (sessions of its own).
    """

    label: str
    url: str
    script: str | Callable[[int], str] | None = None
    # The process group of the server that answers: its CPU time per request is reported too.
    # Unlike throughput, it does not drop when the host steals the CPU from the whole VM.
    cpu_group: int | None = None
    # Entered right before each measurement and left right after it (outside the CPU metering):
    # to read the server's own metrics around exactly the time wrk ran.
    around: Callable[[], AbstractContextManager[object]] | None = None

    def script_for(self, round_index: int) -> str | None:
        if callable(self.script):
            return self.script(round_index)
        return self.script


@dataclass(frozen=True)
class Summary:
    """A scenario's medians over rounds, and its median ratio to the baseline of each round."""

    label: str
    requests_per_s: float
    ratio: float | None
    p50_ms: float
    p99_ms: float
    errors: int
    requests_total: int = 0
    cpu_us: float | None = None  # median server CPU per request
    cpu_ratio: float | None = None  # median of baseline CPU per request / this scenario's

    def row(self, width: int = 26) -> str:
        ratio = f"{self.ratio:6.2f}x" if self.ratio is not None else "   base"
        cpu = ""
        if self.cpu_us is not None:
            cpu_ratio = f"{self.cpu_ratio:5.2f}x" if self.cpu_ratio is not None else " base"
            cpu = f"  cpu {self.cpu_us:6.0f} µs/req {cpu_ratio}"
        return (
            f"{self.label:<{width}} {self.requests_per_s:>8.0f} req/s {ratio}"
            f"  p50 {self.p50_ms:7.2f} ms  p99 {self.p99_ms:7.2f} ms  errors {self.errors}{cpu}"
        )


def interleaved_rounds(
    baseline: Scenario,
    scenarios: Sequence[Scenario],
    *,
    rounds: int,
    duration: float,
    connections: int,
) -> list[Summary]:
    """Measure every scenario `rounds` times, each round bracketed by two baseline runs.

    The machine is shared and noisy: each scenario is compared with the baseline of its own
    round, rounds alternate their order, and medians are reported.
    """
    runs: dict[str, list[WrkResult]] = {s.label: [] for s in [baseline, *scenarios]}
    ratios: dict[str, list[float]] = {s.label: [] for s in scenarios}
    cpu_ratios: dict[str, list[float]] = {s.label: [] for s in scenarios}

    def measure(scenario: Scenario, round_index: int) -> WrkResult:
        with scenario.around() if scenario.around else nullcontext():
            script = scenario.script_for(round_index)  # may prepare data: not metered
            cpu_before = group_cpu_seconds(scenario.cpu_group) if scenario.cpu_group else 0.0
            result = run_wrk(
                scenario.label,
                scenario.url,
                duration=duration,
                connections=connections,
                script=script,
            )
            if scenario.cpu_group is None or not result.requests:
                return result
            used = group_cpu_seconds(scenario.cpu_group) - cpu_before
        return replace(result, server_cpu_us=used / result.requests * 1e6)

    for round_index in range(rounds):
        order = list(scenarios) if round_index % 2 == 0 else list(reversed(scenarios))
        before = measure(baseline, round_index)
        measured = [measure(scenario, round_index) for scenario in order]
        after = measure(baseline, round_index)
        base_rate = (before.requests_per_s + after.requests_per_s) / 2
        runs[baseline.label] += [before, after]
        for result in measured:
            runs[result.label].append(result)
            ratios[result.label].append(result.requests_per_s / base_rate)
            if before.server_cpu_us and after.server_cpu_us and result.server_cpu_us:
                base_cpu = (before.server_cpu_us + after.server_cpu_us) / 2
                cpu_ratios[result.label].append(base_cpu / result.server_cpu_us)
        print(
            f"  round {round_index + 1}/{rounds}: baseline {base_rate:.0f} req/s, "
            + ", ".join(f"{r.label} {r.requests_per_s / base_rate:.2f}x" for r in measured),
            file=sys.stderr,
        )
    return [
        Summary(
            label,
            statistics.median(r.requests_per_s for r in results),
            statistics.median(ratios[label]) if label in ratios else None,
            statistics.median(r.p50_ms for r in results),
            statistics.median(r.p99_ms for r in results),
            sum(r.errors for r in results),
            sum(r.requests for r in results),
            cpu_us=_median_or_none([r.server_cpu_us for r in results]),
            cpu_ratio=_median_or_none(cpu_ratios.get(label, [])),
        )
        for label, results in runs.items()
    ]


def _median_or_none(values: Sequence[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return statistics.median(present) if present else None


def group_cpu_seconds(group: int) -> float:
    """Return the user+system CPU seconds used so far by the live processes of a process group."""
    ticks = sum(reading.ticks for reading in read_processes() if reading.group == group)
    return ticks / os.sysconf("SC_CLK_TCK")


def cpus_busy_seconds(cpus: set[int]) -> float:
    """Return the CPU seconds `cpus` have spent busy (neither idle nor waiting), from /proc/stat."""
    busy = 0
    for line in Path("/proc/stat").read_text().splitlines():
        name, *fields = line.split()
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
            values = [int(value) for value in fields[:8]]
            busy += sum(values) - values[3] - values[4]  # less idle and iowait
    return busy / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """Return the user+system CPU seconds a process has used (Linux /proc)."""
    reading = parse_stat(pid, Path(f"/proc/{pid}/stat").read_text())
    return reading.ticks / os.sysconf("SC_CLK_TCK")


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        sys.exit("wrk is not installed: run the benchmark through scripts/bench, which installs it")
    return path


def _milliseconds(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        raise ValueError(f"unexpected wrk duration {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(label: str, output: str) -> WrkResult:
    """Parse `wrk --latency` output."""
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE)
    if not (rate and total and p50 and p99):
        raise RuntimeError(f"cannot parse wrk output:\n{output}")
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx:
        errors += int(non_2xx.group(1))
    return WrkResult(
        label,
        float(rate.group(1)),
        _milliseconds(p50.group(1)),
        _milliseconds(p99.group(1)),
        errors,
        int(total.group(1)),
    )


def run_wrk(
    label: str,
    url: str,
    *,
    duration: float,
    connections: int,
    threads: int = 1,
    script: str | None = None,
) -> WrkResult:
    """Run wrk against `url`, with an optional Lua script body; return its parsed result."""
    argv = [
        require_wrk(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--latency",
    ]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script or "")
    try:
        argv += ["-s", handle.name, url]
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=duration + 30,
            check=True,
            preexec_fn=_pin(LOAD_CPUS),
        )
    finally:
        os.unlink(handle.name)
    return parse_wrk(label, done.stdout)


def lua_cycle(method: str, paths: Sequence[str], headers: dict[str, str] | None = None) -> str:
    """Return a wrk script that requests `paths` round-robin with `method` and `headers`."""
    quoted = ",\n".join(f'  "{path}"' for path in paths)
    header_lines = "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in (headers or {}).items())
    return (
        f"local paths = {{\n{quoted}\n}}\nlocal index = 0\n{header_lines}"
        f'wrk.method = "{method}"\n'
        "request = function()\n"
        "  index = index % #paths + 1\n"
        "  return wrk.format(nil, paths[index])\n"
        "end\n"
    )


class Server:
    """A benchmark server process, stopped (with its whole group) on exit."""

    def __init__(
        self,
        argv: Sequence[str],
        log: Path,
        env: dict[str, str] | None = None,
        cpus: set[int] | None = None,
    ) -> None:
        self.log_path = log
        self.log = log.open("wb")
        self.popen = subprocess.Popen(
            list(argv),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
            preexec_fn=_pin(cpus or SERVER_CPUS),  # noqa: PLW1509 - no threads to deadlock here
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def wait_ready(self, url: str, deadline: float = 30.0) -> None:
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            if self.popen.poll() is not None:
                self.log.flush()
                tail = self.log_path.read_text(errors="replace").splitlines()[-20:]
                raise RuntimeError(
                    f"{self.popen.args} exited with {self.popen.returncode}:\n" + "\n".join(tail)
                )
            with (
                contextlib.suppress(OSError, urllib.error.URLError),
                urllib.request.urlopen(url, timeout=1),
            ):
                return
            time.sleep(0.1)
        raise TimeoutError(f"{url} did not answer within {deadline}s")

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(5)
        self.log.close()


@contextlib.contextmanager
def running(
    argv: Sequence[str],
    log: Path,
    ready_url: str,
    env: dict[str, str] | None = None,
    cpus: set[int] | None = None,
) -> Iterator[Server]:
    """Run a server for the duration of a `with` block, once `ready_url` answers."""
    server = Server(argv, log, env, cpus)
    try:
        server.wait_ready(ready_url)
        yield server
    finally:
        server.stop()
