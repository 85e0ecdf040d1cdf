"""Measure how late each worker's event loop runs: the time it could not serve anybody."""

from __future__ import annotations

import asyncio
import contextlib
import time

from cobrowse.observe.metrics import LoopObserver

INTERVAL_S = 0.02  # 50 samples a second: enough for a p99 over a few seconds, negligible cost


class LoopLagMonitor:
    """Sleep for a fixed interval, again and again, and report how much later than asked it woke.

    Anything that holds the loop (a blocking call, a long computation) shows up as lag.
    """

    def __init__(self, observer: LoopObserver, interval_s: float = INTERVAL_S) -> None:
        self.observer = observer
        self.interval_s = interval_s
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start measuring on the running loop."""
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._run(), name="loop-lag")

    async def stop(self) -> None:
        """Stop measuring."""
        task, self.task = self.task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        # perf_counter, not loop.time(): uvloop's clock counts whole milliseconds.
        while True:
            asked = time.perf_counter() + self.interval_s
            await asyncio.sleep(self.interval_s)
            lag = max(0.0, time.perf_counter() - asked)
            # A stall of N intervals held N samples' worth of timers: count it N times, so that
            # the distribution is over time, not over wake-ups, and a long stall is not one
            # sample among thousands.
            for _ in range(max(1, round(lag / self.interval_s))):
                self.observer.loop_lag(lag)
