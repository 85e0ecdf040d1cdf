"""The OpenAPI 3.1 contract of a node's API (the router's is `lb/openapi.py`).

`build_document()` returns it for the default context path `/cobrowse`; `document_for(settings)`
returns it for one node, which serves it at `<context>/openapi.json`.
`python -m cobrowse.web.openapi` prints it. `tests/test_openapi.py` fails when the routes and
this document disagree, and `tests/integration/test_schemathesis.py` fuzzes a live node with it.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from cobrowse.config.origins import OPERATIONS
from cobrowse.config.settings import DEFAULT_CONTEXT_PATH, NodeSettings
from cobrowse.sessions.screencapture import ACTIONS
from cobrowse.sessions.tokens import (
    ISSUED_SESSION_TOKEN,
    ISSUED_USER_TOKEN,
    SESSION_TOKEN,
    USER_TOKEN,
)

# Tokens exactly as the node validates them (in requests) and issues them (in answers); in
# ECMA-262 patterns `$` ends the string, as the node's `fullmatch` does.
SESSION_TOKEN_PATTERN = SESSION_TOKEN.pattern
USER_TOKEN_PATTERN = USER_TOKEN.pattern
ISSUED_SESSION_TOKEN_PATTERN = ISSUED_SESSION_TOKEN.pattern
ISSUED_USER_TOKEN_PATTERN = ISSUED_USER_TOKEN.pattern
EXAMPLE_SESSION_TOKEN = "145006310"  # noqa: S105 (a format example, not a secret)
EXAMPLE_USER_TOKEN = "1Xc0aZ3b4c5d6e7f8g9h0iQ"  # noqa: S105 (a format example, not a secret)
EXAMPLE_ORIGIN = "https://www.example.com"

JSON = "application/json"
Schema = dict[str, Any]


def ref(kind: str, name: str) -> Schema:
    return {"$ref": f"#/components/{kind}/{name}"}


def error_response(description: str, *headers: str) -> Schema:
    """A response whose body is the one error shape, with `headers` from the components.

    A header is named as in the response, `Name` or `Name:Component` when the component differs.
    """
    response: Schema = {
        "description": description,
        "headers": {"X-Request-ID": ref("headers", "X-Request-ID")},
        "content": {JSON: {"schema": ref("schemas", "Error")}},
    }
    for header in headers:
        name, _, component = header.partition(":")
        response["headers"][name] = ref("headers", component or name)
    return response


def _ok(description: str, schema: Schema | None = None, **headers: Schema) -> Schema:
    response: Schema = {
        "description": description,
        "headers": {"X-Request-ID": ref("headers", "X-Request-ID"), **headers},
    }
    if schema is not None:
        response["content"] = {JSON: {"schema": schema}}
    return response


CORS_HEADERS = {
    name: ref("headers", name)
    for name in (
        "Access-Control-Allow-Origin",
        "Access-Control-Allow-Credentials",
        "Access-Control-Expose-Headers",
    )
}


def _api_operation(
    operation_id: str,
    summary: str,
    tag: str,
    parameters: list[Schema],
    responses: dict[str, Schema],
    *,
    request_body: Schema | None = None,
) -> Schema:
    """An operation under CORS control and rate limits: their errors come with it."""
    common = {
        "403": ref("responses", "Forbidden"),
        "429": ref("responses", "RateLimited"),
        "503": ref("responses", "StoreUnavailable"),
    }
    operation: Schema = {
        "operationId": operation_id,
        "summary": summary,
        "tags": [tag],
        "parameters": [*parameters, *_common_request_headers()],
        "responses": dict(sorted({**common, **responses}.items())),
    }
    if request_body is not None:
        operation["requestBody"] = request_body
    return operation


def _common_request_headers() -> list[Schema]:
    return [
        ref("parameters", "Referer"),
        ref("parameters", "X-Request-ID"),
        ref("parameters", "gcbSessionServerHeader"),
        ref("parameters", "gcbSessionServerCookie"),
    ]


def _preflight(operation_id: str, token: str | None = None) -> Schema:
    """A CORS preflight; it never looks at the token in the path, so any string will do."""
    any_token = (
        []
        if token is None
        else [{"name": token, "in": "path", "required": True, "schema": {"type": "string"}}]
    )
    return {
        "operationId": operation_id,
        "summary": "CORS preflight; without Origin and Access-Control-Request-Method, Allow.",
        "tags": ["cors"],
        "parameters": [
            *any_token,
            ref("parameters", "OptionalOrigin"),
            ref("parameters", "Access-Control-Request-Method"),
            ref("parameters", "Access-Control-Request-Headers"),
        ],
        "responses": {
            "200": {
                "description": "The preflight passed (CORS headers), or the methods (`Allow`).",
                "headers": {
                    "X-Request-ID": ref("headers", "X-Request-ID"),
                    "Allow": {"schema": {"type": "string"}},
                    "Access-Control-Allow-Origin": ref("headers", "Access-Control-Allow-Origin"),
                    "Access-Control-Allow-Methods": {"schema": {"type": "string"}},
                    "Access-Control-Allow-Headers": {"schema": {"type": "string"}},
                    "Access-Control-Max-Age": {"schema": {"type": "string", "pattern": "^[0-9]+$"}},
                },
            },
            "403": ref("responses", "Forbidden"),
        },
    }


def _elsewhere() -> dict[str, Schema]:
    return {"307": ref("responses", "Redirect"), "421": ref("responses", "Misdirected")}


def _user_operations(live: str) -> dict[str, Schema]:
    user = [ref("parameters", "X-CSRF-Token")]
    token = [ref("parameters", "userToken")]
    csrf = "a session created with `X-Support-CSRFP: true` needs its `X-CSRF-Token`"
    return {
        f"{live}/users/{{userToken}}/session/stop": {
            "parameters": token,
            "get": _api_operation(
                "sessionsStop",
                "Stop Session; repeating it returns the recorded times.",
                "controller",
                user,
                {
                    "200": _ok("The session's times, UTC ms.", ref("schemas", "StoppedSession")),
                    "400": ref("responses", "BadRequest"),
                    "403": error_response(f"Origin refused, or {csrf}."),
                    "404": ref("responses", "NotFound"),
                    **_elsewhere(),
                },
            ),
            "options": _preflight("sessionsStopPreflight", "userToken"),
        },
        f"{live}/users/{{userToken}}/ping": {
            "parameters": token,
            "get": _api_operation(
                "sessionsPing",
                "Keepalive: resets the inactivity timer of a live session.",
                "controller",
                user,
                {
                    "200": _ok("The session is live (empty body)."),
                    "400": ref("responses", "BadRequest"),
                    "401": error_response(
                        "The session has ended: create a new one.", "WWW-Authenticate"
                    ),
                    "403": error_response(f"Origin refused, or {csrf}."),
                    "404": ref("responses", "NotFound"),
                    **_elsewhere(),
                },
            ),
            "options": _preflight("sessionsPingPreflight", "userToken"),
        },
        f"{live}/users/{{userToken}}/screen-capture": {
            "parameters": token,
            "post": _api_operation(
                "sessionsScreenCapture",
                "Screen-capture control: start, stop, pause, resume or query.",
                "controller",
                user,
                {
                    "200": _ok("The state after the action.", ref("schemas", "ScreenCapture")),
                    "400": ref("responses", "BadRequest"),
                    "403": error_response(f"Origin refused, or {csrf}."),
                    "404": ref("responses", "NotFound"),
                    "409": error_response(
                        "An impossible transition; the body names the current state."
                    ),
                    "413": ref("responses", "TooLarge"),
                    "415": ref("responses", "UnsupportedMediaType"),
                    **_elsewhere(),
                },
                request_body={
                    "required": True,
                    "content": {JSON: {"schema": ref("schemas", "ScreenCaptureAction")}},
                },
            ),
            "options": _preflight("sessionsScreenCapturePreflight", "userToken"),
        },
    }


def _created_links(example_origin: str) -> dict[str, Schema]:
    """What a client does next with a new session: the links schemathesis follows, too."""
    # Sessions created with `X-Support-CSRFP: true` answer these with 403: links cannot pass an
    # optional response header on.
    user = {"userToken": "$response.body#/userToken"}
    return {
        "GetSession": {
            "operationId": "sessionsGet",
            "parameters": {
                "sessionToken": "$response.body#/sessionToken",
                "header.Origin": example_origin,
            },
        },
        "JoinSession": {
            "operationId": "sessionsJoin",
            "parameters": {
                "sessionToken": "$response.body#/sessionToken",
                "header.Origin": example_origin,
            },
        },
        "StopSession": {"operationId": "sessionsStop", "parameters": user},
        "Ping": {"operationId": "sessionsPing", "parameters": user},
        "ScreenCapture": {"operationId": "sessionsScreenCapture", "parameters": user},
    }


def _session_operations(live: str, example_origin: str) -> dict[str, Schema]:
    created_headers: dict[str, Schema] = {
        "gcbSessionServer": {
            "required": True,
            "description": "The node's name, for browsers that block third-party cookies.",
            "schema": {"type": "string"},
        },
        "Set-Cookie": {
            "required": True,
            "description": "`gcbSessionServer=<node>; Path=<context>; HttpOnly` and SameSite.",
            "schema": {"type": "string", "pattern": "^gcbSessionServer="},
        },
        "X-CSRF-Token": {
            "description": "Only when the request carried `X-Support-CSRFP: true`.",
            "schema": {"type": "string"},
        },
        **CORS_HEADERS,
    }
    return {
        f"{live}/sessions": {
            "post": _api_operation(
                "sessionsCreate",
                "Create Session on this node.",
                "sessions",
                [ref("parameters", "OptionalOrigin"), ref("parameters", "X-Support-CSRFP")],
                {
                    "200": {
                        **_ok(
                            "The new session; the node sticks the client with a cookie and a "
                            "header.",
                            ref("schemas", "CreatedSession"),
                            **created_headers,
                        ),
                        "links": _created_links(example_origin),
                    },
                    "400": ref("responses", "BadRequest"),
                    "413": ref("responses", "TooLarge"),
                    "415": ref("responses", "UnsupportedMediaType"),
                },
                request_body={
                    "required": False,
                    "description": "Empty, or a JSON object; `userData` attaches data.",
                    "content": {
                        JSON: {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "userData": {
                                        "type": "object",
                                        "maxProperties": 32,
                                        "propertyNames": {"minLength": 1, "maxLength": 64},
                                        "additionalProperties": {
                                            "type": "string",
                                            "maxLength": 1024,
                                        },
                                    }
                                },
                            }
                        }
                    },
                },
            ),
            "options": _preflight("sessionsCreatePreflight"),
        },
        f"{live}/sessions/{{sessionToken}}": {
            "parameters": [ref("parameters", "sessionToken")],
            "get": _api_operation(
                "sessionsGet",
                "Get Session: needs an allowed Origin (or Referer).",
                "sessions",
                [ref("parameters", "RequiredOrigin")],
                {
                    "200": _ok("The live session.", ref("schemas", "Session"), **CORS_HEADERS),
                    "400": ref("responses", "BadRequest"),
                    "404": ref("responses", "NotFound"),
                    **_elsewhere(),
                },
            ),
            "options": _preflight("sessionsGetPreflight", "sessionToken"),
        },
        f"{live}/sessions/{{sessionToken}}/join": {
            "parameters": [ref("parameters", "sessionToken")],
            "post": _api_operation(
                "sessionsJoin",
                "Join Session as an agent (REALTIME.md): then open the channel with the "
                "userToken. Needs an allowed Origin (or Referer); rate-limited by default.",
                "sessions",
                [ref("parameters", "RequiredOrigin")],
                {
                    "200": _ok(
                        "The agent's tokens.", ref("schemas", "JoinedSession"), **CORS_HEADERS
                    ),
                    "400": ref("responses", "BadRequest"),
                    "404": ref("responses", "NotFound"),
                    "409": error_response("The session already has `[session] maxAgents` agents."),
                    "413": ref("responses", "TooLarge"),
                    "415": ref("responses", "UnsupportedMediaType"),
                    **_elsewhere(),
                },
                request_body={
                    "required": False,
                    "description": 'Empty, or `{"name": <display name, at most 64 characters>}`.',
                    "content": {
                        JSON: {
                            "schema": {
                                "type": "object",
                                "properties": {"name": {"type": "string", "maxLength": 64}},
                            }
                        }
                    },
                },
            ),
            "options": _preflight("sessionsJoinPreflight", "sessionToken"),
        },
    }


def _node_operations(context: str, *, metrics: bool) -> dict[str, Schema]:
    health_responses = {
        "200": _ok(
            "Ready (empty body).",
            **{
                "X-Cobrowse-Live-Sessions": {
                    "required": True,
                    "schema": {"type": "string", "pattern": "^[0-9]+$"},
                },
                **CORS_HEADERS,
            },
        ),
        "403": ref("responses", "Forbidden"),
        "404": error_response("Draining: no new sessions, sticky traffic continues."),
        "429": ref("responses", "RateLimited"),
        "503": error_response("Not ready: the store is unavailable or the node is shutting down."),
    }
    health = {
        "tags": ["operations"],
        "parameters": [ref("parameters", "OptionalOrigin"), ref("parameters", "X-Request-ID")],
        "responses": health_responses,
    }
    paths: dict[str, Schema] = {
        f"{context}/health": {
            "get": {"operationId": "healthGet", "summary": "Readiness probe.", **health},
            "head": {"operationId": "healthHead", "summary": "Readiness probe.", **health},
            "options": _preflight("healthPreflight"),
        },
        f"{context}/openapi.json": {
            "get": {
                "operationId": "openapiGet",
                "summary": "This document, for this node's context path.",
                "tags": ["operations"],
                "responses": {"200": _ok("The OpenAPI document.", {"type": "object"})},
            }
        },
    }
    if metrics:
        paths[f"{context}/metrics"] = {
            "get": {
                "operationId": "metricsGet",
                "summary": "Prometheus metrics, summed over the node's workers.",
                "tags": ["operations"],
                "responses": {
                    "200": {
                        "description": "The Prometheus text format.",
                        "headers": {"X-Request-ID": ref("headers", "X-Request-ID")},
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        }
    return paths


def _parameters(example_origin: str) -> dict[str, Schema]:
    def header(name: str, description: str, **schema: Any) -> Schema:
        return {
            "name": name,
            "in": "header",
            "description": description,
            "schema": {"type": "string", **schema},
        }

    origin = "The calling page's origin, checked against `[cross-origin] allowedOrigins`."
    return {
        "sessionToken": {
            "name": "sessionToken",
            "in": "path",
            "required": True,
            "description": (
                "Exactly 9 digits, as the customer read them out. The node issues tokens whose "
                "first digit is the ring epoch plus one; any other 9 digits are simply not a "
                "live session (404)."
            ),
            "schema": {"type": "string", "pattern": SESSION_TOKEN_PATTERN},
            "example": EXAMPLE_SESSION_TOKEN,
        },
        "userToken": {
            "name": "userToken",
            "in": "path",
            "required": True,
            "description": (
                "Up to 64 URL-safe characters. The node issues a digit (ring epoch plus one) "
                "then 22 URL-safe base64 characters; anything else URL-safe is simply not a "
                "live token (404)."
            ),
            "schema": {"type": "string", "pattern": USER_TOKEN_PATTERN},
            "example": EXAMPLE_USER_TOKEN,
        },
        "RequiredOrigin": {
            **header("Origin", origin + " Get Session also accepts an allowed Referer instead."),
            "required": True,
            "example": example_origin,
        },
        "OptionalOrigin": {
            **header("Origin", origin + " Server-to-server callers may send none."),
            "example": example_origin,
        },
        "Referer": header(
            "Referer", "Used for its origin when there is no Origin; needs a scheme and a host."
        ),
        "X-Request-ID": header(
            "X-Request-ID",
            "Kept when at most 255 letters, digits and dashes; otherwise the node makes one.",
        ),
        "X-CSRF-Token": header(
            "X-CSRF-Token", "Required by sessions created with `X-Support-CSRFP: true`."
        ),
        "X-Support-CSRFP": {
            **header("X-Support-CSRFP", "`true` asks for an `X-CSRF-Token` for this session."),
            "example": "true",
        },
        "gcbSessionServerHeader": header(
            "gcbSessionServer", "Stickiness for load balancers; the node ignores it."
        ),
        "gcbSessionServerCookie": {
            "name": "gcbSessionServer",
            "in": "cookie",
            "description": "Stickiness for load balancers; the node ignores it.",
            "schema": {"type": "string"},
        },
        "Access-Control-Request-Method": header(
            "Access-Control-Request-Method", "The method of the request the browser will make."
        ),
        "Access-Control-Request-Headers": header(
            "Access-Control-Request-Headers", "The headers it will send."
        ),
    }


def _schemas() -> dict[str, Schema]:
    capture_state = {"type": "string", "enum": ["enabled", "disabled", "paused"]}
    milliseconds = {"type": "integer", "minimum": 0, "description": "UTC epoch milliseconds"}
    return {
        "Error": {
            "type": "object",
            "description": "Every error has this one shape, and never a stack trace.",
            "required": ["errorMessage"],
            "properties": {
                "errorMessage": {"type": "string", "description": "For people."},
                "request": {
                    "type": "string",
                    "enum": list(OPERATIONS),
                    "description": "The operation, when one was identified.",
                },
                "node": {"type": "string", "description": "The node that hosts the token."},
                "screen-capture": capture_state,
            },
            "additionalProperties": False,
        },
        "CreatedSession": {
            "type": "object",
            "required": ["sessionToken", "sessionServerName", "userToken"],
            "properties": {
                "sessionToken": {"type": "string", "pattern": ISSUED_SESSION_TOKEN_PATTERN},
                "sessionServerName": {"type": "string"},
                "userToken": {"type": "string", "pattern": ISSUED_USER_TOKEN_PATTERN},
                "sessionServerUrl": {
                    "type": "string",
                    "description": "The node's serverUrl: open the channel under it.",
                },
            },
            "additionalProperties": False,
        },
        "Session": {
            "type": "object",
            "required": ["sessionToken", "sessionServerName", "screenCapture"],
            "properties": {
                "sessionToken": {"type": "string", "pattern": ISSUED_SESSION_TOKEN_PATTERN},
                "sessionServerName": {"type": "string"},
                "sessionServerUrl": {"type": "string", "description": "The node's serverUrl."},
                "screenCapture": capture_state,
            },
            "additionalProperties": False,
        },
        "JoinedSession": {
            "type": "object",
            "required": ["userToken", "userId", "sessionToken", "sessionServerName", "userData"],
            "properties": {
                "userToken": {"type": "string", "pattern": ISSUED_USER_TOKEN_PATTERN},
                "userId": {"type": "string"},
                "sessionToken": {"type": "string", "pattern": ISSUED_SESSION_TOKEN_PATTERN},
                "sessionServerName": {"type": "string"},
                "sessionServerUrl": {"type": "string", "description": "The node's serverUrl."},
                "userData": {
                    "type": "object",
                    "additionalProperties": {"type": "string"},
                    "description": "The attached data agents may read.",
                },
            },
            "additionalProperties": False,
        },
        "StoppedSession": {
            "type": "object",
            "required": ["activationTime", "deactivationTime"],
            "properties": {"activationTime": milliseconds, "deactivationTime": milliseconds},
            "additionalProperties": False,
        },
        "ScreenCaptureAction": {
            "type": "object",
            "required": ["screen-capture"],
            "properties": {"screen-capture": {"type": "string", "enum": list(ACTIONS)}},
        },
        "ScreenCapture": {
            "type": "object",
            "required": ["screen-capture"],
            "properties": {"screen-capture": capture_state},
            "additionalProperties": False,
        },
    }


def _responses() -> dict[str, Schema]:
    return {
        "BadRequest": error_response("A malformed token or body."),
        "Forbidden": error_response("The origin, or the operation for this origin, is refused."),
        "NotFound": error_response("No such live session or userToken."),
        "MethodNotAllowed": error_response(
            "Any method a path does not list (its `Allow` names those it does).", "Allow"
        ),
        "TooLarge": error_response("The body is over `[security] maxBodySize`."),
        "UnsupportedMediaType": error_response("A body that is not `application/json`."),
        "RateLimited": error_response(
            "The client is in quarantine for this operation (`Retry-After`, unless forever).",
            "Retry-After:OptionalRetryAfter",
        ),
        "StoreUnavailable": error_response(
            "The session store is unusable right now.", "Retry-After"
        ),
        "Redirect": error_response(
            "The token is hosted on another node: repeat the request at `Location`.", "Location"
        ),
        "Misdirected": error_response("The token is hosted on another node that has no serverUrl."),
    }


def response_headers() -> dict[str, Schema]:
    def header(description: str, required: bool = True, **schema: Any) -> Schema:
        return {
            "description": description,
            "required": required,
            "schema": {"type": "string", **schema},
        }

    cors = "Present when the request carried an allowed origin."
    return {
        "X-Request-ID": header("The request's ID: the client's when sane, else a new one."),
        "Retry-After": header("Seconds to wait.", pattern="^[0-9]+$"),
        "OptionalRetryAfter": header("Seconds to wait.", required=False, pattern="^[0-9]+$"),
        "Location": header("The same path and query on the owner's serverUrl."),
        "Allow": header("The methods of this path."),
        "WWW-Authenticate": header('`Cobrowse realm="cobrowse", error="session_ended"`.'),
        "Access-Control-Allow-Origin": header(cors + " The origin, never `*`.", required=False),
        "Access-Control-Allow-Credentials": header(cors, required=False, enum=["true"]),
        "Access-Control-Expose-Headers": header(cors, required=False),
    }


def build_document(
    context_path: str = DEFAULT_CONTEXT_PATH,
    *,
    example_origin: str = EXAMPLE_ORIGIN,
    metrics: bool = True,
) -> dict[str, Any]:
    """Return the OpenAPI document with every node path under `context_path`."""
    live = f"{context_path}/rest/live"
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Co-browse session server",
            "version": "1",
            "description": (
                "The live-session API of a node (the router documents its own endpoints at "
                "`/lb/openapi.json`). Every error is "
                "JSON of the `Error` shape. A method a path does not list answers 405 "
                "(`#/components/responses/MethodNotAllowed`); an unknown path 404; a bug 500 "
                "with a generic message."
            ),
        },
        "paths": {
            **_session_operations(live, example_origin),
            **_user_operations(live),
            **_node_operations(context_path, metrics=metrics),
        },
        "components": {
            "schemas": _schemas(),
            "parameters": _parameters(example_origin),
            "responses": _responses(),
            "headers": response_headers(),
        },
    }


def document_for(settings: NodeSettings) -> dict[str, Any]:
    """Return the document as one node serves it: its context path and origins."""
    cluster = settings.cluster
    return build_document(
        settings.context_path,
        example_origin=_allowed_origin_example(settings) or EXAMPLE_ORIGIN,
        metrics=cluster.metrics.enabled,
    )


def _allowed_origin_example(settings: NodeSettings) -> str | None:
    """Return an origin that the node allows for Get Session, to give clients a real example."""
    for rule in settings.cluster.origins.rules:
        if rule.host is None or not rule.allows("sessions.get"):
            continue
        host = "www" + rule.host[1:] if rule.host.startswith("*.") else rule.host
        default_port = {"http": 80, "https": 443}.get(rule.scheme or "")
        port = "" if rule.port == default_port else f":{rule.port}"
        return f"{rule.scheme}://{host}{port}"
    return None


def main() -> int:
    """Print the document for the default context path."""
    json.dump(build_document(), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
