"""Router observation: route templates without tokens, the histogram, request IDs."""

from __future__ import annotations

import pytest

from lb.observe import LatencyHistogram, request_id_for, route_template

NODES = frozenset({b"node-1", b"node-2"})


@pytest.mark.parametrize(
    ("target", "template"),
    [
        (b"/cobrowse/rest/live/sessions", "/cobrowse/rest/live/sessions"),
        (
            b"/cobrowse/rest/live/sessions/123456789?x=1",
            "/cobrowse/rest/live/sessions/{sessionToken}",
        ),
        (
            b"/cobrowse/rest/live/users/1abc/session/stop",
            "/cobrowse/rest/live/users/{userToken}/session/stop",
        ),
        (b"/cobrowse/rest/live/users/1abc/ping", "/cobrowse/rest/live/users/{userToken}/ping"),
        (
            b"/cobrowse/rest/live/users/1abc/secret-thing",
            "/cobrowse/rest/live/users/{userToken}/other",
        ),
        (
            b"/node-2/cobrowse/rest/live/sessions/123456789",
            "/{node}/cobrowse/rest/live/sessions/{sessionToken}",
        ),
        (b"/cobrowse/health", "/cobrowse/health"),
        (b"/health", "/health"),
        (b"/lb/status", "/lb/status"),
        (b"/whatever/123456789", "other"),
        (b"/cobrowse/elsewhere/123456789", "other"),
    ],
)
def test_route_templates_never_carry_tokens(target, template):
    assert route_template(target, b"/cobrowse", NODES) == template


def test_histogram_is_cumulative_with_inf_last():
    histogram = LatencyHistogram((0.001, 0.01))
    for seconds in (0.0005, 0.001, 0.005, 3.0):
        histogram.observe(seconds)
    assert histogram.cumulative() == [("0.001", 2), ("0.01", 3), ("+Inf", 4)]
    assert histogram.total_seconds == pytest.approx(3.0065)


@pytest.mark.parametrize(
    ("incoming", "kept"),
    [
        (b"abc-DEF-123", True),
        (b"x" * 255, True),
        (b"x" * 256, False),
        (b"a b", False),
        (b'a"b', False),
        (b"a\r\nb", False),
        (b"", False),
    ],
)
def test_request_ids(incoming, kept):
    made = request_id_for(incoming)
    assert (made == incoming) is kept
    assert request_id_for(made) == made
