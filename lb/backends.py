"""What the router knows about each node: its address and its health, HAProxy-style."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field

from cobrowse.config.settings import NodeSpec, RouterSettings


class State(enum.Enum):
    """A node's state as the router sees it (ARCHITECTURE invariant 4)."""

    UP = "up"
    DRAINING = "draining"  # its /health answers 404: sticky traffic only, no new sessions
    DOWN = "down"


class CheckResult(enum.Enum):
    """One probe of a node's /health."""

    READY = "200"
    DRAINING = "404"
    FAILED = "failed"


@dataclass(slots=True)
class Backend:
    """One node: rise/fall counting over active checks, like HAProxy's `check inter fall rise`."""

    spec: NodeSpec
    rise: int
    fall: int
    # HAProxy starts servers up and lets the first failed checks take them down: traffic flows
    # at once, and a node that is really down is marked so within `fall` checks.
    up: bool = True
    draining: bool = False
    consecutive_failures: int = 0
    consecutive_successes: int = 0
    last_check_ms: int | None = None
    last_result: str | None = None
    last_error: str | None = None
    live_sessions: int | None = None  # as the node's last /health answer said
    changed_at: float = field(default_factory=time.monotonic)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def backup(self) -> bool:
        return self.spec.backup

    @property
    def state(self) -> State:
        if not self.up:
            return State.DOWN
        return State.DRAINING if self.draining else State.UP

    @property
    def takes_new_sessions(self) -> bool:
        return self.up and not self.draining

    def record(
        self,
        result: CheckResult,
        now_ms: int,
        detail: str | None = None,
        live_sessions: int | None = None,
    ) -> bool:
        """Count one check; return True when the state changed."""
        before = self.state
        if live_sessions is not None:
            self.live_sessions = live_sessions
        self.last_check_ms = now_ms
        self.last_result = result.value if detail is None else f"{result.value}: {detail}"
        if result is CheckResult.FAILED:
            self.last_error = detail
            self.consecutive_failures += 1
            self.consecutive_successes = 0
            if self.up and self.consecutive_failures >= self.fall:
                self.up = False
        else:
            self.consecutive_successes += 1
            self.consecutive_failures = 0
            # disable-on-404 takes effect at once, as in HAProxy; coming back up needs `rise`.
            self.draining = result is CheckResult.DRAINING
            if not self.up and self.consecutive_successes >= self.rise:
                self.up = True
        changed = self.state is not before
        if changed:
            self.changed_at = time.monotonic()
        return changed


def backends_for(nodes: tuple[NodeSpec, ...], settings: RouterSettings) -> dict[str, Backend]:
    """Build one Backend per node."""
    return {
        node.name: Backend(node, rise=settings.check_rise, fall=settings.check_fall)
        for node in nodes
    }
