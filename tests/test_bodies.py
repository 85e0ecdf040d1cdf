"""Request bodies: chunked ones are read and limited too, and unreadable ones are a 400."""

from __future__ import annotations

import io

import pytest

LIVE = "/cobrowse/rest/live"
# What a server hands over for `Transfer-Encoding: chunked`: no CONTENT_LENGTH, a decoded stream.
CHUNKED = {"CONTENT_LENGTH": ""}


def chunked_post(client, path, body, **extras):
    return client.simulate_post(
        path,
        body=body,
        headers={"Transfer-Encoding": "chunked", "Content-Type": "application/json"},
        extras={**CHUNKED, **extras},
    )


def test_a_chunked_body_is_read(client):
    # It used to be read as empty: screen-capture said its body was missing.
    user = client.simulate_post(f"{LIVE}/sessions").json["userToken"]
    result = chunked_post(
        client, f"{LIVE}/users/{user}/screen-capture", b'{"screen-capture": "start"}'
    )
    assert result.status_code == 200, result.text
    assert result.json == {"screen-capture": "enabled"}


@pytest.mark.parametrize(("size", "status"), [(100, 200), (101, 413)])
def test_a_chunked_body_is_limited(make_client, size, status):
    client = make_client(security={"maxBodySize": "100"})
    body = b"{" + b" " * (size - 2) + b"}"
    assert chunked_post(client, f"{LIVE}/sessions", body).status_code == status


class BrokenStream(io.RawIOBase):
    """A server's input stream that fails as Gunicorn's does on a malformed chunk."""

    def read(self, size=-1):
        raise ValueError("Invalid chunk size")


def test_an_unreadable_body_is_400(client):
    result = chunked_post(client, f"{LIVE}/sessions", b"", **{"wsgi.input": BrokenStream()})
    assert result.status_code == 400
    assert result.json == {
        "errorMessage": "The body could not be read.",
        "request": "sessions.create",
    }
