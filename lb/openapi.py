"""The OpenAPI 3.1 contract of the router's own endpoints, served at `/lb/openapi.json`.

Everything else the router answers is a node's API, forwarded: each node documents its own at
`<context>/openapi.json` (`cobrowse/web/openapi.py`). `tests/test_openapi.py` checks this
document against `lb/admin.py`.
"""

from __future__ import annotations

from typing import Any

from cobrowse.web.openapi import JSON, Schema, error_response, ref, response_headers

ROUTER_TAG = "router"


def _operations(router_url: str) -> dict[str, Schema]:
    """`/health` and `/lb/...` (lb/admin.py): GET and HEAD, on the router."""
    servers = [{"url": router_url, "description": "the router ([lb] bind)"}]
    errors = {
        "405": error_response("Only GET and HEAD are allowed.", "Allow"),
    }
    endpoints: dict[str, tuple[str, str, dict[str, Schema]]] = {
        "/health": (
            "routerHealth",
            "200 while at least one node is up.",
            {
                "200": {"description": "A node is up (empty body)."},
                "503": error_response("No node is up.", "Retry-After"),
            },
        ),
        "/lb/status": (
            "routerStatus",
            "Each node's state; a self-refreshing page with `Accept: text/html`.",
            {
                "200": {
                    "description": "The router's view of the cluster.",
                    "content": {
                        JSON: {"schema": ref("schemas", "RouterStatus")},
                        "text/html": {"schema": {"type": "string"}},
                    },
                }
            },
        ),
        "/lb/openapi.json": (
            "routerOpenapi",
            "This document.",
            {
                "200": {
                    "description": "The router's OpenAPI document.",
                    "content": {JSON: {"schema": {"type": "object"}}},
                }
            },
        ),
        "/lb/metrics": (
            "routerMetrics",
            "The router's Prometheus metrics.",
            {
                "200": {
                    "description": "The Prometheus text format.",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                },
                "404": error_response("Metrics are switched off ([metrics] enabled = false)."),
            },
        ),
    }
    paths: dict[str, Schema] = {}
    for path, (operation_id, summary, responses) in endpoints.items():
        paths[path] = {
            "servers": servers,
            **{
                method: {
                    "operationId": f"{operation_id}{method.capitalize()}",
                    "summary": summary,
                    "tags": [ROUTER_TAG],
                    "responses": {**responses, **errors},
                }
                for method in ("get", "head")
            },
        }
    return paths


def _schemas() -> dict[str, Schema]:
    return {
        "Error": {
            "type": "object",
            "description": "The router's own errors, in the nodes' error shape.",
            "required": ["errorMessage"],
            "properties": {
                "errorMessage": {"type": "string", "description": "For people."},
                "node": {"type": "string", "description": "The node that cannot serve."},
            },
            "additionalProperties": False,
        },
        "RouterStatus": {
            "type": "object",
            "required": ["ringEpoch", "nodes"],
            "properties": {
                "ringEpoch": {"type": "integer", "minimum": 0},
                "nodes": {"type": "array", "items": ref("schemas", "RouterNode")},
            },
            "additionalProperties": False,
        },
        "RouterNode": {
            "type": "object",
            "required": [
                "name",
                "url",
                "state",
                "backup",
                "lastCheck",
                "lastResult",
                "consecutiveFailures",
                "consecutiveSuccesses",
                "ringShare",
                "requests",
                "requestRate",
                "liveSessions",
                "tunnels",
            ],
            "properties": {
                "name": {"type": "string"},
                "url": {"type": "string"},
                "state": {"type": "string", "enum": ["up", "draining", "down"]},
                "backup": {"type": "boolean"},
                "lastCheck": {"type": ["integer", "null"]},
                "lastResult": {"type": ["string", "null"]},
                "consecutiveFailures": {"type": "integer", "minimum": 0},
                "consecutiveSuccesses": {"type": "integer", "minimum": 0},
                "ringShare": {"type": "number", "minimum": 0, "maximum": 1},
                "requests": {"type": "integer", "minimum": 0},
                "requestRate": {"type": "number", "minimum": 0},
                "liveSessions": {"type": ["integer", "null"]},
                "tunnels": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "WebSocket tunnels open to the node through this router.",
                },
            },
            "additionalProperties": False,
        },
    }


def build_router_document(router_url: str) -> dict[str, Any]:
    """Return the router's OpenAPI document for a router reachable at `router_url`."""
    headers = response_headers()
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Co-browse router",
            "version": "1",
            "description": (
                "The router's own endpoints. Every other path is forwarded to a node, whose "
                "API its `<context>/openapi.json` documents."
            ),
        },
        "paths": _operations(router_url),
        "components": {
            "schemas": _schemas(),
            "headers": {name: headers[name] for name in ("X-Request-ID", "Retry-After", "Allow")},
        },
    }
