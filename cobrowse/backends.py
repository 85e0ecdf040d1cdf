"""Pick the stores and the live feed of a node: `[store] backend = sqlite | redis`.

The REST and realtime code only sees the interfaces (`cobrowse.store`, `cobrowse.store.live`,
`cobrowse.realtime.hub.Feed`); this is the one place that knows which implementation runs.
Nothing connects here: connections open on first use, in each worker.
"""

from __future__ import annotations

from dataclasses import dataclass

from cobrowse.config.settings import NodeSettings
from cobrowse.realtime.hub import Feed
from cobrowse.store import RateLimitStore, SessionStore
from cobrowse.store.live import LiveStore


@dataclass(frozen=True, slots=True)
class Backend:
    """A node's stores and live feed, all on one backend."""

    store: SessionStore
    rate_limits: RateLimitStore
    live: LiveStore
    feed: Feed


def open_backend(settings: NodeSettings) -> Backend:
    """Return the configured backend of a node."""
    from cobrowse.store.sqlite import SqliteSessionStore
    from cobrowse.store.sqlite_db import SqliteDatabase

    database = SqliteDatabase(settings.database_path)
    options = settings.cluster.store
    if options.backend == "redis":
        from cobrowse.realtime.redis_feed import RedisFeed
        from cobrowse.store.redis import RedisRateLimitStore, RedisSessionStore, connect
        from cobrowse.store.redis_live import RedisLiveStore

        client = connect(options)
        return Backend(
            store=RedisSessionStore(client, options.prefix, SqliteSessionStore(database)),
            rate_limits=RedisRateLimitStore(client, options.prefix),
            live=RedisLiveStore(client, options.prefix),
            # Blocking reads hold a connection: a client of their own, not the pool's.
            feed=RedisFeed(connect(options), options.prefix),
        )
    from cobrowse.realtime.wakeup import DatagramWakeup
    from cobrowse.store.sqlite_live import SqliteLiveStore
    from cobrowse.store.sqlite_ratelimits import SqliteRateLimitStore

    return Backend(
        store=SqliteSessionStore(database),
        rate_limits=SqliteRateLimitStore(database),
        live=SqliteLiveStore(database),
        feed=DatagramWakeup(
            settings.node.data_dir / f"{settings.name}.live", str(settings.database_path)
        ),
    )
