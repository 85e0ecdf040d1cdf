"""Shared fixtures: settings from cluster-file text, a fake clock, apps over real SQLite."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import falcon.testing
import pytest

from cobrowse.config.loader import parse_cluster
from cobrowse.config.settings import ClusterConfig, NodeSettings
from cobrowse.web.app import create_app
from tests.helpers import FakeClock
from tests.redis_server import RedisServer

BACKENDS = ("sqlite", "redis")

ALLOWED = "http://localhost:8080"

BASE_CLUSTER = """
[cluster]
url = http://127.0.0.1:8700/cobrowse

[logging]
; access logs are tested on their own, with their own sink
level = WARNING

[cross-origin]
allowedOrigins = http://localhost:8080, https://*.example.com

[node:node-1]
bind = 127.0.0.1:8701
serverUrl = http://127.0.0.1:8700/node-1/cobrowse

[node:node-2]
bind = 127.0.0.1:8702
serverUrl = http://127.0.0.1:8700/node-2/cobrowse

[node:node-3]
bind = 127.0.0.1:8703
"""


def cluster_from(text: str, tmp_path: Path, **overrides: dict[str, str]) -> ClusterConfig:
    """Parse cluster-file text plus `section={option: value}` overrides (by environment)."""
    from cobrowse.config.loader import env_name

    environ = {
        env_name(section.replace("_", "-"), option): value
        for section, options in overrides.items()
        for option, value in options.items()
    }
    return parse_cluster(text, environ=environ, cwd=tmp_path)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real redis-server for the unit tests; each test keeps to a key prefix of its own."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> dict[str, str]:
    """The `[store]` section of a backend: every API test runs against both."""
    if request.param == "sqlite":
        return {"backend": "sqlite"}
    server = request.getfixturevalue("redis_server")
    return {"backend": "redis", "url": server.url, "prefix": f"test-{uuid.uuid4().hex}:"}


@pytest.fixture
def make_settings(tmp_path: Path, backend: dict[str, str]) -> Callable[..., NodeSettings]:
    """Return a factory: NodeSettings of node-1 in BASE_CLUSTER, with overrides, on `backend`."""

    def make(
        node: str = "node-1", text: str = BASE_CLUSTER, **overrides: dict[str, str]
    ) -> NodeSettings:
        overrides.setdefault("store", {})
        overrides["store"] = {**backend, **overrides["store"]}
        return cluster_from(text, tmp_path, **overrides).node_settings(node)

    return make


@pytest.fixture
def make_client(
    make_settings: Callable[..., NodeSettings], clock: FakeClock
) -> Callable[..., falcon.testing.TestClient]:
    """Return a factory of TestClients over a real store (SQLite in tmp_path, or Redis)."""

    def make(node: str = "node-1", **overrides: dict[str, str]) -> falcon.testing.TestClient:
        settings = make_settings(node, **overrides)
        app = create_app(settings, clock=clock, random=random.Random(1234))
        return falcon.testing.TestClient(app)

    return make


@pytest.fixture
def client(make_client: Callable[..., falcon.testing.TestClient]) -> falcon.testing.TestClient:
    return make_client()


@pytest.fixture
def reliability(request: pytest.FixtureRequest):
    """A Trial named after the test's docstring, saved to the reliability report afterwards."""
    from tests.reliability import Trial, save

    doc = (request.function.__doc__ or request.node.name).strip().splitlines()[0]
    category = "bad input" if request.node.get_closest_marker("bad_input") else "fault"
    trial = Trial(name=doc.rstrip("."), category=category)
    yield trial
    save(trial)
