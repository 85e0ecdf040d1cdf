"""Run one node under Gunicorn: settings in, a master with several worker processes out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gunicorn.app.base import BaseApplication

from cobrowse.config.settings import NodeSettings

# Chosen by `scripts/bench node` (README "Performance"): Uvicorn's worker (uvloop, httptools)
# under Gunicorn serves the ASGI app about three times faster than gthread served the WSGI one,
# and holds WebSockets. `NodeWorker` adds the node's JSON answers for what the server refuses
# itself, request deadlines, and the WebSocket options.
WORKER_CLASS = "cobrowse.ops.worker.NodeWorker"
KEEPALIVE_S = 5  # longer than the router's idle upstream timeout, so the router closes first


def gunicorn_options(settings: NodeSettings) -> dict[str, Any]:
    """Return the Gunicorn settings of a node; `deploy/gunicorn.conf.py` uses them too."""
    node = settings.node
    return {
        "bind": [node.bind],
        "workers": node.workers,
        "worker_class": WORKER_CLASS,
        "keepalive": KEEPALIVE_S,
        # With an event loop per worker, Gunicorn's timeout no longer bounds a request (the
        # node's `[security] requestTimeout` does): it only checks that each worker's loop is
        # alive, as Uvicorn notifies the master from its loop. A loop stuck this long is dead.
        "timeout": 30,
        # After SIGTERM and the not-ready period, open connections get this long to finish.
        "graceful_timeout": 30,
        # Never recycle workers after N requests: a restart would cut every WebSocket it holds.
        "max_requests": 0,
        "proc_name": f"cobrowse-node:{node.name}",
        # Gunicorn's control socket defaults to one path per user: several nodes would collide.
        "control_socket_disable": True,
        # Forget a dead worker's gauges in the shared metrics directory.
        "child_exit": _child_exit,
        "errorlog": "-",
        "loglevel": settings.cluster.logging.level.lower(),
    }


def _child_exit(server: Any, worker: Any) -> None:
    from cobrowse.observe.metrics import mark_worker_dead

    mark_worker_dead(worker.pid)


def prepare_node_process(settings: NodeSettings) -> None:
    """Set up the Gunicorn master before it forks: data directory, metrics directory, logs.

    `deploy/gunicorn.conf.py` calls this too, so that both ways of starting a node agree.
    """
    from cobrowse.observe.logs import configure_logging
    from cobrowse.observe.metrics import prepare_multiprocess_dir

    settings.node.data_dir.mkdir(parents=True, exist_ok=True)
    if settings.cluster.metrics.enabled:
        # Before any worker imports prometheus_client: it picks its mode at import time.
        prepare_multiprocess_dir(str(settings.metrics_directory))
    configure_logging(settings.cluster.logging, process=f"node:{settings.name}")


class GunicornServer(BaseApplication):  # type: ignore[misc]
    """A Gunicorn application whose workers each build their ASGI app after the fork."""

    def __init__(
        self,
        options: dict[str, Any],
        load_app: Callable[[], Any],
        arbiter: Callable[[Any], Any] | None = None,
        on_reload: Callable[[], object] | None = None,
    ) -> None:
        self.options = options
        self.load_app = load_app
        self.arbiter = arbiter
        self.on_reload = on_reload
        super().__init__()

    def reload(self) -> None:
        # Gunicorn's arbiter calls this on SIGHUP, in the master, before it spawns new workers.
        if self.on_reload is not None:
            self.on_reload()
        super().reload()

    def run(self) -> None:
        if self.arbiter is None:
            super().run()
        else:
            self.arbiter(self).run()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return self.load_app()


def run_node(
    settings: NodeSettings,
    overrides: dict[str, Any] | None = None,
    read_settings: Callable[[], NodeSettings] | None = None,
) -> None:
    """Serve the node until Gunicorn stops; blocks.

    With `read_settings`, SIGHUP re-reads the settings (the cluster file) for the new workers.
    """
    from cobrowse.ops.reload import ReloadableSettings
    from cobrowse.ops.shutdown import DrainingArbiter
    from cobrowse.web.app import create_app

    prepare_node_process(settings)
    options = {**gunicorn_options(settings), **(overrides or {})}
    delay = settings.cluster.shutdown_delay

    def arbiter(app: Any) -> DrainingArbiter:
        return DrainingArbiter(app, settings.database_path, delay)

    held = ReloadableSettings(settings, read_settings or (lambda: settings))
    GunicornServer(options, lambda: create_app(held.current), arbiter, held.reload).run()
