"""Locust scenarios for a co-browse cluster: customers create sessions, agents join them.

    locust -f loadtests/locustfile.py --headless -H http://127.0.0.1:8700 -u 50 -r 10 -t 60s

- `Customer`, as a customer's browser: Create Session through the cluster URL (a new visitor
  each time, so a fresh cookie jar), read its own session with the `gcbSessionServer` cookie and
  an allowed `Origin`, hand the session to the agents, wait (a bounded time) until an agent has
  joined, then Stop Session with its userToken.
- `Agent`, as the agent's desktop: Get Session for a token a customer created, with an allowed
  `Origin` and no cookie, so the cluster must route by the token alone. An answer from another
  node than the creator, or a redirect, is a misroute: a failed request, counted separately.
  Behind a load balancer that cannot compute the ring (HAProxy, nginx), nodes answer such
  requests with a 307 to the owner's `serverUrl`: `--follow-redirects` follows it, as a
  browser would, counts it as `redirected`, and judges the final answer instead.

At the end the run is held against its SLOs (failure ratio, misroutes, p95) and the verdict
becomes the exit code. Weights, thresholds and the rest are options, on the command line or in
`loadtests/locust.conf` (see `add_options` below: Locust's --help does not list them).
`LOADTEST_SHAPE=ramp|spike` adds a load shape from `shapes.py`.

Importing this file only defines classes and listeners: nothing starts.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import shapes
import slo
from checks import Created, Problem, check_created, check_session, check_stopped, cookie_value
from locust import FastHttpUser, constant, events, task
from locust.env import Environment
from locust.runners import WorkerRunner
from pool import SessionPool, SharedSession

log = logging.getLogger("cobrowse.loadtest")

DEFAULT_ORIGIN = "http://localhost:8080"
DEFAULT_CONTEXT = "/cobrowse"
DEFAULT_AGENT_WAIT_S = 2.0
REQUEST_TIMEOUT_S = 10.0
IDLE_WAIT_S = 0.5  # an agent with nothing to join waits this long (or until a publish)

# One pool and one tally per Locust process: every user of a process runs in it, as greenlets.
POOL = SessionPool()
TALLY: Counter[str] = Counter()


def _option(environment: Environment, name: str, default: Any) -> Any:
    """Return a parsed option, or `default` when run without Locust's parser (tests, debug)."""
    value = getattr(environment.parsed_options, name, None)
    return default if value is None else value


def _now_ms() -> int:
    return int(time.time() * 1000)


def _fail(response: Any, problem: Problem) -> None:
    if problem.misroute:
        TALLY["misroutes"] += 1
    response.failure(problem.message)


class CobrowseClient(FastHttpUser):
    """A client of the live-session API: paths under the context path, no redirects followed."""

    abstract = True
    wait_time = constant(0)
    network_timeout = REQUEST_TIMEOUT_S
    connection_timeout = REQUEST_TIMEOUT_S

    def on_start(self) -> None:
        context = _option(self.environment, "context_path", DEFAULT_CONTEXT).rstrip("/")
        self.api = f"{context}/rest/live"
        self.origin = {"Origin": _option(self.environment, "origin", DEFAULT_ORIGIN)}

    def read_session(
        self, token: str, node: str, name: str, follow_redirects: bool = False
    ) -> None:
        """Get Session `token`, which `node` created; a redirect is a misroute unless followed."""
        url = f"{self.api}/sessions/{token}"
        with self.client.get(
            url, name=name, headers=self.origin, allow_redirects=False, catch_response=True
        ) as response:
            location = response.headers.get("Location") if response.headers else None
            if follow_redirects and response.status_code == 307 and location:
                TALLY["redirected"] += 1
                response.success()  # judged by where it leads, below
            else:
                problem = check_session(response.status_code, response.content, token, node)
                if problem is not None:
                    _fail(response, problem)
                return
        with self.client.get(
            location,
            name=f"{name} (redirected)",
            headers=self.origin,
            allow_redirects=False,
            catch_response=True,
        ) as response:
            problem = check_session(response.status_code, response.content, token, node)
            if problem is not None:
                _fail(response, problem)


class Customer(CobrowseClient):
    """A customer's browser: create, read, let an agent join, stop; one session at a time."""

    weight = 2

    @task
    def cobrowse(self) -> None:
        # Every session is a new visitor: without the previous cookie, creates spread over the
        # nodes as the real customers' would.
        self.client.cookiejar.clear()
        created_ms = _now_ms()
        created = self.create_session()
        if created is None:
            return
        self.read_session(created.session_token, created.node, "/sessions/[token] (customer)")
        shared = SharedSession(created.session_token, created.node)
        POOL.publish(shared)
        joined = POOL.close(
            shared,
            hold_s=_option(self.environment, "agent_wait", DEFAULT_AGENT_WAIT_S),
            read_deadline_s=REQUEST_TIMEOUT_S,
        )
        TALLY["joined" if joined else "not joined"] += 1
        self.stop_session(created, created_ms)

    def create_session(self) -> Created | None:
        with self.client.post(
            f"{self.api}/sessions", name="/sessions", allow_redirects=False, catch_response=True
        ) as response:
            headers = response.headers
            set_cookies = headers.getlist("set-cookie") if headers is not None else []
            result = check_created(
                response.status_code,
                response.content,
                cookie_value(set_cookies),
                headers.get("gcbSessionServer") if headers is not None else None,
            )
            if isinstance(result, Problem):
                _fail(response, result)
                return None
            TALLY["created"] += 1
            return result

    def stop_session(self, created: Created, created_ms: int) -> None:
        # The cookie from the create is still in the jar: the stop goes to the creator by it.
        with self.client.get(
            f"{self.api}/users/{created.user_token}/session/stop",
            name="/users/[userToken]/session/stop",
            allow_redirects=False,
            catch_response=True,
        ) as response:
            problem = check_stopped(response.status_code, response.content, created_ms, _now_ms())
            if problem is not None:
                _fail(response, problem)


class Agent(CobrowseClient):
    """An agent's desktop: joins sessions customers created, by token, without their cookie."""

    weight = 1

    @task
    def join(self) -> None:
        shared = POOL.claim(timeout_s=IDLE_WAIT_S)
        if shared is None:
            return
        try:
            # Agents never create, so nothing should ever set a cookie here; clearing anyway
            # guarantees the cluster has nothing but the token to route by.
            self.client.cookiejar.clear()
            self.read_session(
                shared.session_token,
                shared.node,
                "/sessions/[token] (agent)",
                follow_redirects=_option(self.environment, "follow_redirects", False),
            )
        finally:
            shared.joined.set()  # the customer may stop it now


# Locust uses any shape class it finds in this module: take one only when asked for.
SelectedShape = shapes.chosen(os.environ.get("LOADTEST_SHAPE", ""))


@events.init_command_line_parser.add_listener
def add_options(parser: Any) -> None:
    group = parser.add_argument_group("cobrowse scenarios")
    group.add_argument("--customer-weight", type=int, help="weight of Customer users (2)")
    group.add_argument("--agent-weight", type=int, help="weight of Agent users (1)")
    group.add_argument(
        "--agent-wait",
        type=float,
        default=DEFAULT_AGENT_WAIT_S,
        help="seconds a customer waits for an agent to join before stopping",
    )
    group.add_argument("--origin", default=DEFAULT_ORIGIN, help="an allowed Origin")
    group.add_argument(
        "--follow-redirects",
        action="store_true",
        help="agents follow a node's 307 to the owner (HAProxy, nginx) instead of failing",
    )
    group.add_argument("--context-path", default=DEFAULT_CONTEXT, help="the cluster's path")
    group.add_argument(
        "--slo-max-failure-ratio",
        type=float,
        default=slo.DEFAULT_MAX_FAILURE_RATIO,
        help="SLO: most failed requests, as a share of all",
    )
    group.add_argument(
        "--slo-max-misroutes",
        type=int,
        default=slo.DEFAULT_MAX_MISROUTES,
        help="SLO: most misrouted requests",
    )
    group.add_argument(
        "--slo-p95-ms",
        type=float,
        default=slo.DEFAULT_P95_MS,
        help="SLO: highest p95 response time over all requests (ms)",
    )
    group.add_argument("--outcome-file", help="write the SLO verdict and counters here as JSON")


@events.init.add_listener
def apply_options(environment: Environment, **_kwargs: Any) -> None:
    # Only when given, so that Locust's own --config-users can set weights too.
    for user_class, option in ((Customer, "customer_weight"), (Agent, "agent_weight")):
        weight = _option(environment, option, None)
        if weight is not None:
            user_class.weight = weight


@events.test_start.add_listener
def reset(environment: Environment, **_kwargs: Any) -> None:
    POOL.clear()
    TALLY.clear()


@events.report_to_master.add_listener
def send_counters(client_id: str, data: dict[str, Any]) -> None:
    # Workers send what they counted since their last report; the master adds it up.
    data["cobrowse_counters"] = dict(TALLY)
    TALLY.clear()


@events.worker_report.add_listener
def add_counters(client_id: str, data: dict[str, Any]) -> None:
    TALLY.update(data.get("cobrowse_counters", {}))


@events.quitting.add_listener
def check_slos(environment: Environment, **_kwargs: Any) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return  # the master judges the whole run
    total = environment.stats.total
    runner = environment.runner
    exceptions = len(runner.exceptions) if runner is not None else 0
    verdict = slo.evaluate(
        slo.Measured(
            requests=total.num_requests,
            failures=total.num_failures,
            misroutes=TALLY["misroutes"],
            p95_ms=float(total.get_response_time_percentile(0.95) or 0),
            exceptions=exceptions,
        ),
        slo.Thresholds(
            max_failure_ratio=_option(
                environment, "slo_max_failure_ratio", slo.DEFAULT_MAX_FAILURE_RATIO
            ),
            max_misroutes=_option(environment, "slo_max_misroutes", slo.DEFAULT_MAX_MISROUTES),
            p95_ms=_option(environment, "slo_p95_ms", slo.DEFAULT_P95_MS),
        ),
    )
    counters = {name: TALLY[name] for name in ("created", "joined", "not joined", "misroutes")}
    log.info("counters: %s", ", ".join(f"{name} {count}" for name, count in counters.items()))
    (log.info if verdict.passed else log.error)(verdict.summary())
    # Set even when passing: otherwise Locust would exit 1 on failures the SLO allows.
    environment.process_exit_code = verdict.exit_code(_option(environment, "exit_code_on_error", 1))
    outcome_file = _option(environment, "outcome_file", None)
    if outcome_file:
        slo.write_outcome(Path(outcome_file), verdict, counters)
