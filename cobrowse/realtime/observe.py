"""What the realtime channel reports: channels, messages, delivery lag, resyncs, refusals.

Labels are message types, roles and reasons: never a token, a userId or a message body.
"""

from __future__ import annotations

from typing import Protocol


class RealtimeObserver(Protocol):
    def channel_opened(self, role: str) -> None: ...

    def channel_closed(self, role: str) -> None: ...

    def received(self, kind: str, size: int) -> None: ...

    def sent(self, kind: str, size: int, lag_ms: int) -> None: ...

    def resync(self, reason: str) -> None: ...

    def refused(self, reason: str) -> None: ...


class NoRealtimeMetrics:
    """Metrics switched off."""

    def channel_opened(self, role: str) -> None:
        pass

    def channel_closed(self, role: str) -> None:
        pass

    def received(self, kind: str, size: int) -> None:
        pass

    def sent(self, kind: str, size: int, lag_ms: int) -> None:
        pass

    def resync(self, reason: str) -> None:
        pass

    def refused(self, reason: str) -> None:
        pass
