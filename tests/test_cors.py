"""Cross-origin control: allowedOrigins, Origin or Referer, preflights, never echo refusals."""

from __future__ import annotations

import pytest

from tests.conftest import ALLOWED

LIVE = "/cobrowse/rest/live"
CORS_HEADERS = ("Access-Control-Allow-Origin", "Access-Control-Allow-Credentials")


@pytest.fixture
def token(client):
    return client.simulate_post(f"{LIVE}/sessions").json["sessionToken"]


@pytest.mark.parametrize(
    ("headers", "status", "echo"),
    [
        ({"Origin": ALLOWED}, 200, ALLOWED),
        ({"Origin": "https://app.example.com"}, 200, "https://app.example.com"),
        ({"Origin": "https://a.b.example.com"}, 200, "https://a.b.example.com"),
        ({"Referer": "http://localhost:8080/page?x=1"}, 200, ALLOWED),
        ({"Origin": "http://evil.test"}, 403, None),
        ({"Origin": "https://example.com"}, 403, None),  # *.example.com is not the apex
        ({"Origin": "http://app.example.com"}, 403, None),  # wrong scheme
        ({"Origin": "https://example.com.evil.test"}, 403, None),  # lookalike
        ({"Origin": "https://evilexample.com"}, 403, None),
        ({"Origin": "http://localhost:8081"}, 403, None),  # wrong port
        ({"Origin": "null"}, 403, None),
        ({"Referer": "localhost:8080/page"}, 403, None),  # no scheme
        ({"Referer": "http://evil.test/page"}, 403, None),
        ({}, 403, None),  # Get Session needs an origin
    ],
)
def test_get_session_origin_matrix(client, token, headers, status, echo):
    result = client.simulate_get(f"{LIVE}/sessions/{token}", headers=headers)
    assert result.status_code == status, result.text
    if echo is None:
        for name in CORS_HEADERS:
            assert name not in result.headers
        assert result.json["errorMessage"]
    else:
        assert result.headers["Access-Control-Allow-Origin"] == echo
        assert result.headers["Access-Control-Allow-Credentials"] == "true"
        assert "gcbSessionServer" in result.headers["Access-Control-Expose-Headers"]
    assert "Origin" in result.headers.get("Vary", "")


def test_star_allows_any_origin_but_echoes_it(make_client):
    client = make_client(cross_origin={"allowedOrigins": "*"})
    token = client.simulate_post(f"{LIVE}/sessions").json["sessionToken"]
    result = client.simulate_get(f"{LIVE}/sessions/{token}", headers={"Origin": "http://any.test"})
    assert result.status_code == 200
    assert result.headers["Access-Control-Allow-Origin"] == "http://any.test"
    refused = client.simulate_get(f"{LIVE}/sessions/{token}", headers={"Origin": "null"})
    assert refused.status_code == 403


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", f"{LIVE}/sessions"), ("GET", f"{LIVE}/users/{{user}}/session/stop")],
)
def test_create_and_stop_refuse_bad_origins_and_accept_none(client, method, path):
    user = client.simulate_post(f"{LIVE}/sessions").json["userToken"]
    url = path.format(user=user)
    refused = client.simulate_request(method, url, headers={"Origin": "http://evil.test"})
    assert refused.status_code == 403
    assert "Access-Control-Allow-Origin" not in refused.headers
    assert client.simulate_request(method, url).status_code == 200
    allowed = client.simulate_request(method, url, headers={"Origin": ALLOWED})
    assert allowed.status_code == 200
    assert allowed.headers["Access-Control-Allow-Origin"] == ALLOWED


@pytest.mark.parametrize(
    ("path", "method"),
    [
        (f"{LIVE}/sessions", "POST"),
        (f"{LIVE}/sessions/123456789", "GET"),
        (f"{LIVE}/users/1aaaaaaaaaaaaaaaaaaaaaa/session/stop", "GET"),
    ],
)
def test_preflight_allowed(client, path, method):
    result = client.simulate_options(
        path,
        headers={
            "Origin": ALLOWED,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "content-type, x-csrf-token",
        },
    )
    assert result.status_code == 200
    assert result.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert method in result.headers["Access-Control-Allow-Methods"]
    allowed_headers = result.headers["Access-Control-Allow-Headers"].lower()
    for name in ("content-type", "x-csrf-token", "x-support-csrfp", "gcbsessionserver"):
        assert name in allowed_headers
    assert int(result.headers["Access-Control-Max-Age"]) > 0


def test_preflight_refused_has_no_cors_headers(client):
    result = client.simulate_options(
        f"{LIVE}/sessions",
        headers={"Origin": "http://evil.test", "Access-Control-Request-Method": "POST"},
    )
    assert result.status_code == 403
    for name in (*CORS_HEADERS, "Access-Control-Allow-Methods"):
        assert name not in result.headers


def test_preflight_for_a_method_the_resource_lacks_is_refused(client):
    result = client.simulate_options(
        f"{LIVE}/sessions",
        headers={"Origin": ALLOWED, "Access-Control-Request-Method": "DELETE"},
    )
    assert result.status_code == 403
