"""CPU share per process group during a load test, from /proc (a fake one, and the real one)."""

from __future__ import annotations

import os
import shutil

import pytest

from cobrowse.loadtest.cpushare import (
    CpuSampler,
    CpuShare,
    machine_ticks,
    parse_stat,
    read_processes,
)


def stat_line(pid: int, name: str, group: int, user: int, system: int) -> str:
    # pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
    return f"{pid} ({name}) S 1 {group} {group} 0 -1 4194560 10 0 0 0 {user} {system} 0 0 20 0 1\n"


class FakeProc:
    """A /proc with the files the sampler reads, changed between samples."""

    def __init__(self, root):
        self.root = root
        self.machine(busy=0, idle=0)

    def process(self, pid: int, group: int, ticks: int, name: str = "python") -> None:
        (self.root / str(pid)).mkdir(exist_ok=True)
        (self.root / str(pid) / "stat").write_text(stat_line(pid, name, group, ticks, 0))

    def exit(self, pid: int) -> None:
        shutil.rmtree(self.root / str(pid))

    def machine(self, busy: int, idle: int) -> None:
        # cpu user nice system idle iowait irq softirq steal guest guest_nice
        (self.root / "stat").write_text(f"cpu  {busy} 0 0 {idle} 0 0 0 0 0 0\ncpu0 0 0 0 0\n")


@pytest.mark.parametrize(
    "name", ["python", "gunicorn: worker [cobrowse-node:node-1]", "odd) name (", "a b"]
)
def test_stat_lines_parse_whatever_the_command_name(name):
    reading = parse_stat(42, stat_line(42, name, 40, 120, 30))
    assert (reading.pid, reading.group, reading.ticks) == (42, 40, 150)


def test_processes_are_read_and_non_processes_skipped(tmp_path):
    proc = FakeProc(tmp_path)
    proc.process(10, 10, 5)
    (tmp_path / "self").mkdir()
    (tmp_path / "11").mkdir()  # exited while being read: no stat file
    assert [(r.pid, r.group, r.ticks) for r in read_processes(tmp_path)] == [(10, 10, 5)]


def test_machine_ticks_are_busy_and_total(tmp_path):
    (tmp_path / "stat").write_text("cpu  100 5 20 300 10 1 2 3 0 0\n")
    assert machine_ticks(tmp_path) == (131, 441)


def test_a_group_adds_up_its_processes_including_ones_born_and_gone_during_the_run(tmp_path):
    proc = FakeProc(tmp_path)
    proc.process(100, 100, 1000)  # node-1's master, busy before the run
    proc.process(101, 100, 2000)  # a worker
    proc.process(200, 200, 50)  # the router
    proc.process(999, 999, 70)  # not ours
    sampler = CpuSampler(interval_s=60, proc=tmp_path, clock_ticks=100)
    sampler.watch("node-1", 100)
    sampler.watch("router", 200)
    sampler.start()
    proc.process(101, 100, 2300)  # +3 s
    proc.process(102, 100, 100)  # a worker started mid-run: +1 s
    proc.process(300, 300, 40)  # Locust, started after the sampler
    sampler.watch("locust", 300)
    sampler.sample()
    proc.exit(102)  # exits: what it used stays counted
    proc.process(200, 200, 250)  # +2 s
    proc.process(300, 300, 140)  # +1 s more
    proc.machine(busy=900, idle=300)  # 9 s busy in all
    sampler.stop()
    cpu = {share.name: share.cpu_s for share in sampler.shares()}
    expected = {"node-1": 4.0, "router": 2.0, "locust": 1.4, "other processes": 1.6}
    assert cpu == pytest.approx(expected)


def test_shares_are_of_one_cpu_and_of_the_machine():
    share = CpuShare("router", cpu_s=30.0, window_s=60.0, cpus=2)
    assert share.of_one_cpu == 0.5
    assert share.of_machine == 0.25
    assert CpuShare("idle", 0.0, 0.0, 2).of_one_cpu == 0.0


def test_the_real_proc_shows_this_process_using_cpu():
    sampler = CpuSampler(interval_s=0.05)
    sampler.watch("pytest", os.getpgrp())
    sampler.start()
    deadline = os.times().elapsed + 0.3
    while os.times().elapsed < deadline:  # busy: use some CPU
        pass
    sampler.stop()
    pytest_share = sampler.shares()[0]
    assert pytest_share.name == "pytest"
    assert pytest_share.cpu_s > 0
    # The window spans the busy loop; the two clocks tick differently (os.times() by 10 ms).
    assert pytest_share.window_s >= 0.3 - 0.02
