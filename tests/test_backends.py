"""Node health as the router counts it: HAProxy's rise, fall and disable-on-404."""

from __future__ import annotations

from cobrowse.config.settings import NodeSpec
from lb.backends import Backend, CheckResult, State


def backend() -> Backend:
    return Backend(NodeSpec("n1", "127.0.0.1:1", data_dir=None), rise=2, fall=2)  # type: ignore[arg-type]


def test_starts_up_and_falls_after_fall_failures():
    node = backend()
    assert node.state is State.UP
    assert not node.record(CheckResult.FAILED, 1, "refused")
    assert node.state is State.UP
    assert node.record(CheckResult.FAILED, 2, "refused")
    assert node.state is State.DOWN
    assert node.consecutive_failures == 2


def test_rises_after_rise_successes():
    node = backend()
    node.record(CheckResult.FAILED, 1)
    node.record(CheckResult.FAILED, 2)
    assert not node.record(CheckResult.READY, 3)
    assert node.state is State.DOWN
    assert node.record(CheckResult.READY, 4)
    assert node.state is State.UP


def test_404_drains_at_once_and_200_undrains():
    node = backend()
    assert node.record(CheckResult.DRAINING, 1)
    assert node.state is State.DRAINING
    assert not node.takes_new_sessions
    assert node.record(CheckResult.READY, 2)
    assert node.state is State.UP


def test_a_single_success_resets_the_failure_count():
    node = backend()
    node.record(CheckResult.FAILED, 1)
    node.record(CheckResult.READY, 2)
    node.record(CheckResult.FAILED, 3)
    assert node.state is State.UP
