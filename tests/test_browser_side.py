"""The browser side as the node serves it: the customer script, vendored rrweb, the agent console;
the demo site and what `cobrowse cluster` generates for them. (In a real browser:
tests/integration/test_browser_cobrowse.py.)"""

from __future__ import annotations

import gzip
import json
import threading
import urllib.request
from pathlib import Path

import pytest

from cobrowse.config.clusterfile import GeneratedNode, free_port, render_cluster_file
from cobrowse.config.loader import load_cluster
from cobrowse.config.origins import parse_origin
from cobrowse.ops.cluster import cluster_parts, console_url, generate_cluster
from cobrowse.ops.demo import DemoServer, demo_pages
from cobrowse.web.resources.static import STATIC_ROOT

VENDOR = STATIC_ROOT / "vendor" / "rrweb"
SCRIPT = "/cobrowse/static/cobrowse.js"


def test_the_customer_script_is_served_with_validators_and_caching(client):
    answer = client.simulate_get(SCRIPT)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert answer.content == (STATIC_ROOT / "cobrowse.js").read_bytes()
    assert answer.headers["Cache-Control"] == "public, max-age=300"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    etag = answer.headers["ETag"]
    assert etag.startswith('"')
    assert etag.endswith('"')
    again = client.simulate_get(SCRIPT, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["ETag"] == etag
    weak = client.simulate_get(SCRIPT, headers={"If-None-Match": f'"other", W/{etag}'})
    assert weak.status_code == 304
    assert client.simulate_get(SCRIPT, headers={"If-None-Match": '"other"'}).status_code == 200


def test_every_node_answers_the_same_etag(make_client):
    one = make_client("node-1").simulate_get(SCRIPT).headers["ETag"]
    two = make_client("node-2").simulate_get(SCRIPT).headers["ETag"]
    assert one == two  # a cached copy stays valid whichever node the balancer picks


def test_gzip_for_clients_that_accept_it(client):
    path = "/cobrowse/static/vendor/rrweb/rrweb-replay.min.js"
    plain = client.simulate_get(path)
    packed = client.simulate_get(path, headers={"Accept-Encoding": "gzip, br"})
    assert packed.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in packed.headers["Vary"]
    assert gzip.decompress(packed.content) == plain.content
    assert len(packed.content) < len(plain.content) / 2
    assert packed.headers["ETag"] != plain.headers["ETag"]
    revalidated = client.simulate_get(
        path, headers={"Accept-Encoding": "gzip", "If-None-Match": packed.headers["ETag"]}
    )
    assert revalidated.status_code == 304


@pytest.mark.parametrize("name", sorted(path.name for path in VENDOR.iterdir() if path.is_file()))
def test_the_vendored_rrweb_files_are_served_as_they_are(client, name):
    answer = client.simulate_get(f"/cobrowse/static/vendor/rrweb/{name}")
    assert answer.status_code == 200
    assert answer.content == (VENDOR / name).read_bytes()


def test_head_and_refusals(client):
    head = client.simulate_head(SCRIPT)
    assert head.status_code == 200
    assert head.content == b""
    posted = client.simulate_post(SCRIPT)
    assert posted.status_code == 405
    assert posted.headers["Allow"] == "GET, HEAD"
    for path in (
        "/cobrowse/static/nothing.js",
        "/cobrowse/static/vendor/rrweb/../../cobrowse.js",
        "/cobrowse/static/demo/index.html",  # the demo site is not the node's
        "/cobrowse/static/",
    ):
        missing = client.simulate_get(path)
        assert missing.status_code == 404, path
        assert "errorMessage" in missing.json


def test_the_agent_console_is_served_with_its_policy(client):
    moved = client.simulate_get("/cobrowse/agent")
    assert moved.status_code == 301
    assert moved.headers["Location"] == "agent/"  # relative: right behind a node prefix too
    page = client.simulate_get("/cobrowse/agent/")
    assert page.status_code == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert page.headers["Cache-Control"] == "no-cache"
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "object-src 'none'" in policy
    assert b"rrweb-replay.min.js" in page.content
    for asset in ("agent.js", "agent.css", "index.html"):
        answer = client.simulate_get(f"/cobrowse/agent/{asset}")
        assert answer.status_code == 200, asset
        assert "ETag" in answer.headers
    # The console's relative URLs reach the vendored replayer.
    assert client.simulate_get("/cobrowse/static/vendor/rrweb/rrweb-replay.css").status_code == 200


def test_static_files_are_logged_by_route_template_never_by_path(make_settings, tmp_path):
    import os

    import falcon.testing

    from cobrowse.observe.accesslog import AccessLog
    from cobrowse.web.app import create_app

    path = tmp_path / "access.log"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        log = AccessLog(text_format=False, descriptor=descriptor)
        client = falcon.testing.TestClient(create_app(make_settings(), access_log=log))
        client.simulate_get("/cobrowse/static/vendor/rrweb/rrweb-record.min.js")
        client.simulate_get("/cobrowse/agent/agent.js")
        log.flush()
        routes = [json.loads(line)["route"] for line in path.read_text().splitlines()]
    finally:
        os.close(descriptor)
    assert routes == ["/cobrowse/static/{file}", "/cobrowse/agent/{file}"]


def test_the_demo_pages_include_the_script_from_the_cluster():
    pages = demo_pages("http://127.0.0.1:8700/cobrowse/")
    assert {"/", "/index.html", "/form.html", "/plans.html", "/demo.css"} <= set(pages)
    tag = (
        '<script src="http://127.0.0.1:8700/cobrowse/static/cobrowse.js" '
        'data-cluster-url="http://127.0.0.1:8700/cobrowse" defer></script>'
    )
    for name in ("/index.html", "/form.html", "/plans.html"):
        body, content_type = pages[name]
        assert tag.encode() in body, name
        assert content_type == "text/html; charset=utf-8"
    form = pages["/form.html"][0].decode()
    assert 'id="card"' in form
    assert "data-cobrowse-mask" in form
    assert 'type="password"' in form


def test_the_demo_server_serves_its_pages():
    port = free_port()
    server = DemoServer(("127.0.0.1", port), "http://127.0.0.1:8700/cobrowse")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/form.html", timeout=5) as answer:
            assert answer.status == 200
            assert b"cobrowse.js" in answer.read()
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/secret", timeout=5)
        assert missing.value.code == 404
    finally:
        server.shutdown()
        server.server_close()


def test_a_generated_cluster_allows_the_console_for_what_it_does_only(tmp_path: Path):
    path = tmp_path / "cluster.ini"
    path.write_text(
        render_cluster_file(
            [GeneratedNode("node-1", 8701)], router_port=8700, data_dir=tmp_path / "data"
        )
    )
    policy = load_cluster(path).origins
    for origin in ("http://127.0.0.1:8700", "http://localhost:8700"):
        parsed = parse_origin(origin)
        assert parsed is not None
        rule = policy.rule_for(parsed)
        assert rule is not None, origin
        for operation in ("sessions.get", "sessions.join", "sessions.channel", "health"):
            assert rule.allows(operation), (origin, operation)
        assert not rule.allows("sessions.create")
        assert not rule.allows("sessions.stop")
    demo = parse_origin("http://localhost:8080")
    assert demo is not None
    site = policy.rule_for(demo)
    assert site is not None
    assert site.allows("sessions.create")


def test_cobrowse_cluster_runs_the_demo_on_its_port_and_allows_its_origin(tmp_path: Path):
    path = generate_cluster(tmp_path, 2, 9700, demo_port=9090)
    config = load_cluster(path)
    demo = parse_origin("http://localhost:9090")
    assert demo is not None
    rule = config.origins.rule_for(demo)
    assert rule is not None
    assert rule.allows("sessions.create")
    parts = cluster_parts(config, path, tmp_path / "logs", demo_port=9090)
    assert [part.kind for part in parts] == ["node", "node", "router", "demo"]
    assert parts[-1].url == "http://localhost:9090/"
    assert "--cluster-url" in parts[-1].argv
    assert config.url in parts[-1].argv
    assert console_url(config) == "http://127.0.0.1:9700/cobrowse/agent/"
    assert [part.kind for part in cluster_parts(config, path, tmp_path / "logs")][-1] == "router"


def test_the_cluster_command_has_demo_options():
    from cobrowse.cli import build_parser

    args = build_parser().parse_args(["cluster"])
    assert (args.demo_port, args.no_demo) == (8080, False)
    args = build_parser().parse_args(["cluster", "--demo-port", "9090", "--no-demo"])
    assert (args.demo_port, args.no_demo) == (9090, True)
