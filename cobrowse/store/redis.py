"""The shared Redis store: sessions, rate limits and (in `redis_live`) live sessions, cluster-wide.

Any node serves any session: the session, its token, its rate-limit windows and its live log are
in Redis, so a request that reaches another node (a node went down, a load balancer
redispatched) finds everything there. Only the drain and shutdown switches stay a node's own:
they live in the node's SQLite file, as with the embedded store.

Every operation is one round trip: one command, or one Lua script (`redis_lua`) when it must
be atomic. A Redis that cannot be reached makes every operation raise StoreUnavailableError
(503, and /health 503), and the node recovers by itself once Redis is back: redis-py reconnects.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError, WatchError

from cobrowse.config.settings import StoreSettings
from cobrowse.store import (
    NodeState,
    PurgeResult,
    RateDecision,
    Session,
    SessionNotFoundError,
    StopResult,
    StoreUnavailableError,
    TokenConflictError,
)
from cobrowse.store import redis_lua as lua
from cobrowse.store.live import LiveEntry
from cobrowse.store.redis_wire import use_linear_packing
from cobrowse.store.sqlite import SqliteSessionStore

log = logging.getLogger("cobrowse.store")

T = TypeVar("T")
# redis-py's annotations mix its synchronous and asyncio APIs (every command "returns" an
# awaitable or a value): the asyncio client is used untyped here.
RedisClient = Any
ENDED_LOG_KEPT_MS = 60_000  # `ended` stays in a session's log this long, for every worker
SWEEP_BATCH = 500
WINDOW_MS = 60_000


def connect(settings: StoreSettings) -> RedisClient:
    """Return a client of the configured Redis: by URL, or the master a Sentinel names."""
    options: dict[str, Any] = {
        "socket_timeout": settings.timeout,
        "socket_connect_timeout": settings.timeout,
        "health_check_interval": 5,
        "decode_responses": False,
    }
    if settings.sentinels:
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            [_host_port(address) for address in settings.sentinels],
            sentinel_kwargs={"socket_timeout": settings.timeout},
            **options,
        )
        return use_linear_packing(sentinel.master_for(settings.master_name))
    return use_linear_packing(aioredis.Redis.from_url(settings.url, **options))


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


class RedisScripts:
    """The Lua scripts, registered once on a client (EVALSHA, loaded on first use)."""

    def __init__(self, client: RedisClient, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self._scripts: dict[str, AsyncScript] = {}

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        source = getattr(lua, name.upper())
        script = self._scripts.get(name)
        if script is None:
            script = self._scripts[name] = self.client.register_script(lua.PRELUDE + source)

        async def run(*args: Any) -> Any:
            return await guarded(script(args=[self.prefix, ENDED_LOG_KEPT_MS, *args]))

        return run


async def guarded(call: Awaitable[T]) -> T:
    """Await a Redis call; a Redis that fails to answer is StoreUnavailableError (503)."""
    try:
        return await call
    except RedisError as error:
        raise StoreUnavailableError(f"redis: {error}") from error
    except OSError as error:
        raise StoreUnavailableError(f"redis: {error}") from error


def text(value: Any) -> str | None:
    return None if value is None else value.decode() if isinstance(value, bytes) else str(value)


def number(value: Any, default: int = 0) -> int:
    return default if value is None else int(value)


def session_from(fields: Sequence[Any]) -> Session | None:
    """Build a Session from HMGET of `lua.SESSION_FIELDS`; None when it has no token."""
    values = dict(zip(lua.SESSION_FIELDS, fields, strict=True))
    token = text(values["session_token"])
    if token is None:
        return None
    return Session(
        session_token=token,
        user_token=text(values["user_token"]) or "",
        activation_time=number(values["activation_time"]),
        expires_at=number(values["expires_at"]),
        deactivation_time=None
        if values["deactivation_time"] is None
        else number(values["deactivation_time"]),
        end_reason=text(values["end_reason"]),
        csrf_token=text(values["csrf_token"]),
        screen_capture=text(values["screen_capture"]) or "disabled",
    )


def entry_from(item: Sequence[Any]) -> LiveEntry:
    """Build a LiveEntry from a script's {seq, kind, audience, payload, stored_at, snapshot}."""
    seq, kind, audience, payload, stored_at, snapshot = item
    return LiveEntry(
        int(seq),
        text(kind) or "",
        text(audience) or "",
        bytes(payload),
        int(stored_at),
        text(snapshot) == "1",
    )


class RedisSessionStore:
    """`SessionStore` in Redis; the node's switches in its own SQLite file."""

    def __init__(self, client: RedisClient, prefix: str, node_state: SqliteSessionStore):
        self.client = client
        self.prefix = prefix
        self.scripts = RedisScripts(client, prefix)
        self.node_store = node_state  # drain and shutdown: a node's own
        self.probe_key = f"{prefix}probe:{node_state.database.path.stem}"

    async def open(self) -> None:
        await self.node_store.open()

    async def close(self) -> None:
        await self.client.aclose()
        await self.node_store.close()

    async def create(self, session: Session) -> None:
        fields: list[Any] = [
            "session_token", session.session_token,
            "user_token", session.user_token,
            "activation_time", session.activation_time,
            "last_activity", session.activation_time,
            "expires_at", session.expires_at,
            "screen_capture", session.screen_capture,
            "customer_id", session.customer_id,
            "mode", "pointer",
            "last_seq", 0,
            "last_cseq", 0,
            "snapshot_seq", 0,
            "log_bytes", 0,
        ]  # fmt: skip
        if session.csrf_token is not None:
            fields += ["csrf_token", session.csrf_token]
        if session.user_data is not None:
            fields += ["user_data", json.dumps(session.user_data)]
        outcome = await self.scripts.create(
            session.user_token, session.session_token, session.expires_at, *fields
        )
        if outcome != b"ok":
            raise TokenConflictError(f"{text(outcome)} token taken")

    async def get_live(self, session_token: str, now_ms: int) -> Session | None:
        fields = await self.scripts.get_live(session_token)
        if not fields:
            return None
        session = session_from(fields)
        if session is None or session.deactivation_time is not None or session.expires_at <= now_ms:
            return None
        return session

    async def get_by_user_token(self, user_token: str) -> Session | None:
        fields = await guarded(
            self.client.hmget(f"{self.prefix}s:{user_token}", lua.SESSION_FIELDS)
        )
        return session_from(fields)

    async def stop(self, user_token: str, now_ms: int) -> StopResult:
        outcome = await self.scripts.stop(user_token, now_ms)
        if not outcome:
            raise SessionNotFoundError(user_token)
        session = await self.get_by_user_token(user_token)
        if session is None:
            raise SessionNotFoundError(user_token)
        if outcome[0] == 0:
            return StopResult(session, ended_now=False)
        return StopResult(session, ended_now=True, entries=[entry_from(outcome[1])])

    async def touch(self, user_token: str, now_ms: int, expires_at: int) -> Session | None:
        fields = await self.scripts.touch(user_token, now_ms, expires_at)
        return session_from(fields) if fields else None

    async def change_screen_capture(
        self, user_token: str, now_ms: int, expires_at: int, change: Callable[[str], str]
    ) -> Session | None:
        key = f"{self.prefix}s:{user_token}"
        # Optimistic: read the state, decide in Python (the rules may refuse), write only if
        # nobody changed the session meanwhile; else read again.
        for _ in range(20):
            try:
                async with self.client.pipeline(transaction=True) as pipe:
                    await guarded(pipe.watch(key))
                    current = await guarded(
                        pipe.hmget(key, "screen_capture", "deactivation_time", "expires_at")
                    )
                    state, ended, expires = current
                    if expires is None or ended is not None or int(expires) <= now_ms:
                        return None
                    new_state = change(text(state) or "disabled")
                    pipe.multi()
                    pipe.hset(
                        key,
                        mapping={
                            "screen_capture": new_state,
                            "last_activity": now_ms,
                            "expires_at": expires_at,
                        },
                    )
                    pipe.zadd(f"{self.prefix}live", {user_token: expires_at})
                    await guarded(pipe.execute())
            except WatchError:
                continue
            return await self.get_by_user_token(user_token)
        raise StoreUnavailableError("the session kept changing under the screen-capture update")

    async def sweep(self, now_ms: int, retention_ms: int) -> PurgeResult:
        purged, ended_items = await self.scripts.sweep(now_ms, retention_ms, SWEEP_BATCH)
        ended = [(text(key) or "", [entry_from(entry)]) for key, entry in ended_items]
        return PurgeResult(timed_out=len(ended), purged=int(purged), ended=ended)

    async def live_count(self, now_ms: int) -> int:
        return int(await guarded(self.client.zcount(f"{self.prefix}live", f"({now_ms}", "+inf")))

    async def node_state(self) -> NodeState:
        return await self.node_store.node_state()

    async def set_node_state(
        self, *, draining: bool | None = None, stopping: bool | None = None
    ) -> None:
        await self.node_store.set_node_state(draining=draining, stopping=stopping)

    async def check_writable(self) -> None:
        # Both must take writes: Redis for sessions, the node's file for its switches.
        await guarded(self.client.set(self.probe_key, b"1", px=10_000))
        await self.node_store.check_writable()


class RedisRateLimitStore:
    """`RateLimitStore` in Redis: one window per client and operation for the whole cluster."""

    def __init__(self, client: RedisClient, prefix: str) -> None:
        self.scripts = RedisScripts(client, prefix)

    async def hit(
        self, client: str, operation: str, now_ms: int, limit: int, quarantine_ms: int
    ) -> RateDecision:
        allowed, until = await self.scripts.hit(
            f"{client}|{operation}", WINDOW_MS, now_ms, limit, quarantine_ms
        )
        if allowed:
            return RateDecision(allowed=True)
        if int(until) == -1:
            return RateDecision(allowed=False, retry_after_s=None)
        return RateDecision(allowed=False, retry_after_s=max(1, -(-(int(until) - now_ms) // 1000)))

    async def forget_before(self, now_ms: int) -> int:
        return 0  # windows expire by themselves in Redis
