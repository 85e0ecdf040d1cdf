"""Load shapes: ramp-up/steady/ramp-down, and a spike over a baseline.

Both read Locust's own `-u` (peak users), `-r` (spawn rate) and `-t` (run time), so a shape
changes how the load moves, not how it is sized. The spike's extra parameters come from
environment variables. Every shape ends (tick() returns None) at the run time.

Locust uses any shape class it finds in the locustfile, so the locustfile only takes one of
these when `LOADTEST_SHAPE` names it (`ramp` or `spike`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from locust import LoadTestShape

Tick = tuple[int, float]

DEFAULT_USERS = 50
DEFAULT_SPAWN_RATE = 10.0
DEFAULT_RUN_TIME_S = 60.0


@dataclass(frozen=True, slots=True)
class RampPlan:
    """Ramp up to `users` at `spawn_rate`, hold, ramp down at the same rate, end at `run_time_s`.

    When the run is too short for two full ramps, the ramps share it equally and steady is empty.
    """

    users: int
    spawn_rate: float
    run_time_s: float

    @property
    def ramp_s(self) -> float:
        return min(self.users / self.spawn_rate, self.run_time_s / 2)

    def at(self, elapsed_s: float) -> Tick | None:
        if elapsed_s >= self.run_time_s:
            return None
        if elapsed_s < self.run_time_s - self.ramp_s:
            return self.users, self.spawn_rate
        return 0, self.spawn_rate


@dataclass(frozen=True, slots=True)
class SpikePlan:
    """Hold `base_users`; from `spike_at_s` for `spike_s`, jump to `users` within a second."""

    users: int
    base_users: int
    spawn_rate: float
    run_time_s: float
    spike_at_s: float
    spike_s: float

    def at(self, elapsed_s: float) -> Tick | None:
        if elapsed_s >= self.run_time_s:
            return None
        if self.spike_at_s <= elapsed_s < self.spike_at_s + self.spike_s:
            # A spike arrives at once: all its users within about a second.
            return self.users, float(max(self.spawn_rate, self.users))
        return self.base_users, self.spawn_rate


def _common(options: Any) -> tuple[int, float, float]:
    """Return users, spawn rate and run time (s) from Locust's parsed options, or defaults."""
    users = getattr(options, "num_users", None) or DEFAULT_USERS
    spawn_rate = getattr(options, "spawn_rate", None) or DEFAULT_SPAWN_RATE
    run_time_s = getattr(options, "run_time", None) or DEFAULT_RUN_TIME_S
    return int(users), float(spawn_rate), float(run_time_s)


def spike_plan(options: Any, environ: Mapping[str, str]) -> SpikePlan:
    """Build the spike from the common options and `LOADTEST_SPIKE_*` fractions of them."""
    users, spawn_rate, run_time_s = _common(options)
    base_fraction = float(environ.get("LOADTEST_SPIKE_BASE", "0.2"))
    at_fraction = float(environ.get("LOADTEST_SPIKE_AT", "0.4"))
    length_fraction = float(environ.get("LOADTEST_SPIKE_LENGTH", "0.2"))
    return SpikePlan(
        users=users,
        base_users=max(1, math.floor(users * base_fraction)),
        spawn_rate=spawn_rate,
        run_time_s=run_time_s,
        spike_at_s=run_time_s * at_fraction,
        spike_s=run_time_s * length_fraction,
    )


class RampUpSteadyDown(LoadTestShape):
    """Ramp up, hold steady, ramp down: sized by `-u`, `-r` and `-t`."""

    use_common_options = True

    def tick(self) -> Tick | None:
        options = self.runner.environment.parsed_options if self.runner else None
        return RampPlan(*_common(options)).at(self.get_run_time())


class Spike(LoadTestShape):
    """A baseline with one sudden spike to `-u` users (see `spike_plan` for the knobs)."""

    use_common_options = True

    def tick(self) -> Tick | None:
        options = self.runner.environment.parsed_options if self.runner else None
        return spike_plan(options, os.environ).at(self.get_run_time())


SHAPES: dict[str, type[LoadTestShape]] = {"ramp": RampUpSteadyDown, "spike": Spike}


def chosen(name: str) -> type[LoadTestShape] | None:
    """Return the shape `name` names (`ramp`, `spike`), None for an empty name."""
    if not name:
        return None
    try:
        return SHAPES[name]
    except KeyError:
        raise ValueError(f"unknown load shape {name!r}: choose one of {sorted(SHAPES)}") from None
