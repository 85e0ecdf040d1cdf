"""The node's Gunicorn worker: its own errors in the JSON shape, and one deadline per request."""

from __future__ import annotations

import json
import socket
import time
from types import SimpleNamespace

import pytest
from gunicorn.http import errors as http_errors

from cobrowse.errors import RequestTimeoutError
from cobrowse.ops.workers import DeadlineSocket, error_answer, json_error_bytes


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (http_errors.LimitRequestHeaders("Limit request headers fields"), 431),
        (http_errors.LimitRequestLine(9000, 8190), 414),
        (http_errors.InvalidRequestLine("NOT HTTP"), 400),
        (http_errors.InvalidHeaderName("X\x00"), 400),
        (http_errors.InvalidChunkSize(b"zz"), 400),
        (http_errors.UnsupportedTransferCoding("gzip"), 501),
        (RequestTimeoutError("slow"), 408),
        (http_errors.InvalidResponseHeader("X-Bad"), 500),
        (RuntimeError("a bug"), 500),
    ],
)
def test_errors_outside_the_app_get_their_status(error, status):
    assert error_answer(error)[0] == status


def test_the_answer_is_json_in_the_one_shape_and_closes():
    status, reason, message = error_answer(http_errors.InvalidRequestLine('<script>"'))
    head, _, body = json_error_bytes(status, reason, message).partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 400 Bad Request"
    assert "Connection: close" in lines
    assert "Content-Type: application/json" in lines
    assert f"Content-Length: {len(body)}" in lines
    assert json.loads(body)["errorMessage"].startswith("The request is not valid HTTP")


@pytest.fixture
def pair():
    server, client = socket.socketpair()
    ours = DeadlineSocket.adopt(server, request_timeout=0.3)
    ours.setblocking(True)  # as Gunicorn's request threads do
    yield ours, client
    ours.close()
    client.close()


def test_a_trickling_request_runs_out_of_time(pair):
    server, client = pair
    server.start_request()
    server.request = SimpleNamespace(must_close=False)
    started = time.monotonic()

    def trickle_forever():
        while True:  # a byte every 0.05 s never ends the request: the deadline does
            client.sendall(b"x")
            server.recv(1)
            time.sleep(0.05)

    with pytest.raises(RequestTimeoutError):
        trickle_forever()
    assert 0.25 < time.monotonic() - started < 1.0
    assert server.request.must_close  # the 408 closes the connection


def test_a_stalled_request_runs_out_of_time(pair):
    server, _ = pair
    server.start_request()
    with pytest.raises(RequestTimeoutError):
        server.recv(10)


def test_after_the_answer_a_timeout_only_closes(pair):
    server, client = pair
    server.start_request()
    client.sendall(b"request")
    assert server.recv(100) == b"request"
    server.sendall(b"answer")
    # Draining an unread body: Gunicorn closes the connection on a plain TimeoutError.
    with pytest.raises(TimeoutError) as raised:
        server.recv(10)
    assert not isinstance(raised.value, RequestTimeoutError)


def test_each_request_has_its_own_deadline(pair):
    server, client = pair
    for _ in range(3):
        server.start_request()
        time.sleep(0.2)
        client.sendall(b"next")
        assert server.recv(100) == b"next"
