"""The node's ASGI application: `create_app` wires it; `get_app` is Gunicorn's entry point."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

import falcon.asgi

from cobrowse.backends import open_backend
from cobrowse.clock import Clock, SystemClock
from cobrowse.config.settings import NodeSettings, ServerOptions
from cobrowse.observe.accesslog import AccessLog
from cobrowse.observe.looplag import LoopLagMonitor
from cobrowse.observe.metrics import NodeMetrics, NoMetrics
from cobrowse.realtime.endpoint import ChannelEndpoint
from cobrowse.realtime.hub import Feed, Hub
from cobrowse.realtime.messages import GOING_AWAY, RESTARTING
from cobrowse.realtime.observe import NoRealtimeMetrics
from cobrowse.realtime.service import LiveService
from cobrowse.sessions.ring import ClusterRing
from cobrowse.sessions.service import SessionService, Sweeper
from cobrowse.sessions.tokens import BufferedSystemRandom, RandomSource, TokenIssuer
from cobrowse.store import RateLimitStore, SessionStore, StoreUnavailableError
from cobrowse.store.live import LiveStore
from cobrowse.web import errors
from cobrowse.web.clientinfo import ClientResolver
from cobrowse.web.cors import CorsMiddleware
from cobrowse.web.observability import ObservabilityMiddleware
from cobrowse.web.ratelimit import RateLimitMiddleware
from cobrowse.web.resources.health import HealthResource
from cobrowse.web.resources.join import JoinResource
from cobrowse.web.resources.metrics import MetricsResource
from cobrowse.web.resources.openapi import OpenApiResource
from cobrowse.web.resources.sessions import SessionResource, SessionsResource, StickinessCookie
from cobrowse.web.resources.static import StaticFiles
from cobrowse.web.resources.users import PingResource, ScreenCaptureResource, StopResource

log = logging.getLogger("cobrowse.node")


class NodeApp(falcon.asgi.App[falcon.asgi.Request, falcon.asgi.Response]):
    """Falcon's ASGI app, plus the realtime channel and what the node's server needs to know."""

    def __init__(
        self,
        server_options: ServerOptions,
        channels: ChannelEndpoint,
        on_shutdown: Callable[[], Awaitable[None]],
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        # Read by the Gunicorn worker (cobrowse.ops.worker) before it starts serving.
        self.server_options = server_options
        self.channels = channels
        self.on_shutdown = on_shutdown

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:  # type: ignore[override]
        # WebSockets are the realtime channel, as raw ASGI: it refuses handshakes with JSON
        # answers (the `websocket.http.response` extension) and costs less per message.
        if scope["type"] == "websocket":
            await self.channels(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    async def before_shutdown(self) -> None:
        """Called by the worker when it starts shutting down, before connections close."""
        await self.on_shutdown()


class Lifecycle:
    """ASGI lifespan: open the store, start the realtime hub, watch the event loop's lag,
    and add this worker's counts to the shared metrics once a second."""

    def __init__(
        self,
        store: SessionStore,
        hub: Hub,
        monitor: LoopLagMonitor,
        metrics: NodeMetrics | NoMetrics,
    ) -> None:
        self.store = store
        self.hub = hub
        self.monitor = monitor
        self.metrics = metrics
        self.flusher: asyncio.TimerHandle | None = None

    def _flush_every_second(self) -> None:
        self.metrics.flush()
        self.flusher = asyncio.get_running_loop().call_later(1.0, self._flush_every_second)

    async def process_startup(self, scope: dict[str, Any], event: dict[str, Any]) -> None:
        # Everything built so far (the app, its modules) lives as long as the worker: moved
        # out of the collector's way, full collections stay short and the loop does not stall.
        gc.collect()
        gc.freeze()
        self.monitor.start()
        try:
            await self.store.open()
        except StoreUnavailableError as error:
            # Serve anyway: health answers 503 until the store is usable, then the node recovers
            # by itself, without a restart.
            log.warning("the session store cannot be opened yet: %s", error)
        self.hub.start()
        self._flush_every_second()

    async def close_channels(self) -> None:
        """Close every channel before the worker stops: 1001 when the node stops (clients
        resume on another node or after the restart), 1012 when its workers are replaced
        (a reload: clients resume at once, on a new worker)."""
        try:
            stopping = (await self.store.node_state()).stopping
        except StoreUnavailableError:
            stopping = True
        if stopping:
            await self.hub.close_all(GOING_AWAY, "the node is stopping")
        else:
            await self.hub.close_all(RESTARTING, "the node is restarting its workers")

    async def process_shutdown(self, scope: dict[str, Any], event: dict[str, Any]) -> None:
        if self.flusher is not None:
            self.flusher.cancel()
        self.metrics.flush()
        await self.hub.stop()
        await self.monitor.stop()
        await self.store.close()


def create_app(
    settings: NodeSettings,
    store: SessionStore | None = None,
    *,
    rate_limits: RateLimitStore | None = None,
    clock: Clock | None = None,
    random: RandomSource | None = None,
    access_log: AccessLog | None = None,
    live_store: LiveStore | None = None,
    feed: Feed | None = None,
) -> NodeApp:
    """Return the ASGI app of one node. Opens nothing: the store connects at startup."""
    if store is None or rate_limits is None or live_store is None or feed is None:
        backend = open_backend(settings)
        store = store or backend.store
        rate_limits = rate_limits or backend.rate_limits
        live_store = live_store or backend.live
        feed = feed or backend.feed
    clock = clock or SystemClock()
    cluster = settings.cluster
    metrics = NodeMetrics(store, clock) if cluster.metrics.enabled else NoMetrics()
    if access_log is None and logging.getLevelName(cluster.logging.level) <= logging.INFO:
        access_log = AccessLog(text_format=cluster.logging.format == "text")
    ring = ClusterRing(cluster.nodes)
    issuer = TokenIssuer(ring, settings.name, random or BufferedSystemRandom())
    clients = ClientResolver(cluster.security.trusted_proxies)
    realtime_observer = (
        metrics.realtime if isinstance(metrics, NodeMetrics) else NoRealtimeMetrics()
    )
    hub = Hub(
        live_store,
        feed,
        clock,
        realtime_observer,
        heartbeat_s=min(10.0, cluster.session.inactivity_timeout / 3),
        inactivity_timeout_ms=round(cluster.session.inactivity_timeout * 1000),
    )
    service = SessionService(
        settings, store, ring, issuer, clock, events=metrics, announce=hub.deliver
    )
    sweeper = Sweeper(
        store,
        rate_limits,
        clock,
        metrics,
        interval_s=cluster.session.purge_interval,
        retention_ms=round(cluster.session.retention * 1000),
        announce=hub.deliver,
    )
    live = LiveService(settings, live_store, hub, sessions=service, issuer=issuer, clock=clock)
    channels = ChannelEndpoint(
        settings,
        live_store,
        live,
        hub,
        rate_limits=rate_limits,
        clients=clients,
        clock=clock,
        observer=realtime_observer,
        access_log=access_log,
    )
    lifecycle = Lifecycle(store, hub, LoopLagMonitor(metrics), metrics)

    # Order matters: observation wraps everything; CORS decides the operation, which rate
    # limits then count.
    app = NodeApp(
        settings.server_options,
        channels,
        lifecycle.close_channels,
        middleware=[
            lifecycle,
            ObservabilityMiddleware(metrics, access_log, settings.name, clients),
            CorsMiddleware(cluster.origins),
            RateLimitMiddleware(cluster.security.rate_limits, rate_limits, clients, clock),
        ],
    )
    errors.install(app, settings.context_path)

    rest = f"{settings.context_path}/rest/live"
    max_body = cluster.security.max_body_size
    app.add_route(
        f"{rest}/sessions",
        SessionsResource(service, StickinessCookie(settings, clients), sweeper, max_body),
    )
    app.add_route(f"{rest}/sessions/{{session_token}}", SessionResource(service))
    app.add_route(
        f"{rest}/sessions/{{session_token}}/join",
        JoinResource(live, settings.name, settings.node.server_url, max_body),
    )
    app.add_route(f"{rest}/users/{{user_token}}/session/stop", StopResource(service))
    app.add_route(f"{rest}/users/{{user_token}}/ping", PingResource(service))
    app.add_route(
        f"{rest}/users/{{user_token}}/screen-capture", ScreenCaptureResource(service, max_body)
    )
    app.add_route(f"{settings.context_path}/health", HealthResource(store, sweeper, clock))
    app.add_route(f"{settings.context_path}/openapi.json", OpenApiResource(settings))
    if isinstance(metrics, NodeMetrics):
        app.add_route(f"{settings.context_path}/metrics", MetricsResource(metrics))
    # The browser side: the customer script, vendored rrweb, the agent console (sinks: files,
    # not API resources, so outside the OpenAPI contract).
    app.add_sink(StaticFiles.scripts(settings.context_path), f"{settings.context_path}/static")
    app.add_sink(StaticFiles.console(settings.context_path), f"{settings.context_path}/agent")
    return app


def get_app() -> NodeApp:
    """Build the app for Gunicorn from `COBROWSE_CONFIG` and `COBROWSE_NODE`."""
    from cobrowse.config.loader import CONFIG_ENV, NODE_ENV, load_cluster

    config_path = os.environ.get(CONFIG_ENV)
    node_name = os.environ.get(NODE_ENV)
    if not config_path or not node_name:
        raise RuntimeError(f"set {CONFIG_ENV} (cluster file) and {NODE_ENV} (node name)")
    return create_app(load_cluster(config_path).node_settings(node_name))
