"""The OpenAPI contract: it lists exactly the routes there are, and real answers conform to it."""

from __future__ import annotations

import json
import re
from typing import Any

import falcon.inspect
import jsonschema_rs
import pytest

from cobrowse.sessions.ring import ClusterRing
from cobrowse.web.openapi import EXAMPLE_SESSION_TOKEN, EXAMPLE_USER_TOKEN, build_document
from lb.admin import ENDPOINTS, METHODS
from lb.openapi import build_router_document
from tests.conftest import ALLOWED

LIVE = "/cobrowse/rest/live"
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
EXAMPLES = {"session_token": EXAMPLE_SESSION_TOKEN, "user_token": EXAMPLE_USER_TOKEN}


def placeholders(path: str) -> str:
    """Name every path parameter `{}`: Falcon says `{session_token}`, the document the API name."""
    return re.sub(r"\{[^}]*\}", "{}", path)


def methods_of(path_item: dict[str, Any]) -> set[str]:
    return {method.upper() for method in path_item if method in HTTP_METHODS}


def documented_paths(document: dict[str, Any]) -> dict[str, set[str]]:
    return {placeholders(path): methods_of(item) for path, item in document["paths"].items()}


def routed_paths(client) -> dict[str, set[str]]:
    """Return the app's routes and the methods it answers on purpose.

    Falcon answers OPTIONS on every route; it belongs to the contract where the CORS middleware
    answers preflights, which a preflight from an allowed origin shows.
    """
    routes: dict[str, set[str]] = {}
    for route in falcon.inspect.inspect_app(client.app).routes:
        methods = {method.method for method in route.methods if not method.internal}
        concrete = re.sub(r"\{(\w+)\}", lambda match: EXAMPLES[match[1]], route.path)
        preflight = client.simulate_options(
            concrete,
            headers={"Origin": ALLOWED, "Access-Control-Request-Method": sorted(methods)[0]},
        )
        if "Access-Control-Allow-Methods" in preflight.headers:
            methods.add("OPTIONS")
        routes[placeholders(route.path)] = methods
    return routes


@pytest.mark.parametrize(
    ("context", "overrides"),
    [
        ("/cobrowse", {}),
        ("/cb/v2", {"cluster": {"url": "http://127.0.0.1:8700/cb/v2"}}),
        ("/cobrowse", {"metrics": {"enabled": "false"}}),
    ],
)
def test_every_route_is_documented_and_every_documented_path_is_routed(
    make_client, context, overrides
):
    client = make_client(**overrides)
    served = client.simulate_get(f"{context}/openapi.json")
    assert served.status_code == 200
    documented = documented_paths(served.json)
    assert all(path.startswith(f"{context}/") for path in documented)
    assert routed_paths(client) == documented


def test_the_router_endpoints_are_documented_as_lb_admin_answers_them():
    expected = {method.decode() for method in METHODS}
    router = documented_paths(build_router_document("http://127.0.0.1:8700"))
    assert router == {path.decode(): expected for path in ENDPOINTS}


def test_a_node_document_lists_no_router_endpoint(client):
    # A node answers /health, /lb/... with 404: its document must not promise them.
    paths = client.simulate_get("/cobrowse/openapi.json").json["paths"]
    assert not [path for path in paths if path == "/health" or path.startswith("/lb/")]


def test_a_node_serves_the_repository_document_with_its_own_settings(client):
    served = client.simulate_get("/cobrowse/openapi.json").json
    # BASE_CLUSTER: the router on the cluster URL's port, and an exact allowed origin.
    assert served == build_document(example_origin=ALLOWED)


@pytest.mark.parametrize(
    "document", [build_document(), build_router_document("http://127.0.0.1:8700")]
)
def test_the_document_is_valid_openapi_and_every_reference_resolves(document):
    import schemathesis  # slow to import: only here

    schemathesis.openapi.from_dict(document).validate()
    for reference in re.findall(r'"\$ref": "#/([^"]+)"', json.dumps(document)):
        target: Any = document
        for part in reference.split("/"):
            target = target[part]


# Real answers against the document.


def resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def assert_conforms(document: dict[str, Any], response: dict[str, Any], result) -> None:
    """Check headers, media type and body of `result` against one documented response."""
    response = resolve(document, response)
    for name, declared in response.get("headers", {}).items():
        header = resolve(document, declared)
        value = result.headers.get(name)
        if header.get("required"):
            assert value is not None, f"required header {name} missing"
        if value is not None:
            validator = jsonschema_rs.Draft202012Validator(header["schema"])
            assert validator.is_valid(value), f"{name}: {value!r}"
    content = response.get("content")
    if not content:
        assert result.content == b""
        return
    media_type = result.headers["Content-Type"].split(";")[0].strip()
    assert media_type in content
    if media_type == "application/json":
        schema = {**content[media_type]["schema"], "components": document["components"]}
        jsonschema_rs.Draft202012Validator(schema).validate(result.json)


def assert_operation_conforms(document, method: str, path: str, result) -> None:
    operation = document["paths"][path][method.lower()]
    status = str(result.status_code)
    assert status in operation["responses"], f"{method} {path}: {status} is undocumented"
    assert_conforms(document, operation["responses"][status], result)


@pytest.fixture
def document():
    return build_document(example_origin=ALLOWED)


@pytest.fixture
def ring(make_settings):
    return ClusterRing(make_settings().cluster.nodes)


def first_token_of(ring: ClusterRing, node: str, make: Any) -> str:
    return next(token for n in range(1000) if ring.owner(token := make(n)) == node)


SESSION = f"{LIVE}/sessions/{{sessionToken}}"
STOP = f"{LIVE}/users/{{userToken}}/session/stop"
PING = f"{LIVE}/users/{{userToken}}/ping"
CAPTURE = f"{LIVE}/users/{{userToken}}/screen-capture"


def test_a_session_lifecycle_conforms(client, document):
    created = client.simulate_post(f"{LIVE}/sessions", headers={"X-Support-CSRFP": "true"})
    assert created.status_code == 200
    assert "X-CSRF-Token" in created.headers
    assert_operation_conforms(document, "POST", f"{LIVE}/sessions", created)
    body = created.json
    csrf = {"X-CSRF-Token": created.headers["X-CSRF-Token"]}
    session = f"{LIVE}/sessions/{body['sessionToken']}"
    user = f"{LIVE}/users/{body['userToken']}"
    calls = [
        ("GET", SESSION, client.simulate_get(session, headers={"Origin": ALLOWED}), 200),
        ("GET", SESSION, client.simulate_get(session), 403),
        ("GET", PING, client.simulate_get(f"{user}/ping", headers=csrf), 200),
        ("GET", PING, client.simulate_get(f"{user}/ping"), 403),
        (
            "POST",
            CAPTURE,
            client.simulate_post(
                f"{user}/screen-capture", json={"screen-capture": "pause"}, headers=csrf
            ),
            409,
        ),
        (
            "POST",
            CAPTURE,
            client.simulate_post(
                f"{user}/screen-capture", json={"screen-capture": "start"}, headers=csrf
            ),
            200,
        ),
        ("GET", STOP, client.simulate_get(f"{user}/session/stop", headers=csrf), 200),
        ("GET", PING, client.simulate_get(f"{user}/ping", headers=csrf), 401),
        ("GET", SESSION, client.simulate_get(session, headers={"Origin": ALLOWED}), 404),
    ]
    for method, path, result, status in calls:
        assert result.status_code == status, (method, path, result.text)
        assert_operation_conforms(document, method, path, result)


def test_malformed_requests_conform(client, document):
    oversized = b'{"screen-capture": "' + b"x" * 70_000 + b'"}'
    user = f"{LIVE}/users/{EXAMPLE_USER_TOKEN}"
    calls = [
        ("GET", SESSION, client.simulate_get(f"{LIVE}/sessions/12", headers={"Origin": ALLOWED})),
        ("GET", STOP, client.simulate_get(f"{LIVE}/users/x.y/session/stop")),
        (
            "POST",
            f"{LIVE}/sessions",
            client.simulate_post(f"{LIVE}/sessions", body="[1]", content_type="application/json"),
        ),
        (
            "POST",
            f"{LIVE}/sessions",
            client.simulate_post(f"{LIVE}/sessions", body="x=1", content_type="text/plain"),
        ),
        (
            "POST",
            CAPTURE,
            client.simulate_post(
                f"{user}/screen-capture", body=oversized, content_type="application/json"
            ),
        ),
        (
            "POST",
            f"{LIVE}/sessions",
            client.simulate_post(f"{LIVE}/sessions", headers={"Origin": "null"}),
        ),
    ]
    assert [result.status_code for *_, result in calls] == [400, 400, 400, 415, 413, 403]
    for method, path, result in calls:
        assert_operation_conforms(document, method, path, result)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # a shared store serves them
def test_tokens_hosted_elsewhere_conform(make_client, ring, document):
    client = make_client("node-1")
    for node, status in (("node-2", 307), ("node-3", 421)):
        token = first_token_of(ring, node, lambda n: f"{100_000_000 + n}")
        result = client.simulate_get(f"{LIVE}/sessions/{token}", headers={"Origin": ALLOWED})
        assert result.status_code == status
        assert_operation_conforms(document, "GET", SESSION, result)


def test_rate_limited_answers_conform(make_client, document):
    client = make_client(security={"rateLimit.sessions.create": "1"})
    statuses = []
    for _ in range(2):
        result = client.simulate_post(f"{LIVE}/sessions")
        statuses.append(result.status_code)
        assert_operation_conforms(document, "POST", f"{LIVE}/sessions", result)
    assert statuses == [200, 429]


@pytest.mark.parametrize(
    ("origin", "status"), [(ALLOWED, 200), ("http://evil.test", 403), (None, 200)]
)
def test_preflights_conform(client, document, origin, status):
    headers = {"Access-Control-Request-Method": "GET"}
    if origin is not None:
        headers["Origin"] = origin
    result = client.simulate_options(f"{LIVE}/sessions/{EXAMPLE_SESSION_TOKEN}", headers=headers)
    assert result.status_code == status
    assert_operation_conforms(document, "OPTIONS", SESSION, result)


def test_operations_endpoints_conform(client, document):
    for method, path in (
        ("GET", "/cobrowse/health"),
        ("HEAD", "/cobrowse/health"),
        ("GET", "/cobrowse/metrics"),
        ("GET", "/cobrowse/openapi.json"),
    ):
        result = client.simulate_request(method, path)
        assert result.status_code == 200
        assert_operation_conforms(document, method, path, result)


def test_an_undocumented_method_answers_the_documented_405(client, document):
    result = client.simulate_delete(f"{LIVE}/sessions")
    assert result.status_code == 405
    assert_conforms(document, document["components"]["responses"]["MethodNotAllowed"], result)
    assert set(result.headers["Allow"].replace(" ", "").split(",")) == {"POST", "OPTIONS"}
