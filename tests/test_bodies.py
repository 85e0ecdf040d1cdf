"""Request bodies: chunked ones are read and limited too, and unreadable ones are a 400."""

from __future__ import annotations

import asyncio
import json

import pytest

LIVE = "/cobrowse/rest/live"


def chunked_post(client, path, body):
    # What the server hands over for `Transfer-Encoding: chunked`: no Content-Length, the body
    # decoded into ASGI body events.
    return client.simulate_post(
        path,
        body=body,
        headers={"Transfer-Encoding": "chunked", "Content-Type": "application/json"},
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


async def post_then_disconnect(app, path: str, announced: int, sent: bytes):
    """Speak ASGI as a server does when a client announces a body and leaves part-way."""
    events = [
        {"type": "http.request", "body": sent, "more_body": True},
        {"type": "http.disconnect"},
    ]
    answer: dict[str, object] = {"body": b""}

    async def receive():
        return events.pop(0) if events else {"type": "http.disconnect"}

    async def send(message):
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
        else:
            answer["body"] += message.get("body", b"")

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/json"),
            (b"content-length", str(announced).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8701),
    }
    await app(scope, receive, send)
    return answer["status"], json.loads(answer["body"])


def test_a_body_cut_short_is_400(client):
    status, body = asyncio.run(post_then_disconnect(client.app, f"{LIVE}/sessions", 100, b'{"a": '))
    assert status == 400
    assert body == {
        "errorMessage": "The body could not be read.",
        "request": "sessions.create",
    }
