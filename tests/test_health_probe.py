"""Health's store probe: writes decide 503; a failed or slow live count does not."""

from __future__ import annotations

import asyncio
import time

from cobrowse.clock import SystemClock
from cobrowse.store import StoreUnavailableError
from cobrowse.web.resources.health import StoreProbe


class Store:
    def __init__(self, *, writable: bool, countable: bool, count_takes_s: float = 0.0) -> None:
        self.writable = writable
        self.countable = countable
        self.count_takes_s = count_takes_s
        self.counts = 0

    async def check_writable(self) -> None:
        if not self.writable:
            raise StoreUnavailableError("read-only")

    async def live_count(self, now_ms: int) -> int:
        self.counts += 1
        await asyncio.sleep(self.count_takes_s)
        if not self.countable:
            raise StoreUnavailableError("cannot read")
        return 7


async def test_a_store_that_takes_writes_is_writable_even_when_its_count_fails() -> None:
    store = Store(writable=True, countable=False)
    probe = StoreProbe(store, SystemClock())  # type: ignore[arg-type]
    await probe.refresh()
    assert probe.writable
    store.countable = True
    await probe.refresh()  # a failed count is retried at once, not 5 s later
    assert probe.live_sessions == 7
    assert store.counts == 2


async def test_a_store_that_refuses_writes_is_not_writable_until_it_takes_one_again() -> None:
    store = Store(writable=False, countable=True)
    probe = StoreProbe(store, SystemClock())  # type: ignore[arg-type]
    await probe.refresh()
    assert not probe.writable
    store.writable = True
    probe.written_at -= probe.write_interval_s  # a second later
    await probe.refresh()
    assert probe.writable


async def test_a_slow_count_does_not_hold_the_probe_and_lands_later() -> None:
    store = Store(writable=True, countable=True)
    probe = StoreProbe(store, SystemClock())  # type: ignore[arg-type]
    await probe.refresh()  # the first count is waited for: nothing to show before it
    assert probe.live_sessions == 7
    store.count_takes_s, probe.live_sessions = 0.5, 6
    probe.counted_at -= probe.count_interval_s  # 5 s later
    started = time.monotonic()
    await probe.refresh()
    assert time.monotonic() - started < 0.3, "the probe waited for the whole count"
    assert probe.live_sessions == 6  # the last figure, until the count lands
    probe.counted_at -= probe.count_interval_s  # due again, but one count at a time
    await probe.refresh()
    assert store.counts == 2
    assert probe.counting is not None
    await asyncio.wait_for(probe.counting, 2)
    assert probe.live_sessions == 7
