"""CPU share of process groups during a time window, sampled from Linux /proc.

Each part of a local cluster (and Locust) runs in its own process group, so a group's CPU is the
sum over its processes: a node's Gunicorn master and every worker, workers restarted mid-run
included. Processes are sampled periodically because one that exits takes its counters with it.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
SAMPLE_INTERVAL_S = 0.5


@dataclass(frozen=True, slots=True)
class ProcessTicks:
    """One /proc/<pid>/stat reading: the process group and the CPU clock ticks used so far."""

    pid: int
    group: int
    ticks: int


def parse_stat(pid: int, text: str) -> ProcessTicks:
    """Parse /proc/<pid>/stat; the command name may hold spaces and parentheses."""
    fields = text.rsplit(")", 1)[1].split()
    # After the name: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime
    # stime, so pgrp is fields[2] and utime, stime are fields[11], fields[12].
    return ProcessTicks(pid, int(fields[2]), int(fields[11]) + int(fields[12]))


def read_processes(proc: Path = PROC) -> list[ProcessTicks]:
    """Return every process's reading; processes that exit while being read are skipped."""
    readings = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            readings.append(parse_stat(int(entry.name), (entry / "stat").read_text()))
        except (OSError, IndexError, ValueError):
            continue
    return readings


def machine_ticks(proc: Path = PROC) -> tuple[int, int]:
    """Return (busy, total) clock ticks of all CPUs together, from /proc/stat."""
    values = [int(value) for value in (proc / "stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # guest time is already counted in user
    return total - idle, total


@dataclass(frozen=True, slots=True)
class CpuShare:
    """CPU a named group used during the window."""

    name: str
    cpu_s: float
    window_s: float
    cpus: int

    @property
    def of_one_cpu(self) -> float:
        """Fraction of one CPU (1.0 = a whole core busy for the whole window)."""
        return self.cpu_s / self.window_s if self.window_s > 0 else 0.0

    @property
    def of_machine(self) -> float:
        """Fraction of all the machine's CPUs."""
        return self.of_one_cpu / self.cpus


class CpuSampler:
    """Sample named process groups in a background thread between start() and stop()."""

    def __init__(
        self,
        interval_s: float = SAMPLE_INTERVAL_S,
        proc: Path = PROC,
        clock_ticks: int | None = None,
    ) -> None:
        self.interval_s = interval_s
        self.proc = proc
        self.clock_ticks = clock_ticks or os.sysconf("SC_CLK_TCK")
        self.cpus = os.cpu_count() or 1
        self._groups: dict[int, str] = {}
        self._first: dict[int, int] = {}  # pid -> ticks when first seen
        self._last: dict[int, tuple[str, int]] = {}  # pid -> (group name, latest ticks)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._started_at = 0.0
        self._stopped_at = 0.0
        self._machine_start = (0, 0)
        self._machine_end = (0, 0)
        self._initial_sample = True

    def watch(self, name: str, group: int) -> None:
        """Account the processes of process group `group` to `name` from now on."""
        with self._lock:
            self._groups[group] = name

    def start(self) -> None:
        self._started_at = time.monotonic()
        self._machine_start = machine_ticks(self.proc)
        self.sample()
        self._initial_sample = False
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(5)
        self.sample()
        self._stopped_at = time.monotonic()
        self._machine_end = machine_ticks(self.proc)

    def _run(self) -> None:
        while not self._stopping.wait(self.interval_s):
            self.sample()

    def sample(self) -> None:
        """Record one reading of every watched process."""
        readings = read_processes(self.proc)
        with self._lock:
            for reading in readings:
                name = self._groups.get(reading.group)
                if name is None:
                    continue
                if reading.pid not in self._first:
                    # Present from the start: count from here. Born later: all its CPU is ours.
                    self._first[reading.pid] = reading.ticks if self._initial_sample else 0
                self._last[reading.pid] = (name, reading.ticks)

    def shares(self) -> list[CpuShare]:
        """Return each group's share (in watch order), then the machine's other processes."""
        window_s = self._stopped_at - self._started_at
        used: dict[str, float] = dict.fromkeys(self._groups.values(), 0.0)
        with self._lock:
            for pid, (name, ticks) in self._last.items():
                used[name] += (ticks - self._first[pid]) / self.clock_ticks
        shares = [CpuShare(name, cpu_s, window_s, self.cpus) for name, cpu_s in used.items()]
        busy = self._machine_end[0] - self._machine_start[0]
        ours = sum(share.cpu_s for share in shares)
        others = max(0.0, busy / self.clock_ticks - ours)
        return [*shares, CpuShare("other processes", others, window_s, self.cpus)]
