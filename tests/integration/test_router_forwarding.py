"""The router forwards requests faithfully, and fails with JSON 502/504/413, never a hang."""

from __future__ import annotations

import json
import socket

import pytest
import requests

from cobrowse.config.clusterfile import GeneratedNode, free_port
from tests.echo_upstream import EchoServer
from tests.helpers import COBROWSE, Process, wait_until, wait_until_responds, write_cluster


@pytest.fixture
def echo_router(tmp_path):
    """A router whose only node is the echo server; 127.0.0.1 is not a trusted proxy."""
    echo_port = free_port()
    echo = EchoServer(echo_port)
    router_port = free_port()
    config = write_cluster(
        tmp_path,
        [GeneratedNode("echo", echo_port)],
        router_port=router_port,
        sections={
            "lb": {"serverTimeout": "1", "maxBodySize": "1000"},
            "security": {"trustedProxies": "10.0.0.0/8"},
        },
    )
    router = Process([COBROWSE, "router", "--config", str(config)], tmp_path / "router.log")
    base = f"http://127.0.0.1:{router_port}"
    try:
        wait_until_responds(f"{base}/health", deadline=15)
        yield base
    finally:
        router.stop()
        echo.stop()


def echoed(response: requests.Response) -> dict:
    assert response.status_code == 201, response.text
    return response.json()


def header_map(report: dict) -> dict[str, str]:
    return {name.lower(): value for name, value in report["headers"]}


def test_method_path_query_body_and_end_to_end_headers_pass_through(echo_router):
    response = requests.put(
        f"{echo_router}/cobrowse/things/1?a=1&b=%20x",
        data=b'{"k": "v"}',
        headers={"Content-Type": "application/json", "X-Custom": "kept", "Origin": "http://o.test"},
        timeout=5,
    )
    report = echoed(response)
    assert report["method"] == "PUT"
    assert report["path"] == "/cobrowse/things/1?a=1&b=%20x"
    assert report["body"] == '{"k": "v"}'
    headers = header_map(report)
    assert headers["x-custom"] == "kept"
    assert headers["origin"] == "http://o.test"
    assert headers["content-type"] == "application/json"


def test_status_reason_and_every_set_cookie_come_back(echo_router):
    response = requests.get(f"{echo_router}/cobrowse/x", timeout=5)
    assert response.status_code == 201
    assert response.reason == "Fine Thanks"
    assert response.raw.headers.getlist("Set-Cookie") == ["first=1; Path=/", "second=2; Path=/"]
    assert "keep-alive" not in {name.lower() for name in response.headers}


def test_hop_by_hop_headers_are_dropped_and_forwarded_headers_set(echo_router):
    report = echoed(
        requests.get(
            f"{echo_router}/cobrowse/x",
            headers={
                "Connection": "keep-alive, X-Secret-Hop",
                "X-Secret-Hop": "must not pass",
                "Keep-Alive": "timeout=1",
                "TE": "trailers",
                "X-Forwarded-For": "6.6.6.6",  # a client claiming another address
                "X-Forwarded-Proto": "https",
            },
            timeout=5,
        )
    )
    headers = header_map(report)
    for name in ("x-secret-hop", "keep-alive", "te"):
        assert name not in headers
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-host"] == echo_router.removeprefix("http://")


def test_upstream_connections_are_pooled_and_kept_alive(echo_router):
    with requests.Session() as client:
        ports = {
            echoed(client.get(f"{echo_router}/cobrowse/x", timeout=5))["peerPort"] for _ in range(5)
        }
    assert len(ports) == 1


def test_body_over_the_limit_is_413_json(echo_router):
    response = requests.post(f"{echo_router}/cobrowse/x", data=b"x" * 2000, timeout=5)
    assert response.status_code == 413
    assert "1000" in response.json()["errorMessage"]
    chunked = requests.post(
        f"{echo_router}/cobrowse/x", data=iter([b"x" * 600, b"y" * 600]), timeout=5
    )
    assert chunked.status_code == 413


def test_chunked_bodies_are_forwarded_with_a_length(echo_router):
    report = echoed(
        requests.post(f"{echo_router}/cobrowse/x", data=iter([b"ab", b"cd"]), timeout=5)
    )
    assert report["body"] == "abcd"
    assert header_map(report)["content-length"] == "4"


def test_upstream_reset_is_502_json(echo_router):
    response = requests.get(f"{echo_router}/cobrowse/reset", timeout=5)
    assert response.status_code == 502
    assert response.json()["node"] == "echo"


def test_upstream_timeout_is_504_json(echo_router):
    response = requests.get(f"{echo_router}/cobrowse/slow", timeout=10)
    assert response.status_code == 504
    assert response.json()["node"] == "echo"


def test_garbage_is_400_json_and_the_router_stays_up(echo_router):
    host, port = echo_router.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        raw.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        answer = raw.recv(4096)
    assert answer.startswith(b"HTTP/1.1 400")
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["errorMessage"]
    assert requests.get(f"{echo_router}/health", timeout=5).status_code == 200


def test_the_router_reports_its_node(echo_router):
    status = wait_until(
        lambda: requests.get(f"{echo_router}/lb/status", timeout=5).json(), 5, "status"
    )
    (node,) = status["nodes"]
    assert node["name"] == "echo"
    assert node["state"] == "up"
    assert node["ringShare"] == 1.0
