"""The scenarios' answer checks: tokens, sticky cookie and header, misroutes, stop times."""

from __future__ import annotations

import json

import pytest

from tests.loadtest_modules import import_loadtest

checks = import_loadtest("checks")

NOW_MS = 1_795_000_000_000
CREATED = {"sessionToken": "123456789", "sessionServerName": "node-2", "userToken": "1abc"}


def body(payload: object) -> bytes:
    return json.dumps(payload).encode()


def test_a_good_create_gives_what_the_customer_keeps():
    created = checks.check_created(200, body(CREATED), "node-2", "node-2")
    assert created == checks.Created("123456789", "node-2", "1abc")


@pytest.mark.parametrize(
    ("status", "payload", "cookie", "header", "message"),
    [
        (503, CREATED, "node-2", "node-2", "create: status 503"),
        (200, ["not", "an", "object"], "node-2", "node-2", "not a JSON object"),
        (200, {**CREATED, "sessionToken": "12345678"}, "node-2", "node-2", "not 9 digits"),
        (200, {**CREATED, "sessionToken": "1234567890"}, "node-2", "node-2", "not 9 digits"),
        (200, {**CREATED, "sessionToken": "12345678x"}, "node-2", "node-2", "not 9 digits"),
        (200, {**CREATED, "sessionToken": 123456789}, "node-2", "node-2", "not 9 digits"),
        (200, {**CREATED, "sessionServerName": ""}, "", "", "not a node name"),
        (200, {**CREATED, "userToken": None}, "node-2", "node-2", "no userToken"),
        (200, CREATED, None, "node-2", "cookie gcbSessionServer=None"),
        (200, CREATED, "node-1", "node-2", "cookie gcbSessionServer='node-1'"),
        (200, CREATED, "node-2", None, "header gcbSessionServer: None"),
    ],
)
def test_a_bad_create_is_a_failure_but_no_misroute(status, payload, cookie, header, message):
    problem = checks.check_created(status, body(payload), cookie, header)
    assert isinstance(problem, checks.Problem)
    assert message in problem.message
    assert not problem.misroute


def test_a_body_that_is_not_json_is_a_failure():
    problem = checks.check_created(200, b"<html>", "node-2", "node-2")
    assert problem == checks.Problem("create: the body is not a JSON object")


@pytest.mark.parametrize(
    ("headers", "value"),
    [
        (["gcbSessionServer=node-1; Path=/cobrowse; HttpOnly; SameSite=Lax"], "node-1"),
        (["other=1; Path=/", "gcbSessionServer=node-3; Path=/cobrowse"], "node-3"),
        (["other=1; Path=/"], None),
        ([], None),
        (["gcbSessionServer=node-1", "gcbSessionServer=node-2"], "node-2"),  # the last one wins
    ],
)
def test_the_sticky_cookie_is_read_from_set_cookie(headers, value):
    assert checks.cookie_value(headers) == value


def test_a_session_answered_by_its_creator_is_right():
    answer = {"sessionToken": "123456789", "sessionServerName": "node-2"}
    assert checks.check_session(200, body(answer), "123456789", "node-2") is None


@pytest.mark.parametrize(
    ("status", "payload", "misroute"),
    [
        (200, {"sessionToken": "123456789", "sessionServerName": "node-1"}, True),
        (307, {"errorMessage": "elsewhere", "node": "node-2"}, True),
        (421, {"errorMessage": "elsewhere", "node": "node-2"}, True),
        (404, {"errorMessage": "No live session"}, False),
        (503, {"errorMessage": "down", "node": "node-2"}, False),
        (200, {"sessionToken": "987654321", "sessionServerName": "node-2"}, False),
    ],
)
def test_another_node_or_a_redirect_is_a_misroute(status, payload, misroute):
    problem = checks.check_session(status, body(payload), "123456789", "node-2")
    assert problem is not None
    assert problem.misroute is misroute
    assert "123456789" not in problem.message  # one failure row per kind, not per token


def stop_body(activation: object, deactivation: object) -> bytes:
    return body({"activationTime": activation, "deactivationTime": deactivation})


def test_stop_times_in_order_and_in_the_past_are_right():
    answer = stop_body(NOW_MS - 900, NOW_MS - 100)
    assert checks.check_stopped(200, answer, NOW_MS - 1000, NOW_MS) is None


def test_equal_stop_times_are_right():
    answer = stop_body(NOW_MS - 500, NOW_MS - 500)
    assert checks.check_stopped(200, answer, NOW_MS - 1000, NOW_MS) is None


@pytest.mark.parametrize(
    ("activation", "deactivation", "message"),
    [
        ("1795", NOW_MS, "not both integers"),
        (NOW_MS - 500, float(NOW_MS), "not both integers"),
        (True, NOW_MS, "not both integers"),
        (None, None, "not both integers"),
        (NOW_MS - 100, NOW_MS - 500, "activationTime is after deactivationTime"),
        (NOW_MS - 60_000, NOW_MS - 500, "before the create was sent"),
        (NOW_MS - 500, NOW_MS + 60_000, "in the future"),
    ],
)
def test_wrong_stop_times_are_failures(activation, deactivation, message):
    problem = checks.check_stopped(200, stop_body(activation, deactivation), NOW_MS - 1000, NOW_MS)
    assert problem is not None
    assert message in problem.message
    assert not problem.misroute


def test_clock_skew_within_the_allowance_is_tolerated():
    skew = checks.CLOCK_SKEW_MS - 1
    answer = stop_body(NOW_MS - 1000 - skew, NOW_MS + skew)
    assert checks.check_stopped(200, answer, NOW_MS - 1000, NOW_MS) is None


@pytest.mark.parametrize(("status", "misroute"), [(307, True), (404, False), (500, False)])
def test_a_stop_that_fails_says_whether_it_was_misrouted(status, misroute):
    problem = checks.check_stopped(status, b"{}", NOW_MS - 1000, NOW_MS)
    assert problem is not None
    assert problem.misroute is misroute
