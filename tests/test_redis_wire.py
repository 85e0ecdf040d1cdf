"""The linear RESP encoder: the same bytes as redis-py's, through every connection class."""

from __future__ import annotations

import uuid

import pytest
import redis.asyncio as aioredis
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection
from redis.asyncio.sentinel import Sentinel, SentinelManagedConnection
from redis.exceptions import DataError

from cobrowse.store.redis_wire import COPY_LIMIT, LinearPackMixin, use_linear_packing


class LinearConnection(LinearPackMixin, Connection):
    pass


def _wire(parts) -> bytes:
    return b"".join(bytes(part) for part in parts)


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(("GET", "key"), id="plain"),
        pytest.param(("CONFIG GET", "maxmemory"), id="command name of two words"),
        pytest.param((b"CLIENT SETNAME", b"node-1"), id="command name in bytes"),
        pytest.param(("SET", "clé", "välue"), id="utf-8"),
        pytest.param(("EVALSHA", "ab" * 20, 2, "k1", "k2", *range(300)), id="many arguments"),
        pytest.param(("XADD", "s", "*", "p", b"x" * (COPY_LIMIT + 1), "t", 1.5), id="large value"),
        pytest.param(("SET", "key", memoryview(b"view")), id="memoryview"),
        pytest.param(("SET", "key", b""), id="empty value"),
    ],
)
def test_the_same_bytes_as_redis_py(command):
    assert _wire(LinearConnection().pack_command(*command)) == _wire(
        Connection().pack_command(*command)
    )


def test_a_large_value_is_not_copied_into_the_command_buffer():
    value = b"x" * (COPY_LIMIT + 1)
    parts = LinearConnection().pack_command("SET", "key", value)
    assert any(part is value for part in parts)


@pytest.mark.parametrize("value", [None, True, object()])
def test_what_redis_py_refuses_is_refused(value):
    with pytest.raises(DataError):
        LinearConnection().pack_command("SET", "key", value)


@pytest.mark.parametrize(
    ("url", "base"),
    [
        ("redis://127.0.0.1:6379/0", Connection),
        ("rediss://127.0.0.1:6379/0", SSLConnection),
        ("unix:///tmp/redis.sock", UnixDomainSocketConnection),
    ],
)
def test_every_kind_of_connection_keeps_its_own_class(url, base):
    client = use_linear_packing(aioredis.Redis.from_url(url))
    assert issubclass(client.connection_pool.connection_class, base)
    assert issubclass(client.connection_pool.connection_class, LinearPackMixin)


def test_sentinel_connections_keep_following_the_master():
    client = use_linear_packing(Sentinel([("127.0.0.1", 26379)]).master_for("mymaster"))
    assert issubclass(client.connection_pool.connection_class, SentinelManagedConnection)


async def test_a_real_redis_answers_commands_packed_linearly(redis_server):
    client = use_linear_packing(aioredis.Redis.from_url(redis_server.url))
    key = f"test-{uuid.uuid4().hex}"
    big = bytes(range(256)) * 1000
    try:
        assert await client.set(key, big)
        assert await client.get(key) == big
        # redis-py answers CONFIG GET with a dict of text
        assert await client.execute_command("CONFIG GET", "port") == {
            "port": str(redis_server.port)
        }
        fields = {f"f{index}": index for index in range(500)}
        assert await client.hset(f"{key}:h", mapping=fields) == 500
        assert await client.hget(f"{key}:h", "f499") == b"499"
    finally:
        await client.delete(key, f"{key}:h")
        await client.aclose()
