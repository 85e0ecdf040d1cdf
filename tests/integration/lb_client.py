"""Session calls through a real load balancer (HAProxy, nginx): no cookie jar, checked answers."""

from __future__ import annotations

import requests

ORIGIN = {"Origin": "http://localhost:8080"}


def create(api: str, **kwargs: object) -> dict:
    response = requests.post(f"{api}/sessions", timeout=10, **kwargs)  # no cookie jar
    assert response.status_code == 200, response.text
    assert response.cookies["gcbSessionServer"] == response.json()["sessionServerName"]
    return response.json()


def get(
    api: str, token: str, headers: dict[str, str] | None = None, **kwargs: object
) -> requests.Response:
    headers = {**ORIGIN, **(headers or {})}
    return requests.get(f"{api}/sessions/{token}", headers=headers, timeout=10, **kwargs)


def create_on(api: str, node: str) -> dict:
    """Create sessions until one lands on `node` (round-robin: within a few)."""
    for _ in range(12):
        session = create(api)
        if session["sessionServerName"] == node:
            return session
    raise AssertionError(f"no session landed on {node}")
