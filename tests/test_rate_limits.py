"""Rate limits: fixed one-minute windows per client and operation, quarantine, node-wide."""

from __future__ import annotations

import json

import pytest

LIVE = "/cobrowse/rest/live"
CREATE = f"{LIVE}/sessions"


def create(client, **kwargs):
    return client.simulate_post(CREATE, **kwargs)


@pytest.fixture
def limited(make_client, clock):
    # Start at the beginning of a minute so that windows are predictable.
    clock.current_ms -= clock.current_ms % 60_000
    return make_client(security={"rateLimit.sessions.create": "3"})


def test_the_limit_then_the_vendor_message(limited):
    assert [create(limited).status_code for _ in range(3)] == [200, 200, 200]
    refused = create(limited)
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "30"
    assert json.loads(refused.text) == {
        "errorMessage": "The rate limit for the request 'sessions.create' has been reached.\n"
        "Further requests of the same type will be ignored for 30 seconds.",
        "request": "sessions.create",
    }


def test_quarantine_lasts_the_delay(limited, clock):
    for _ in range(4):
        create(limited)
    clock.advance(29)
    assert create(limited).status_code == 429
    assert int(create(limited).headers["Retry-After"]) == 1
    clock.advance(31)  # quarantine over, and a new window
    assert create(limited).status_code == 200


def test_windows_are_fixed_not_sliding(limited, clock):
    clock.advance(59)
    assert [create(limited).status_code for _ in range(3)] == [200, 200, 200]
    clock.advance(1)  # the next minute: a fresh count, although the last 3 were 1 s ago
    assert [create(limited).status_code for _ in range(3)] == [200, 200, 200]


def test_other_operations_and_other_clients_are_counted_apart(limited):
    for _ in range(4):
        create(limited)
    assert create(limited, remote_addr="203.0.113.7").status_code == 200
    assert limited.simulate_get("/cobrowse/health").status_code == 200


def test_behind_a_trusted_proxy_the_first_forwarded_address_is_the_client(limited):
    for index in range(4):
        answer = create(limited, headers={"X-Forwarded-For": f"198.51.100.1, 10.0.0.{index}"})
    assert answer.status_code == 429
    assert create(limited, headers={"X-Forwarded-For": "198.51.100.2"}).status_code == 200


def test_an_untrusted_peer_cannot_dodge_the_limit_with_a_forwarded_header(limited):
    statuses = [
        create(
            limited, remote_addr="203.0.113.9", headers={"X-Forwarded-For": f"1.1.1.{i}"}
        ).status_code
        for i in range(4)
    ]
    assert statuses == [200, 200, 200, 429]


def test_zero_delay_means_forever(make_client, clock):
    client = make_client(
        security={"rateLimit.sessions.create": "1", "rateLimitQuarantineDelay": "0"}
    )
    create(client)
    refused = create(client)
    assert refused.status_code == 429
    assert "will be ignored forever" in refused.json["errorMessage"]
    assert "Retry-After" not in refused.headers
    clock.advance(86_400)
    assert create(client).status_code == 429


def test_the_global_limit_applies_to_each_operation_but_not_to_health(make_client):
    client = make_client(security={"rateLimit": "2"})
    assert [create(client).status_code for _ in range(3)] == [200, 200, 429]
    assert all(client.simulate_get("/cobrowse/health").status_code == 200 for _ in range(5))
    explicit = make_client(security={"rateLimit": "2", "rateLimit.health": "1"})
    assert [explicit.simulate_get("/cobrowse/health").status_code for _ in range(2)] == [200, 429]


def test_counts_are_node_wide(make_client, limited):
    other_worker = make_client(security={"rateLimit.sessions.create": "3"})  # same database
    assert create(limited).status_code == 200
    assert create(other_worker).status_code == 200
    assert create(limited).status_code == 200
    assert create(other_worker).status_code == 429


def test_no_limit_means_no_counting(client, make_settings):
    import sqlite3

    for _ in range(5):
        create(client)
    rows = sqlite3.connect(make_settings().database_path).execute(
        "SELECT count(*) FROM rate_limits"
    )
    assert rows.fetchone()[0] == 0
