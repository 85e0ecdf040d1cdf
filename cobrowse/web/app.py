"""The node's WSGI application: `create_app` wires it; `get_app` is Gunicorn's entry point."""

from __future__ import annotations

import json
import logging
import os
import secrets
from typing import Any

import falcon

from cobrowse import errors
from cobrowse.clock import Clock, SystemClock
from cobrowse.config.settings import NodeSettings
from cobrowse.observe.accesslog import AccessLog
from cobrowse.observe.metrics import NodeMetrics, NoMetrics
from cobrowse.sessions.ring import ClusterRing
from cobrowse.sessions.service import HostedElsewhereError, SessionService, Sweeper
from cobrowse.sessions.tokens import RandomSource, TokenIssuer
from cobrowse.store import RateLimitStore, SessionStore
from cobrowse.store.sqlite import SqliteSessionStore
from cobrowse.store.sqlite_db import SqliteDatabase
from cobrowse.store.sqlite_ratelimits import SqliteRateLimitStore
from cobrowse.web.clientinfo import ClientResolver
from cobrowse.web.cors import CorsMiddleware
from cobrowse.web.observability import ObservabilityMiddleware
from cobrowse.web.ratelimit import RateLimitMiddleware
from cobrowse.web.resources.health import HealthResource
from cobrowse.web.resources.metrics import MetricsResource
from cobrowse.web.resources.openapi import OpenApiResource
from cobrowse.web.resources.sessions import SessionResource, SessionsResource, StickinessCookie
from cobrowse.web.resources.users import PingResource, ScreenCaptureResource, StopResource


def create_app(
    settings: NodeSettings,
    store: SessionStore | None = None,
    *,
    rate_limits: RateLimitStore | None = None,
    clock: Clock | None = None,
    random: RandomSource | None = None,
    access_log: AccessLog | None = None,
) -> falcon.App[falcon.Request, falcon.Response]:
    """Return the Falcon app of one node. Opens nothing: the store connects on first use."""
    if store is None:
        database = SqliteDatabase(settings.database_path)
        store = SqliteSessionStore(database)
        rate_limits = rate_limits or SqliteRateLimitStore(database)
    elif rate_limits is None:
        rate_limits = SqliteRateLimitStore(SqliteDatabase(settings.database_path))
    clock = clock or SystemClock()
    cluster = settings.cluster
    metrics = NodeMetrics(store, clock) if cluster.metrics.enabled else NoMetrics()
    if access_log is None and logging.getLevelName(cluster.logging.level) <= logging.INFO:
        access_log = AccessLog(text_format=cluster.logging.format == "text")
    ring = ClusterRing(cluster.nodes)
    issuer = TokenIssuer(ring, settings.name, random or secrets.SystemRandom())
    service = SessionService(settings, store, ring, issuer, clock, events=metrics)
    clients = ClientResolver(cluster.security.trusted_proxies)
    sweeper = Sweeper(
        store,
        rate_limits,
        clock,
        metrics,
        interval_s=cluster.session.purge_interval,
        retention_ms=round(cluster.session.retention * 1000),
    )

    # Order matters: observation wraps everything; CORS decides the operation, which rate
    # limits then count.
    app = falcon.App[falcon.Request, falcon.Response](
        middleware=[
            ObservabilityMiddleware(metrics, access_log, settings.name, clients),
            CorsMiddleware(cluster.origins),
            RateLimitMiddleware(cluster.security.rate_limits, rate_limits, clients, clock),
        ]
    )
    errors.install(app)
    app.add_error_handler(HostedElsewhereError, _redirect_to_owner(settings.context_path))

    live = f"{settings.context_path}/rest/live"
    max_body = cluster.security.max_body_size
    app.add_route(
        f"{live}/sessions",
        SessionsResource(service, StickinessCookie(settings, clients), sweeper, max_body),
    )
    app.add_route(f"{live}/sessions/{{session_token}}", SessionResource(service))
    app.add_route(f"{live}/users/{{user_token}}/session/stop", StopResource(service))
    app.add_route(f"{live}/users/{{user_token}}/ping", PingResource(service))
    app.add_route(
        f"{live}/users/{{user_token}}/screen-capture", ScreenCaptureResource(service, max_body)
    )
    app.add_route(f"{settings.context_path}/health", HealthResource(store, sweeper, clock))
    app.add_route(f"{settings.context_path}/openapi.json", OpenApiResource(settings))
    if isinstance(metrics, NodeMetrics):
        app.add_route(f"{settings.context_path}/metrics", MetricsResource(metrics))
    return app


def _redirect_to_owner(context_path: str) -> Any:
    """Build the handler that sends a client to the node that hosts its token."""

    def handle(
        req: falcon.Request, resp: falcon.Response, error: HostedElsewhereError, params: Any
    ) -> None:
        body = {
            "errorMessage": f"This token is hosted on node {error.node}.",
            "node": error.node,
        }
        if error.server_url is None:
            resp.status = falcon.HTTP_421
        else:
            # 307 keeps the method and body; serverUrl reaches the owner through the LB prefix.
            location = error.server_url + req.path[len(context_path) :]
            if req.query_string:
                location += "?" + req.query_string
            resp.status = falcon.HTTP_307
            resp.location = location
        resp.content_type = falcon.MEDIA_JSON
        resp.text = json.dumps(body)

    return handle


def get_app() -> falcon.App[falcon.Request, falcon.Response]:
    """Build the app for Gunicorn from `COBROWSE_CONFIG` and `COBROWSE_NODE`."""
    from cobrowse.config.loader import CONFIG_ENV, NODE_ENV, load_cluster

    config_path = os.environ.get(CONFIG_ENV)
    node_name = os.environ.get(NODE_ENV)
    if not config_path or not node_name:
        raise RuntimeError(f"set {CONFIG_ENV} (cluster file) and {NODE_ENV} (node name)")
    return create_app(load_cluster(config_path).node_settings(node_name))
