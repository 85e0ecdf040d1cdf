"""Integration tests start real processes on loopback; each one is stopped by its test."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in item.nodeid:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def integration_redis(tmp_path_factory: pytest.TempPathFactory):
    """One real redis-server for the integration tests; each user keeps to its own prefix."""
    from tests.redis_server import RedisServer

    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module", params=["sqlite", "redis"])
def live_node(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest):
    """A real node of 4 workers for realtime tests, on each backend; a module sets
    `LIVE_SECTIONS` to tune it."""
    import uuid

    from cobrowse.config.loader import load_cluster
    from tests.helpers import start_node, write_cluster
    from tests.integration.realtime_client import ORIGIN

    store = {"backend": "sqlite"}
    if request.param == "redis":
        server = request.getfixturevalue("integration_redis")
        store = {"backend": "redis", "url": server.url, "prefix": f"it-{uuid.uuid4().hex}:"}
    module_sections = getattr(request.module, "LIVE_SECTIONS", {})
    sections = {
        "cross-origin": {"allowedOrigins": ORIGIN},
        "store": store,
        **module_sections,
        # Tests join far more often than an agent would: the guessing limit is tested alone.
        "security": {"rateLimit.sessions.join": "0", **module_sections.get("security", {})},
    }
    directory = tmp_path_factory.mktemp("live")
    config = write_cluster(directory, nodes=1, workers=4, sections=sections)
    node = start_node(config, "node-1", directory)
    node.config = config
    node.directory = directory
    node.store = store
    node.base = load_cluster(config).node("node-1").base_url + "/cobrowse"
    yield node
    node.stop()
