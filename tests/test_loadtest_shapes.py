"""Load shapes: their tick() schedule, bounded in time, and how the locustfile picks one."""

from __future__ import annotations

import argparse
import importlib
from types import SimpleNamespace

import pytest

from tests.loadtest_modules import import_loadtest

shapes = import_loadtest("shapes")


def options(users: int = 50, spawn_rate: float = 10.0, run_time: int = 60) -> argparse.Namespace:
    return argparse.Namespace(num_users=users, spawn_rate=spawn_rate, run_time=run_time)


def ticking(shape_class, parsed_options, monkeypatch):
    """Return tick(at) for a shape whose runner carries `parsed_options`."""
    shape = shape_class()
    shape.runner = SimpleNamespace(environment=SimpleNamespace(parsed_options=parsed_options))
    elapsed = {"s": 0.0}
    monkeypatch.setattr(shape, "get_run_time", lambda: elapsed["s"])

    def tick(at_s: float):
        elapsed["s"] = at_s
        return shape.tick()

    return tick


@pytest.mark.parametrize(
    ("at_s", "expected"),
    [
        (0, (50, 10.0)),  # ramp up: Locust spawns 10 users a second towards 50
        (4.9, (50, 10.0)),
        (30, (50, 10.0)),  # steady
        (54.9, (50, 10.0)),
        (55, (0, 10.0)),  # ramp down over the last 5 s (50 users at 10/s)
        (59.9, (0, 10.0)),
        (60, None),  # the end
        (600, None),
    ],
)
def test_ramp_up_steady_down_follows_users_spawn_rate_and_run_time(at_s, expected, monkeypatch):
    tick = ticking(shapes.RampUpSteadyDown, options(), monkeypatch)
    assert tick(at_s) == expected


def test_a_run_too_short_for_both_ramps_splits_it_between_them():
    plan = shapes.RampPlan(users=100, spawn_rate=1.0, run_time_s=20.0)
    assert plan.ramp_s == 10.0
    assert plan.at(9.9) == (100, 1.0)
    assert plan.at(10.0) == (0, 1.0)
    assert plan.at(20.0) is None


@pytest.mark.parametrize(
    ("at_s", "expected"),
    [
        (0, (10, 10.0)),  # baseline: 20% of -u
        (23.9, (10, 10.0)),
        (24, (50, 50.0)),  # at 40% of the run: the spike, all users within a second
        (35.9, (50, 50.0)),
        (36, (10, 10.0)),  # after 20% of the run: back to the baseline
        (59.9, (10, 10.0)),
        (60, None),
    ],
)
def test_spike_jumps_from_a_baseline_and_back(at_s, expected, monkeypatch):
    for name in ("LOADTEST_SPIKE_BASE", "LOADTEST_SPIKE_AT", "LOADTEST_SPIKE_LENGTH"):
        monkeypatch.delenv(name, raising=False)
    tick = ticking(shapes.Spike, options(), monkeypatch)
    assert tick(at_s) == expected


def test_spike_parameters_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("LOADTEST_SPIKE_BASE", "0.5")
    monkeypatch.setenv("LOADTEST_SPIKE_AT", "0.1")
    monkeypatch.setenv("LOADTEST_SPIKE_LENGTH", "0.5")
    tick = ticking(shapes.Spike, options(users=40, spawn_rate=100.0, run_time=100), monkeypatch)
    assert tick(9) == (20, 100.0)
    assert tick(10) == (40, 100.0)  # the spike rate is never below the spawn rate
    assert tick(59.9) == (40, 100.0)
    assert tick(60) == (20, 100.0)


def test_a_spike_keeps_at_least_one_user():
    plan = shapes.spike_plan(options(users=3), {})
    assert plan.base_users == 1


@pytest.mark.parametrize("shape_class", [shapes.RampUpSteadyDown, shapes.Spike])
def test_every_shape_ends_within_the_run_time(shape_class, monkeypatch):
    tick = ticking(shape_class, options(users=7, spawn_rate=3.0, run_time=30), monkeypatch)
    ticks = [tick(second / 2) for second in range(0, 2 * 31)]
    assert all(value is not None for value in ticks[:60])
    assert ticks[60:] == [None, None]
    assert max(value[0] for value in ticks[:60]) == 7


@pytest.mark.parametrize("shape_class", [shapes.RampUpSteadyDown, shapes.Spike])
def test_without_parsed_options_shapes_use_defaults(shape_class, monkeypatch):
    tick = ticking(shape_class, None, monkeypatch)
    assert tick(0) is not None
    assert tick(shapes.DEFAULT_RUN_TIME_S) is None


def test_shapes_are_chosen_by_name():
    assert shapes.chosen("") is None
    assert shapes.chosen("ramp") is shapes.RampUpSteadyDown
    assert shapes.chosen("spike") is shapes.Spike
    with pytest.raises(ValueError, match="unknown load shape 'square'"):
        shapes.chosen("square")


def test_the_locustfile_offers_a_shape_only_when_asked(monkeypatch):
    locustfile = import_loadtest("locustfile")
    monkeypatch.delenv("LOADTEST_SHAPE", raising=False)
    assert importlib.reload(locustfile).SelectedShape is None
    try:
        monkeypatch.setenv("LOADTEST_SHAPE", "spike")
        assert importlib.reload(locustfile).SelectedShape is shapes.Spike
    finally:
        monkeypatch.delenv("LOADTEST_SHAPE")
        importlib.reload(locustfile)
