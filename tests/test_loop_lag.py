"""The event-loop lag monitor: a loop held by blocking work shows up as lag, weighted by time."""

from __future__ import annotations

import asyncio
import time


class Recorder:
    def __init__(self) -> None:
        self.samples: list[float] = []

    def loop_lag(self, seconds: float) -> None:
        self.samples.append(seconds)


async def test_a_blocked_loop_is_reported_as_lag_for_as_long_as_it_lasted():
    from cobrowse.observe.looplag import LoopLagMonitor

    recorder = Recorder()
    monitor = LoopLagMonitor(recorder, interval_s=0.01)
    monitor.start()
    await asyncio.sleep(0.1)
    idle = list(recorder.samples)
    time.sleep(0.2)  # a blocking call on the loop: exactly what must never happen in a node
    await asyncio.sleep(0.05)
    await monitor.stop()
    assert idle
    assert max(idle) < 0.01  # an idle loop wakes on time
    stalled = [sample for sample in recorder.samples if sample >= 0.15]
    # One stall of 0.2 s held twenty 10 ms timers: it weighs twenty samples, not one.
    assert 15 <= len(stalled) <= 25, len(stalled)
