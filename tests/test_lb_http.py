"""The router's reading of node responses: fields cut from the raw head, framing by httptools."""

from __future__ import annotations

import httptools
import pytest

from lb.http import HeaderBlock, Response, forwarded_fields
from lb.upstream import UpstreamConnection, UpstreamPool

RESPONSES = [
    b"HTTP/1.1 200 OK\r\nDate: x\r\nX-Request-ID: a\r\nContent-Length: 3\r\n"
    b"Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\nabc",
    b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\nX-Hop: no\r\nKeep-Alive: timeout=5\r\n"
    b"Transfer-Encoding: chunked\r\nX-Kept: yes\r\nX-Hopper: kept\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    b"HTTP/1.1 204 No Content\r\n\r\n",
    b"HTTP/1.1 404 Not Found\r\nx-request-idx: kept\r\nCONNECTION: close\r\ncontent-length: 0\r\n"
    b"TE: x\r\nTEA: kept\r\nUpgrade: h2c\r\nProxy-Connection: x\r\n\r\n",
]


class FieldByField:
    """The reference: every field through HeaderBlock, as the client side reads requests."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.headers = HeaderBlock()

    def on_header(self, name: bytes, value: bytes) -> None:
        lower = name.lower()
        if lower != b"x-request-id":
            self.headers.add(lower, name, value)


@pytest.mark.parametrize("raw", RESPONSES)
def test_fields_cut_from_the_head_are_those_a_header_block_keeps(raw):
    reference = FieldByField()
    reference.parser.feed_data(raw)
    head = raw[: raw.index(b"\r\n\r\n") + 2]
    assert forwarded_fields(head[head.index(b"\r\n") :]) == reference.headers.render()


class FakeTransport:
    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass


def read(chunks: list[bytes], head_only: bool = False) -> Response:
    got: list[Response | None] = []
    connection = UpstreamConnection(UpstreamPool("127.0.0.1", 1, 1.0))
    connection.connection_made(FakeTransport())  # type: ignore[arg-type]
    connection.send(b"", head_only, lambda _c, response, _e: got.append(response), 5.0)
    for chunk in chunks:
        connection.data_received(chunk)
    (response,) = got
    assert response is not None
    return response


def test_a_response_in_pieces_with_an_interim_answer_first():
    raw = (
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Fine Thanks\r\nX-A: 1\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
    )
    for cut in (5, 30, 40, len(raw) - 3):
        response = read([raw[:cut], raw[cut:]])
        assert (response.status, response.reason) == (201, b"Fine Thanks")
        assert response.head == b"X-A: 1\r\n"
        assert response.body == b"ok"
        assert response.keep_alive


def test_a_head_answer_ends_with_its_head():
    response = read([b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\nX-B: 2\r\n\r\n"], head_only=True)
    assert response.head == b"X-B: 2\r\n"
    assert response.body == b""
    assert not response.keep_alive  # after a HEAD, the connection is not reused
