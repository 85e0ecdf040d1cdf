"""The routing decision: URL prefix, cookie or header, token, spread; failures explicit."""

from __future__ import annotations

import random

import pytest

from cobrowse.config.settings import NodeSpec, RouterSettings
from cobrowse.sessions.ring import ClusterRing
from cobrowse.sessions.tokens import TokenIssuer
from lb.backends import CheckResult, backends_for
from lb.routing import RoutingTable, Rule, UnavailableError, sticky_cookie_values

NODES = (
    NodeSpec("n1", "127.0.0.1:9001", data_dir=None),  # type: ignore[arg-type]
    NodeSpec("n2", "127.0.0.1:9002", data_dir=None),  # type: ignore[arg-type]
    NodeSpec("n3", "127.0.0.1:9003", data_dir=None),  # type: ignore[arg-type]
    NodeSpec("spare", "127.0.0.1:9004", data_dir=None, backup=True),  # type: ignore[arg-type]
)
CREATE = b"/cobrowse/rest/live/sessions"


@pytest.fixture
def table():
    ring = ClusterRing(NODES)
    return RoutingTable("/cobrowse", ring, backends_for(NODES, RouterSettings()))


def token_of(table, node, kind="session"):
    issuer = TokenIssuer(table.ring, node, random.Random(node))
    return issuer.session_token() if kind == "session" else issuer.user_token()


def take_down(table, name):
    for _ in range(2):
        table.backends[name].record(CheckResult.FAILED, 0, "test")
    assert not table.backends[name].up


def drain(table, name):
    table.backends[name].record(CheckResult.DRAINING, 0)


def test_url_prefix_goes_to_the_node_without_the_prefix(table):
    route = table.route(b"GET", b"/n2/cobrowse/rest/live/sessions/123456789?x=1")
    assert (route.backend.name, route.rule, route.target) == (
        "n2",
        Rule.URL,
        b"/cobrowse/rest/live/sessions/123456789?x=1",
    )
    assert table.route(b"GET", b"/n2").target == b"/"
    assert table.route(b"GET", b"/n2?a=b").target == b"/?a=b"


def test_url_prefix_beats_cookie_and_token(table):
    token = token_of(table, "n1")
    route = table.route(
        b"GET", b"/n3/cobrowse/rest/live/sessions/" + token.encode(), b"gcbSessionServer=n2"
    )
    assert (route.backend.name, route.rule) == ("n3", Rule.URL)


def test_cookie_then_header(table):
    assert table.route(b"GET", b"/cobrowse/x", b"a=1; gcbSessionServer=n2").rule is Rule.COOKIE
    route = table.route(b"GET", b"/cobrowse/x", None, b"n3")
    assert (route.backend.name, route.rule) == ("n3", Rule.HEADER)
    route = table.route(b"GET", b"/cobrowse/x", b"gcbSessionServer=n1", b"n3")
    assert route.backend.name == "n1"


@pytest.mark.parametrize(
    ("cookie", "expected"),
    [
        (b"gcbSessionServer=n1", [b"n1"]),
        (b"x=1; gcbSessionServer=n1; y=2", [b"n1"]),
        (b"gcbSessionServer=n1; gcbSessionServer=n2", [b"n1", b"n2"]),
        (b"xgcbSessionServer=n1", []),
        (b"gcbSessionServer=", [b""]),
    ],
)
def test_cookie_parsing(cookie, expected):
    assert sticky_cookie_values(cookie) == expected


@pytest.mark.parametrize(
    "cookie",
    [b"gcbSessionServer=nope", b"gcbSessionServer=%00%ff", b"gcbSessionServer=" + b"x" * 5000],
)
def test_garbage_cookies_are_ignored(table, cookie):
    token = token_of(table, "n2")
    route = table.route(b"GET", b"/cobrowse/rest/live/sessions/" + token.encode(), cookie)
    assert (route.backend.name, route.rule) == ("n2", Rule.TOKEN)


def test_duplicate_cookies_the_first_known_node_wins(table):
    route = table.route(b"GET", b"/cobrowse/x", b"gcbSessionServer=bogus; gcbSessionServer=n3")
    assert route.backend.name == "n3"


@pytest.mark.parametrize("kind", ["session", "user"])
def test_tokens_route_to_their_owner_without_cookie(table, kind):
    for node in ("n1", "n2", "n3"):
        token = token_of(table, node, kind).encode()
        path = (
            b"/cobrowse/rest/live/sessions/" + token
            if kind == "session"
            else b"/cobrowse/rest/live/users/" + token + b"/session/stop"
        )
        route = table.route(b"GET", path)
        assert (route.backend.name, route.rule) == (node, Rule.TOKEN)


def test_creates_spread_round_robin_over_primaries(table):
    chosen = [table.route(b"POST", CREATE).backend.name for _ in range(6)]
    assert sorted(chosen) == ["n1", "n1", "n2", "n2", "n3", "n3"]
    assert all(table.route(b"POST", CREATE).rule is Rule.SPREAD for _ in range(3))


def test_a_create_with_the_cookie_of_a_down_or_draining_node_is_redispatched(table):
    take_down(table, "n1")
    drain(table, "n2")
    for _ in range(5):
        route = table.route(b"POST", CREATE, b"gcbSessionServer=n1")
        assert route.backend.name == "n3"
        assert table.route(b"POST", CREATE, b"gcbSessionServer=n2").backend.name == "n3"
        assert table.route(b"POST", b"/n1" + CREATE).backend.name == "n3"


def test_sticky_traffic_still_reaches_a_draining_node(table):
    drain(table, "n2")
    token = token_of(table, "n2").encode()
    assert table.route(b"GET", b"/cobrowse/x", b"gcbSessionServer=n2").backend.name == "n2"
    assert table.route(b"GET", b"/cobrowse/rest/live/sessions/" + token).backend.name == "n2"


def test_sessions_of_a_down_node_are_503_naming_it(table):
    take_down(table, "n2")
    token = token_of(table, "n2").encode()
    with pytest.raises(UnavailableError) as caught:
        table.route(b"GET", b"/cobrowse/rest/live/sessions/" + token, b"gcbSessionServer=n2")
    assert caught.value.node == "n2"
    with pytest.raises(UnavailableError):
        table.route(b"GET", b"/n2/cobrowse/rest/live/sessions/" + token)


def test_a_stale_cookie_does_not_hide_a_live_token_owner(table):
    take_down(table, "n1")
    token = token_of(table, "n3").encode()
    route = table.route(b"GET", b"/cobrowse/rest/live/sessions/" + token, b"gcbSessionServer=n1")
    assert (route.backend.name, route.rule) == ("n3", Rule.TOKEN)


def test_backups_only_when_every_primary_is_down(table):
    assert all(table.route(b"POST", CREATE).backend.name != "spare" for _ in range(9))
    for name in ("n1", "n2", "n3"):
        take_down(table, name)
    assert table.route(b"POST", CREATE).backend.name == "spare"
    take_down(table, "spare")
    with pytest.raises(UnavailableError) as caught:
        table.route(b"POST", CREATE)
    assert caught.value.node is None


@pytest.mark.parametrize(
    "path",
    [
        b"/cobrowse/rest/live/sessions/" + b"9" * 300,
        b"/cobrowse/rest/live/sessions/%E2%82%AC",
        b"/cobrowse/rest/live/users/../../x/session/stop",
        b"/cobrowse/rest/live/sessions/\xff\xfe",
    ],
)
def test_odd_tokens_are_spread_for_the_node_to_refuse(table, path):
    assert table.route(b"GET", path).rule is Rule.SPREAD


def test_spread_honours_weight():
    nodes = (
        NodeSpec("heavy", "127.0.0.1:9001", data_dir=None, weight=3),  # type: ignore[arg-type]
        NodeSpec("light", "127.0.0.1:9002", data_dir=None),  # type: ignore[arg-type]
    )
    table = RoutingTable("/cobrowse", ClusterRing(nodes), backends_for(nodes, RouterSettings()))
    chosen = [table.route(b"POST", CREATE).backend.name for _ in range(40)]
    assert chosen.count("heavy") == 30


# Joining, and the shared store's failover.


@pytest.fixture
def shared_table():
    ring = ClusterRing(NODES)
    return RoutingTable("/cobrowse", ring, backends_for(NODES, RouterSettings()), shared=True)


@pytest.mark.parametrize("shared", [False, True])
def test_join_and_the_channel_route_by_their_token(table, shared_table, shared):
    routing = shared_table if shared else table
    for node in ("n1", "n2", "n3"):
        session = token_of(routing, node).encode()
        user = token_of(routing, node, "user").encode()
        for method, path in [
            (b"POST", b"/cobrowse/rest/live/sessions/" + session + b"/join"),
            (b"POST", b"/cobrowse/rest/live/sessions/" + session + b"/join?x=1"),
            (b"GET", b"/cobrowse/rest/live/users/" + user + b"/channel"),
        ]:
            route = routing.route(method, path)
            assert (route.backend.name, route.rule, route.target) == (node, Rule.TOKEN, path)


def test_without_the_shared_store_a_join_for_a_down_node_is_503_naming_it(table):
    take_down(table, "n2")
    token = token_of(table, "n2").encode()
    with pytest.raises(UnavailableError) as caught:
        table.route(b"POST", b"/cobrowse/rest/live/sessions/" + token + b"/join")
    assert caught.value.node == "n2"


def test_shared_store_prefix_cookie_and_token_of_a_down_node_fail_over(shared_table):
    take_down(shared_table, "n2")
    session = token_of(shared_table, "n2").encode()
    user = token_of(shared_table, "n2", "user").encode()
    requests = [
        (b"GET", b"/n2/cobrowse/rest/live/sessions/" + session, None),
        (b"GET", b"/n2/cobrowse/rest/live/users/" + user + b"/channel", None),
        (b"GET", b"/cobrowse/rest/live/sessions/" + session, b"gcbSessionServer=n2"),
        (b"POST", b"/cobrowse/rest/live/sessions/" + session + b"/join", None),
        (b"GET", b"/cobrowse/rest/live/users/" + user + b"/session/stop", None),
    ]
    chosen = set()
    for method, path, cookie in requests * 4:
        route = shared_table.route(method, path, cookie)
        assert route.rule is Rule.FAILOVER
        assert route.backend.name in ("n1", "n3")  # primaries that are up; never the backup
        # The prefix is removed, as when the node was up.
        assert route.target == path.removeprefix(b"/n2")
        chosen.add(route.backend.name)
    assert chosen == {"n1", "n3"}


def test_shared_store_a_healthy_cluster_keeps_the_preference(shared_table):
    token = token_of(shared_table, "n2").encode()
    assert shared_table.route(b"GET", b"/n3/cobrowse/x").backend.name == "n3"
    route = shared_table.route(b"GET", b"/cobrowse/rest/live/sessions/" + token)
    assert (route.backend.name, route.rule) == ("n2", Rule.TOKEN)
    drain(shared_table, "n2")  # draining keeps its sticky traffic, shared store or not
    assert shared_table.route(b"GET", b"/n2/cobrowse/x").backend.name == "n2"
    assert shared_table.route(b"GET", b"/cobrowse/rest/live/sessions/" + token).backend.name == (
        "n2"
    )


def test_shared_store_failover_prefers_nodes_taking_sessions_then_draining_then_backups(
    shared_table,
):
    take_down(shared_table, "n1")
    drain(shared_table, "n2")
    assert {shared_table.route(b"GET", b"/n1/cobrowse/x").backend.name for _ in range(6)} == {"n3"}
    take_down(shared_table, "n3")
    assert shared_table.route(b"GET", b"/n1/cobrowse/x").backend.name == "n2"  # draining, up
    take_down(shared_table, "n2")
    assert shared_table.route(b"GET", b"/n1/cobrowse/x").backend.name == "spare"
    take_down(shared_table, "spare")
    with pytest.raises(UnavailableError) as caught:
        shared_table.route(b"GET", b"/n1/cobrowse/x")
    assert caught.value.node == "n1"
