"""Health's store probe: writes decide 503; a failed live count does not."""

from __future__ import annotations

from cobrowse.clock import SystemClock
from cobrowse.store import StoreUnavailableError
from cobrowse.web.resources.health import StoreProbe


class Store:
    def __init__(self, *, writable: bool, countable: bool) -> None:
        self.writable = writable
        self.countable = countable
        self.counts = 0

    async def check_writable(self) -> None:
        if not self.writable:
            raise StoreUnavailableError("read-only")

    async def live_count(self, now_ms: int) -> int:
        self.counts += 1
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
