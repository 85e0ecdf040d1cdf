"""Service-level objectives of a load test: thresholds, the verdict, and the exit code.

Pure Python (no Locust import), so the verdict is unit-tested without starting anything.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_MAX_FAILURE_RATIO = 0.01
DEFAULT_MAX_MISROUTES = 0
DEFAULT_P95_MS = 500.0


@dataclass(frozen=True, slots=True)
class Thresholds:
    """What a run must stay within to pass."""

    max_failure_ratio: float = DEFAULT_MAX_FAILURE_RATIO
    max_misroutes: int = DEFAULT_MAX_MISROUTES
    p95_ms: float = DEFAULT_P95_MS


@dataclass(frozen=True, slots=True)
class Measured:
    """What a run did, as far as the objectives are concerned."""

    requests: int
    failures: int
    misroutes: int
    p95_ms: float
    exceptions: int = 0  # raised inside users: a bug in the scenario, never a pass

    @property
    def failure_ratio(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


class _Outcome:
    """What both verdicts share: passed, the exit code, the summary's state and the JSON."""

    __slots__ = ()
    kind: str | None = None  # in the JSON, when not the REST scenarios'
    measured: Any
    thresholds: Any
    violations: list[str]

    @property
    def passed(self) -> bool:
        return not self.violations

    def exit_code(self, on_failure: int = 1) -> int:
        """Return 0 when every objective is met, else `on_failure` (Locust's exit code on error)."""
        return 0 if self.passed else on_failure

    def state(self) -> str:
        return "passed" if self.passed else "MISSED (" + "; ".join(self.violations) + ")"

    def summary(self) -> str:
        raise NotImplementedError

    def to_json(self) -> dict[str, object]:
        return {
            **({"kind": self.kind} if self.kind else {}),
            "measured": {**asdict(self.measured), "failure_ratio": self.measured.failure_ratio},
            "thresholds": asdict(self.thresholds),
            "violations": list(self.violations),
            "passed": self.passed,
            "summary": self.summary(),
        }


@dataclass(frozen=True, slots=True)
class Verdict(_Outcome):
    """The measurements, the thresholds and every objective the run missed."""

    measured: Measured
    thresholds: Thresholds
    violations: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """Return one line: passed or missed, what was measured and against which limits."""
        measured, limits = self.measured, self.thresholds
        return (
            f"SLO {self.state()}: failure ratio {measured.failure_ratio:.4f} "
            f"(max {limits.max_failure_ratio:g}), misroutes {measured.misroutes} "
            f"(max {limits.max_misroutes}), p95 {measured.p95_ms:.0f} ms (max {limits.p95_ms:g} ms)"
        )


def evaluate(measured: Measured, thresholds: Thresholds) -> Verdict:
    """Compare a run with its thresholds; a run without a single request never passes."""
    violations = []
    if measured.requests == 0:
        violations.append("no request was made")
    if measured.failure_ratio > thresholds.max_failure_ratio:
        violations.append(
            f"failure ratio {measured.failure_ratio:.4f} > {thresholds.max_failure_ratio:g}"
        )
    if measured.misroutes > thresholds.max_misroutes:
        violations.append(f"misroutes {measured.misroutes} > {thresholds.max_misroutes}")
    if measured.exceptions:
        violations.append(f"{measured.exceptions} unhandled exception(s) in the scenarios")
    if measured.p95_ms > thresholds.p95_ms:
        violations.append(f"p95 {measured.p95_ms:.0f} ms > {thresholds.p95_ms:g} ms")
    return Verdict(measured, thresholds, violations)


def write_outcome(
    path: Path, verdict: Verdict | LiveVerdict, counters: dict[str, int | float]
) -> None:
    """Write the verdict and the scenario's own counters as JSON, for `cobrowse loadtest`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**verdict.to_json(), "counters": counters}, indent=2) + "\n")


# Live sessions (loadtests/live.py): messages delivered to agents, checked one by one.
DEFAULT_DELIVERY_P99_MS = 200.0


@dataclass(frozen=True, slots=True)
class LiveThresholds:
    """What a live-session run must stay within: delivery latency, and no protocol violation."""

    delivery_p99_ms: float = DEFAULT_DELIVERY_P99_MS
    max_lost: int = 0
    max_duplicated: int = 0
    max_out_of_order: int = 0
    max_missing_snapshots: int = 0
    max_join_failures: int = 0
    max_consent_timeouts: int = 0
    max_failure_ratio: float = DEFAULT_MAX_FAILURE_RATIO  # every request and message


@dataclass(frozen=True, slots=True)
class LiveMeasured:
    """What a live-session run did, as far as its objectives are concerned."""

    delivered: int  # `events` the agents received live (the log replayed on joining excluded)
    delivery_p99_ms: float
    lost: int = 0
    duplicated: int = 0
    out_of_order: int = 0
    missing_snapshots: int = 0
    join_failures: int = 0
    consent_timeouts: int = 0
    requests: int = 0  # REST requests and messages, as Locust counts them
    failures: int = 0
    exceptions: int = 0

    @property
    def failure_ratio(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


@dataclass(frozen=True, slots=True)
class LiveVerdict(_Outcome):
    """The live run's measurements, thresholds and missed objectives (as `Verdict`)."""

    kind = "live"
    measured: LiveMeasured
    thresholds: LiveThresholds
    violations: list[str] = field(default_factory=list)

    def summary(self) -> str:
        measured, limits = self.measured, self.thresholds
        return (
            f"SLO {self.state()}: delivery p99 {measured.delivery_p99_ms:.0f} ms "
            f"(max {limits.delivery_p99_ms:g} ms) over {measured.delivered} messages, "
            f"lost {measured.lost}, duplicated {measured.duplicated}, "
            f"out of order {measured.out_of_order}, missing snapshots "
            f"{measured.missing_snapshots}, join failures {measured.join_failures}, "
            f"consent timeouts {measured.consent_timeouts}, failure ratio "
            f"{measured.failure_ratio:.4f} (max {limits.max_failure_ratio:g})"
        )


def evaluate_live(measured: LiveMeasured, thresholds: LiveThresholds) -> LiveVerdict:
    """Compare a live run with its thresholds; a run that delivered nothing never passes."""
    violations = []
    if measured.delivered == 0:
        violations.append("no message was delivered to an agent")
    if measured.delivery_p99_ms > thresholds.delivery_p99_ms:
        violations.append(
            f"delivery p99 {measured.delivery_p99_ms:.0f} ms > {thresholds.delivery_p99_ms:g} ms"
        )
    counted = (
        ("lost", measured.lost, thresholds.max_lost),
        ("duplicated", measured.duplicated, thresholds.max_duplicated),
        ("out of order", measured.out_of_order, thresholds.max_out_of_order),
        ("missing snapshots", measured.missing_snapshots, thresholds.max_missing_snapshots),
        ("join failures", measured.join_failures, thresholds.max_join_failures),
        ("consent timeouts", measured.consent_timeouts, thresholds.max_consent_timeouts),
    )
    violations += [f"{name} {count} > {limit}" for name, count, limit in counted if count > limit]
    if measured.failure_ratio > thresholds.max_failure_ratio:
        violations.append(
            f"failure ratio {measured.failure_ratio:.4f} > {thresholds.max_failure_ratio:g}"
        )
    if measured.exceptions:
        violations.append(f"{measured.exceptions} unhandled exception(s) in the scenarios")
    return LiveVerdict(measured, thresholds, violations)
