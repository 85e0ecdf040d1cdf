"""Wake-ups between a node's workers: a busy peer hears every session later, never none."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from pathlib import Path

from cobrowse.realtime.wakeup import DatagramWakeup

SESSIONS = 50


def busy_receiver(directory: str, ready, heard) -> None:
    async def run() -> None:
        wakeup = DatagramWakeup(Path(directory), "namespace")
        wakeup.start()
        ready.set()
        time.sleep(0.5)  # the loop is busy: datagrams pile up in the socket's small queue
        got: set[str] = set()
        end = time.monotonic() + 5
        while len(got) < SESSIONS and time.monotonic() < end:
            changed = await wakeup.wait(0.2)
            got |= changed or set()
        heard.put(sorted(got))
        wakeup.stop()

    asyncio.run(run())


async def test_a_busy_worker_hears_of_every_session_that_changed(tmp_path):
    context = multiprocessing.get_context("spawn")
    ready, heard = context.Event(), context.Queue()
    receiver = context.Process(target=busy_receiver, args=(str(tmp_path), ready, heard))
    receiver.start()
    try:
        assert await asyncio.to_thread(ready.wait, 30)
        sender = DatagramWakeup(tmp_path, "namespace")
        sender.start()
        for number in range(SESSIONS):
            sender.notify(f"session-{number}")
            await asyncio.sleep(0.002)  # one loop turn each: fifty datagrams, not one
        got = await asyncio.to_thread(heard.get, True, 30)
        sender.stop()
    finally:
        receiver.join(10)
        if receiver.is_alive():
            receiver.kill()
    assert got == sorted(f"session-{number}" for number in range(SESSIONS))
