"""SLOs at the end of a run: the verdict, and the exit code Locust leaves with."""

from __future__ import annotations

import argparse
import json

import pytest

from tests.loadtest_modules import import_loadtest

slo = import_loadtest("slo")
locustfile = import_loadtest("locustfile")

LIMITS = slo.Thresholds(max_failure_ratio=0.01, max_misroutes=0, p95_ms=500.0)


def measured(**changes: float) -> object:
    values = {"requests": 1000, "failures": 0, "misroutes": 0, "p95_ms": 40.0, **changes}
    return slo.Measured(**values)


def test_a_clean_run_passes_with_exit_code_0():
    verdict = slo.evaluate(measured(), LIMITS)
    assert verdict.passed
    assert verdict.violations == []
    assert verdict.exit_code() == 0
    assert verdict.summary().startswith("SLO passed: failure ratio 0.0000 (max 0.01)")


@pytest.mark.parametrize(
    ("changes", "violation"),
    [
        ({"failures": 11}, "failure ratio 0.0110 > 0.01"),
        ({"misroutes": 1}, "misroutes 1 > 0"),
        ({"p95_ms": 501.0}, "p95 501 ms > 500 ms"),
        ({"requests": 0}, "no request was made"),
        ({"exceptions": 2}, "2 unhandled exception(s) in the scenarios"),
    ],
)
def test_each_missed_objective_is_named_and_fails_the_run(changes, violation):
    verdict = slo.evaluate(measured(**changes), LIMITS)
    assert verdict.violations == [violation]
    assert verdict.exit_code() == 1
    assert verdict.exit_code(on_failure=3) == 3
    assert verdict.summary().startswith(f"SLO MISSED ({violation})")


@pytest.mark.parametrize(
    "changes", [{"failures": 10}, {"p95_ms": 500.0}, {"misroutes": 0}, {"failures": 0}]
)
def test_values_at_the_thresholds_pass(changes):
    assert slo.evaluate(measured(**changes), LIMITS).passed


def test_several_missed_objectives_are_all_reported():
    verdict = slo.evaluate(measured(failures=500, misroutes=400, p95_ms=900.0), LIMITS)
    assert len(verdict.violations) == 3


def test_thresholds_are_configurable():
    lenient = slo.Thresholds(max_failure_ratio=0.5, max_misroutes=1000, p95_ms=1000.0)
    assert slo.evaluate(measured(failures=400, misroutes=400, p95_ms=900.0), lenient).passed


def test_the_outcome_file_holds_the_verdict_and_counters(tmp_path):
    verdict = slo.evaluate(measured(misroutes=3), LIMITS)
    slo.write_outcome(tmp_path / "run" / "outcome.json", verdict, {"misroutes": 3, "created": 9})
    written = json.loads((tmp_path / "run" / "outcome.json").read_text())
    assert written["passed"] is False
    assert written["measured"]["misroutes"] == 3
    assert written["thresholds"]["max_misroutes"] == 0
    assert written["counters"] == {"misroutes": 3, "created": 9}
    assert written["summary"] == verdict.summary()


@pytest.fixture
def environment():
    """A real Locust Environment (no runner) with the locustfile's counters reset."""
    from locust.env import Environment

    locustfile.TALLY.clear()
    yield Environment(
        user_classes=[locustfile.Customer, locustfile.Agent],
        parsed_options=argparse.Namespace(
            slo_max_failure_ratio=0.01,
            slo_max_misroutes=0,
            slo_p95_ms=500.0,
            exit_code_on_error=1,
            outcome_file=None,
        ),
    )
    locustfile.TALLY.clear()


def log_requests(environment, count: int, failures: int = 0, response_ms: int = 20) -> None:
    for index in range(count):
        environment.stats.log_request("GET", "/sessions/[token] (agent)", response_ms, 60)
        if index < failures:
            environment.stats.log_error("GET", "/sessions/[token] (agent)", "misroute")


def test_the_quitting_listener_sets_exit_code_0_when_allowed_failures_happened(environment):
    log_requests(environment, 1000, failures=5)  # Locust alone would exit 1 on any failure
    locustfile.check_slos(environment)
    assert environment.process_exit_code == 0


@pytest.mark.parametrize(
    ("failures", "misroutes", "response_ms"), [(20, 0, 20), (0, 1, 20), (0, 0, 900)]
)
def test_the_quitting_listener_sets_exit_code_1_on_a_missed_objective(
    environment, failures, misroutes, response_ms
):
    log_requests(environment, 1000, failures=failures, response_ms=response_ms)
    locustfile.TALLY["misroutes"] = misroutes
    locustfile.check_slos(environment)
    assert environment.process_exit_code == 1


def test_the_quitting_listener_uses_locusts_exit_code_on_error(environment):
    environment.parsed_options.exit_code_on_error = 4
    locustfile.check_slos(environment)  # not a single request: never a pass
    assert environment.process_exit_code == 4


def test_the_quitting_listener_writes_the_outcome_file(environment, tmp_path):
    environment.parsed_options.outcome_file = str(tmp_path / "outcome.json")
    log_requests(environment, 10)
    locustfile.TALLY.update({"created": 10, "joined": 9})
    locustfile.check_slos(environment)
    written = json.loads((tmp_path / "outcome.json").read_text())
    assert written["passed"] is True
    assert written["measured"]["requests"] == 10
    assert written["counters"] == {"created": 10, "joined": 9, "not joined": 0, "misroutes": 0}


def test_workers_report_their_counters_and_the_master_adds_them_up():
    locustfile.TALLY.clear()
    locustfile.TALLY.update({"misroutes": 2, "created": 5})
    report: dict = {}
    locustfile.send_counters("worker-1", report)
    assert locustfile.TALLY == {}  # sent as a delta
    locustfile.add_counters("worker-1", report)
    locustfile.add_counters("worker-2", {"cobrowse_counters": {"misroutes": 1}})
    assert locustfile.TALLY == {"misroutes": 3, "created": 5}
    locustfile.TALLY.clear()
