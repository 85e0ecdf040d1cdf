"""Hostile and malformed requests against real nodes and the real router.

Each gets a clear 4xx JSON answer in the one error shape (or, where ignoring the input is right,
a normal answer), and the cluster keeps serving afterwards. One cluster serves the whole module:
two nodes of two workers, whose `[security] requestTimeout` (the time a request may take to
arrive) is cut to a few seconds, and the router with `[lb] clientTimeout = 2`.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from cobrowse.config.loader import load_cluster
from tests.helpers import COBROWSE, Process, wait_until, wait_until_responds, write_cluster

pytestmark = pytest.mark.bad_input

NODE_REQUEST_TIMEOUT_S = 4  # [security] requestTimeout
ROUTER_CLIENT_TIMEOUT_S = 2
ALLOWED = "http://localhost:8080"
ERROR_FIELDS = {"errorMessage", "request", "node", "screen-capture"}


@dataclass
class Cluster:
    """Where the module's cluster listens."""

    nodes: dict[str, str]  # name -> base URL
    router: str

    @property
    def node(self) -> str:
        return self.nodes["node-1"]

    def targets(self) -> dict[str, str]:
        """A node directly, and the router in front of the nodes."""
        return {"node": self.node, "router": self.router}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    directory = tmp_path_factory.mktemp("bad-input")
    config_path = write_cluster(
        directory,
        nodes=2,
        workers=2,
        sections={
            "lb": {"clientTimeout": str(ROUTER_CLIENT_TIMEOUT_S)},
            "security": {"requestTimeout": str(NODE_REQUEST_TIMEOUT_S)},
        },
    )
    config = load_cluster(config_path)
    processes: list[Process] = []
    try:
        for node in config.nodes:
            processes.append(
                Process(
                    [COBROWSE, "node", "--config", str(config_path), "--name", node.name],
                    directory / f"{node.name}.log",
                )
            )
        processes.append(
            Process([COBROWSE, "router", "--config", str(config_path)], directory / "router.log")
        )
        router = f"http://{config.router.bind}"
        nodes = {node.name: f"{node.base_url}/cobrowse" for node in config.nodes}
        for base in nodes.values():
            wait_until_responds(f"{base}/health", deadline=20)
        wait_until_responds(f"{router}/health", deadline=20)
        wait_until(
            lambda: all(
                node["state"] == "up"
                for node in requests.get(f"{router}/lb/status", timeout=2).json()["nodes"]
            ),
            deadline=15,
            what="the router sees both nodes up",
        )
        yield Cluster(nodes, f"{router}/cobrowse")
    finally:
        for process in processes:
            process.stop()


# Talking HTTP by hand, for what HTTP libraries refuse to send.


@dataclass
class Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @classmethod
    def of(cls, response: requests.Response) -> Answer:
        headers = {name.lower(): value for name, value in response.headers.items()}
        return cls(response.status_code, headers, response.content)


def split_url(base: str) -> tuple[str, int, str]:
    """Return host, port and path of `http://host:port/path`."""
    authority, _, path = base.removeprefix("http://").partition("/")
    host, _, port = authority.rpartition(":")
    return host, int(port), "/" + path


def exchange(base: str, head: bytes, body: bytes = b"", timeout: float = 10.0) -> Answer:
    """Send `head` (request line and headers, without the blank line) and `body` as they are."""
    host, port, _ = split_url(base)
    request = head + b"\r\nConnection: close\r\n\r\n" + body
    received = b""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(request)
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
    return parse_answer(received)


def parse_answer(raw: bytes) -> Answer:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    if not lines[0].startswith("HTTP/1.1 "):
        raise AssertionError(f"not an HTTP answer: {raw[:200]!r}")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = body[: int(headers["content-length"])]
    return Answer(int(lines[0].split()[1]), headers, body)


def request_head(method: str, base: str, path: str, *headers: bytes) -> bytes:
    """Return a request line for `base` + `path` (bytes sent as they are) and its headers."""
    host, port, prefix = split_url(base)
    lines = [b"%s %s%s HTTP/1.1" % (method.encode(), prefix.encode(), path.encode("latin-1"))]
    lines.append(b"Host: %s:%d" % (host.encode(), port))
    lines.extend(headers)
    return b"\r\n".join(lines)


# What every case must see.


def assert_json_error(answer: Answer, *statuses: int, what: str = "") -> dict[str, Any]:
    """Check a 4xx in the one error shape; return its body."""
    context = f"{what}: {answer.status} {answer.body[:300]!r}"
    assert answer.status in statuses, context
    assert answer.headers.get("content-type", "").startswith("application/json"), context
    assert b"Traceback" not in answer.body, context
    body = json.loads(answer.body)
    assert isinstance(body, dict), context
    assert isinstance(body.get("errorMessage"), str), context
    assert body["errorMessage"], context
    assert set(body) <= ERROR_FIELDS, context
    return body


def call(reliability, method: str, url: str, **kwargs: Any) -> Answer:
    """Make a request with requests, record its outcome, and return the answer."""
    timeout = kwargs.pop("timeout", 10)
    try:
        response = requests.request(method, url, timeout=timeout, **kwargs)
    except requests.RequestException as error:
        reliability.record(error)
        raise
    reliability.record(response.status_code)
    return Answer.of(response)


def raw(reliability, base: str, head: bytes, body: bytes = b"", timeout: float = 10.0) -> Answer:
    try:
        answer = exchange(base, head, body, timeout)
    except OSError as error:
        reliability.record(error)
        raise
    reliability.record(answer.status)
    return answer


def create(reliability, base: str, **kwargs: Any) -> dict[str, str]:
    answer = call(reliability, "POST", f"{base}/rest/live/sessions", **kwargs)
    assert answer.status == 200, answer.body
    return json.loads(answer.body)


def assert_still_serving(cluster: Cluster, reliability) -> None:
    """Every node and the router answer /health 200, and a create works on each path."""
    router_root = cluster.router.removesuffix("/cobrowse")
    for url in [*(f"{base}/health" for base in cluster.nodes.values()), f"{router_root}/health"]:
        answer = call(reliability, "GET", url)
        assert answer.status == 200, (url, answer.status, answer.body)
    for base in cluster.targets().values():
        create(reliability, base)


def json_post(base: str, path: str, body: bytes, content_type: bytes | None) -> tuple[bytes, bytes]:
    headers = [b"Content-Length: %d" % len(body)]
    if content_type is not None:
        headers.append(b"Content-Type: " + content_type)
    return request_head("POST", base, path, *headers), body


# The cases.

MALFORMED_JSON = [
    b"{",
    b"[1, 2]",
    b'"a string"',
    b"null",
    b'{"a": 1} trailing',
    b"\xff\xfe{}",
    b"{'single': 'quotes'}",
    b"[" * 5000,  # deeper than the JSON decoder's stack
    b'{"a": ' * 5000,
]


def test_malformed_json_bodies(cluster, reliability):
    """Malformed JSON body on create and screen-capture."""
    for target, base in cluster.targets().items():
        user = create(reliability, base)["userToken"]
        for path in ("/rest/live/sessions", f"/rest/live/users/{user}/screen-capture"):
            for body in MALFORMED_JSON:
                answer = raw(reliability, base, *json_post(base, path, body, b"application/json"))
                assert_json_error(answer, 400, what=f"{target} {path} {body[:20]!r}")
    reliability.notes = "400 JSON for each body, direct and through the router"
    assert_still_serving(cluster, reliability)


def test_oversized_bodies(cluster, reliability):
    """Oversized body (Content-Length, chunked, or a false length)."""
    big = b'{"pad": "' + b"x" * 70_000 + b'"}'
    for target, base in cluster.targets().items():
        sized_request = json_post(base, "/rest/live/sessions", big, b"application/json")
        sized = raw(reliability, base, *sized_request)
        assert_json_error(sized, 413, what=f"{target} Content-Length")
        chunked_head = request_head(
            "POST",
            base,
            "/rest/live/sessions",
            b"Content-Type: application/json",
            b"Transfer-Encoding: chunked",
        )
        # Nine 8 000-byte chunks and no last chunk: the limit is hit first.
        chunks = b"".join(b"1f40\r\n%s\r\n" % (b"x" * 8000) for _ in range(9))
        chunked = raw(reliability, base, chunked_head, chunks)
        assert_json_error(chunked, 413, what=f"{target} chunked")
        claimed = request_head(
            "POST",
            base,
            "/rest/live/sessions",
            b"Content-Type: application/json",
            b"Content-Length: 1000000000000",
        )
        assert_json_error(raw(reliability, base, claimed, b"{}"), 413, what=f"{target} claimed")
    reliability.notes = "413 JSON before the body is read, direct and through the router"
    assert_still_serving(cluster, reliability)


WRONG_TYPES = [
    b"text/plain",
    b"application/x-www-form-urlencoded",
    b"multipart/form-data; boundary=x",
    b"application/xml",
    b"application/jsonx",
    None,  # a body and no Content-Type at all
]


def test_wrong_content_types(cluster, reliability):
    """Wrong content type on create and screen-capture."""
    for target, base in cluster.targets().items():
        user = create(reliability, base)["userToken"]
        for path in ("/rest/live/sessions", f"/rest/live/users/{user}/screen-capture"):
            for content_type in WRONG_TYPES:
                body = b'{"screen-capture": "start"}'
                answer = raw(reliability, base, *json_post(base, path, body, content_type))
                assert_json_error(answer, 415, what=f"{target} {path} {content_type!r}")
    reliability.notes = "415 JSON, direct and through the router"
    assert_still_serving(cluster, reliability)


def test_huge_numbers_of_headers(cluster, reliability):
    """A huge number of headers, a huge header and an over-long request line."""
    for target, base in cluster.targets().items():
        many = request_head(
            "GET", base, "/health", *(b"X-Filler-%d: %d" % (n, n) for n in range(1000))
        )
        assert_json_error(raw(reliability, base, many), 431, what=f"{target} 1000 headers")
        huge = request_head("GET", base, "/health", b"X-Huge: " + b"h" * 20_000)
        assert_json_error(raw(reliability, base, huge), 431, what=f"{target} one huge header")
        long_line = request_head("GET", base, "/rest/live/sessions/" + "1" * 20_000)
        assert_json_error(raw(reliability, base, long_line), 414, what=f"{target} request line")
    reliability.notes = "431 or 414 JSON (Gunicorn's own answers, now JSON), node and router"
    assert_still_serving(cluster, reliability)


BAD_TOKENS = [
    "sessions/" + "1" * 3000,  # over-long, under the request-line limit
    "users/" + "1" * 3000 + "/session/stop",
    "sessions/%C3%A9%C3%A9%C3%A9",  # non-ASCII, percent-encoded
    "users/1" + "%C3%A9" * 22 + "/ping",
    "sessions/\xc3\xa9\xc3\xa9",  # non-ASCII bytes sent raw
    "sessions/%EF%BC%91%EF%BC%92%EF%BC%93%EF%BC%94%EF%BC%95%EF%BC%96%EF%BC%97%EF%BC%98%EF%BC%99",
    "sessions/123456789%0A",
    "sessions/1234%005678",
    "users/1" + "a" * 21 + "%00/session/stop",
]


def test_over_long_and_non_ascii_tokens(cluster, reliability):
    """Over-long or non-ASCII tokens."""
    for target, base in cluster.targets().items():
        for path in BAD_TOKENS:
            head = request_head("GET", base, "/rest/live/" + path, b"Origin: " + ALLOWED.encode())
            assert_json_error(raw(reliability, base, head), 400, what=f"{target} {path[:40]}")
    reliability.notes = "400 JSON naming the token format, direct and through the router"
    assert_still_serving(cluster, reliability)


TRAVERSALS = [
    "/rest/live/sessions/..%2F..%2Fhealth",
    "/rest/live/sessions/%2e%2e%2f%2e%2e%2fmetrics",
    "/rest/live/sessions/../../health",
    "/rest/live/sessions/%2E%2E",
    "/rest/live/users/..%2F..%2F..%2Fhealth/ping",
    "/rest/live/users/../../../health/session/stop",
    "/rest/live/../live/sessions/123456789",
    "/rest/live/sessions/..\\..\\health",
]


def test_path_traversal_in_tokens(cluster, reliability):
    """Path traversal in tokens (percent-encoded and dot segments)."""
    for target, base in cluster.targets().items():
        for path in TRAVERSALS:
            head = request_head("GET", base, path, b"Origin: " + ALLOWED.encode())
            # 400 when it reaches a token check, 404 when no route has that shape: never another
            # resource's answer.
            assert_json_error(raw(reliability, base, head), 400, 404, what=f"{target} {path}")
    reliability.notes = "400 or 404 JSON, never another resource's answer"
    assert_still_serving(cluster, reliability)


GARBAGE_STICKINESS = [
    b"",
    b"no-such-node",
    b'"node-1"',
    b"%00%FF%0D%0A",
    b"\xff\xfe\xfd",
    b"z" * 4000,
]
DUPLICATE_COOKIES = [
    b"gcbSessionServer=node-2; gcbSessionServer=node-1",
    b"gcbSessionServer=node-1; gcbSessionServer=node-2",
    b"gcbSessionServer; ;;=; gcbSessionServer==node-1",
]


def sticky_hints() -> list[tuple[str, bytes]]:
    """Garbage in the cookie and in the header, and duplicate cookies."""
    hints = [("Cookie", b"gcbSessionServer=" + value) for value in GARBAGE_STICKINESS]
    hints += [("gcbSessionServer", value) for value in GARBAGE_STICKINESS if value]
    return hints + [("Cookie", cookie) for cookie in DUPLICATE_COOKIES]


def test_garbage_and_duplicate_sticky_cookies(cluster, reliability):
    """Garbage or duplicate gcbSessionServer cookies and headers."""
    tokens = [create(reliability, base)["sessionToken"] for base in cluster.nodes.values()]
    for target, base in cluster.targets().items():
        for name, value in sticky_hints():
            what = f"{target} {name}: {value[:40]!r}"
            head = request_head("POST", base, "/rest/live/sessions", name.encode() + b": " + value)
            answer = raw(reliability, base, head + b"\r\nContent-Length: 0")
            # A stickiness hint that names no live node is only a hint: ignored.
            assert answer.status == 200, (what, answer.status, answer.body)
            for token in tokens:
                # A hint naming the other node earns a 307 to the owner's URL: followed.
                got = call(
                    reliability,
                    "GET",
                    f"{base}/rest/live/sessions/{token}",
                    headers={"Origin": ALLOWED, name: value},
                )
                assert got.status == 200, (what, token, got.status, got.body)
    reliability.notes = "ignored: creates succeed, sessions still found (via 307 when misdirected)"
    assert_still_serving(cluster, reliability)


def test_origin_null(cluster, reliability):
    """Origin: null."""
    for target, base in cluster.targets().items():
        session = create(reliability, base)
        null = {"Origin": "null"}
        answers = [
            call(
                reliability,
                "GET",
                f"{base}/rest/live/sessions/{session['sessionToken']}",
                headers=null,
            ),
            call(reliability, "POST", f"{base}/rest/live/sessions", headers=null),
            call(
                reliability,
                "GET",
                f"{base}/rest/live/users/{session['userToken']}/session/stop",
                headers=null,
            ),
            call(
                reliability,
                "OPTIONS",
                f"{base}/rest/live/sessions",
                headers={**null, "Access-Control-Request-Method": "POST"},
            ),
        ]
        for answer in answers:
            assert_json_error(answer, 403, what=target)
            assert "access-control-allow-origin" not in answer.headers
    reliability.notes = "403 JSON without CORS headers on get, create, stop and preflight"
    assert_still_serving(cluster, reliability)


LOOKALIKES = [
    "http://example.com.evil.test",
    "https://example.com.evil.test",
    "https://www.example.com.evil.test",
    "https://evilexample.com",
    "https://example.com",  # the apex: `*.example.com` is subdomains only
    "http://www.example.com",  # the wrong scheme
    "https://www.example.com:8443",
    "https://www.example.com.",
    "https://www.example.com@evil.test",
    "https://www.ex\u0430mple.com",  # a Cyrillic "a"
]


def test_lookalike_origins(cluster, reliability):
    """Lookalike origins against *.example.com."""
    for target, base in cluster.targets().items():
        token = create(reliability, base)["sessionToken"]
        url = f"{base}/rest/live/sessions/{token}"
        allowed = call(reliability, "GET", url, headers={"Origin": "https://www.example.com"})
        assert allowed.status == 200
        for origin in LOOKALIKES:
            answer = call(
                reliability, "GET", url, headers={"Origin": origin.encode("utf-8", "replace")}
            )
            assert_json_error(answer, 403, what=f"{target} {origin}")
            assert "access-control-allow-origin" not in answer.headers
    reliability.notes = "403 JSON, origin never echoed; https://www.example.com still allowed"
    assert_still_serving(cluster, reliability)


def test_referer_without_a_scheme(cluster, reliability):
    """A Referer without a scheme."""
    for target, base in cluster.targets().items():
        token = create(reliability, base)["sessionToken"]
        url = f"{base}/rest/live/sessions/{token}"
        with_scheme = call(reliability, "GET", url, headers={"Referer": f"{ALLOWED}/page"})
        assert with_scheme.status == 200
        for referer in ("localhost:8080/page", "//localhost:8080/page", "www.example.com"):
            answer = call(reliability, "GET", url, headers={"Referer": referer})
            assert_json_error(answer, 403, what=f"{target} {referer}")
    reliability.notes = "403 JSON; the same Referer with a scheme is allowed"
    assert_still_serving(cluster, reliability)


# Slow clients.


@dataclass
class Trickle:
    """A request whose `trickled` part goes a byte at a time, in a thread, after `sent`."""

    base: str
    sent: bytes
    trickled: bytes
    interval: float = 0.25
    answer: Answer | None = None
    seconds: float = 0.0
    error: BaseException | None = None

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Trickle:
        self.thread.start()
        return self

    def _run(self) -> None:
        host, port, _ = split_url(self.base)
        started = time.monotonic()
        try:
            with socket.create_connection((host, port), timeout=30) as sock:
                received = b""
                sock.sendall(self.sent)
                rest = self.trickled
                try:
                    for index in range(len(rest)):
                        sock.sendall(rest[index : index + 1])
                        # Stop as soon as the server answers: that is it cutting us off.
                        if select.select([sock], [], [], self.interval)[0]:
                            break
                except OSError:
                    pass  # the server cut us off: read its answer
                sock.settimeout(10)
                while True:
                    try:
                        chunk = sock.recv(65536)
                    except ConnectionResetError:
                        break
                    if not chunk:
                        break
                    received += chunk
            self.answer = parse_answer(received)
        except BaseException as error:
            self.error = error
        self.seconds = time.monotonic() - started

    def join(self, deadline: float) -> Answer:
        self.thread.join(deadline)
        assert not self.thread.is_alive(), "the trickling request was never cut off"
        if self.error is not None:
            raise self.error
        assert self.answer is not None
        return self.answer


def serve_others_while(trickle: Trickle, base: str, reliability) -> list[float]:
    """Create sessions on fresh connections until the trickle ends; return their latencies."""
    # Others come while the slow client is under way: each worker's event loop serves them.
    time.sleep(0.3)
    latencies = []
    while trickle.thread.is_alive():
        started = time.monotonic()
        create(reliability, base, timeout=3)
        latencies.append(time.monotonic() - started)
        time.sleep(0.05)
    return latencies


def trickled_create(base: str) -> tuple[bytes, bytes]:
    """Return a create's head, sent whole, and its body, to trickle."""
    head = request_head(
        "POST",
        base,
        "/rest/live/sessions",
        b"Content-Type: application/json",
        b"Content-Length: 200",
    )
    return head + b"\r\n\r\n", b"{" + b" " * 199


def check_cut_off(trickle: Trickle, deadline_s: float, latencies: list[float], reliability):
    answer = trickle.join(deadline=deadline_s + 15)
    reliability.record(answer.status)
    assert_json_error(answer, 408, what="trickle")
    assert answer.headers.get("connection") == "close"
    assert deadline_s - 0.5 <= trickle.seconds <= deadline_s + 5, trickle.seconds
    assert len(latencies) >= 5, latencies
    assert max(latencies) < 2.0, latencies  # nobody waited behind the slow client


def test_slow_body_through_the_router(cluster, reliability):
    """Slow client trickling its body through the router."""
    trickle = Trickle(cluster.router, *trickled_create(cluster.router)).start()
    latencies = serve_others_while(trickle, cluster.router, reliability)
    check_cut_off(trickle, ROUTER_CLIENT_TIMEOUT_S, latencies, reliability)
    reliability.notes = (
        f"408 JSON after {trickle.seconds:.1f} s; {len(latencies)} other creates meanwhile, "
        f"slowest {max(latencies) * 1000:.0f} ms"
    )
    assert_still_serving(cluster, reliability)


def test_slow_body_directly_to_a_node(cluster, reliability):
    """Slow client trickling its body directly to a node."""
    trickle = Trickle(cluster.node, *trickled_create(cluster.node)).start()
    latencies = serve_others_while(trickle, cluster.node, reliability)
    check_cut_off(trickle, NODE_REQUEST_TIMEOUT_S, latencies, reliability)
    reliability.notes = (
        f"408 JSON after {trickle.seconds:.1f} s; {len(latencies)} other creates meanwhile, "
        f"slowest {max(latencies) * 1000:.0f} ms"
    )
    assert_still_serving(cluster, reliability)


def test_slow_headers_directly_to_a_node(cluster, reliability):
    """Slow client trickling its headers directly to a node."""
    head = request_head("GET", cluster.node, "/health", *(b"X-Slow-%d: 1" % n for n in range(20)))
    whole = head + b"\r\n\r\n"
    trickle = Trickle(cluster.node, whole[:1], whole[1:]).start()
    latencies = serve_others_while(trickle, cluster.node, reliability)
    check_cut_off(trickle, NODE_REQUEST_TIMEOUT_S, latencies, reliability)
    reliability.notes = (
        f"408 JSON after {trickle.seconds:.1f} s; {len(latencies)} other creates meanwhile, "
        f"slowest {max(latencies) * 1000:.0f} ms"
    )
    assert_still_serving(cluster, reliability)
