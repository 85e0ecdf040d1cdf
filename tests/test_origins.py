"""allowedOrigins syntax: origins, wildcards and the vendor's per-origin filters."""

from __future__ import annotations

import pytest

from cobrowse.config.origins import OriginPolicy, OriginSyntaxError, parse_origin


def test_vendor_filter_example_parses():
    policy = OriginPolicy.parse(
        "http://a, http://b (*), http://c (sessions.get, health), http://d (sessions.*)"
    )
    decide = {rule.pattern: rule for rule in policy.rules}
    assert decide["http://a"].allows("sessions.stop")
    assert decide["http://b"].allows("sessions.create")
    assert decide["http://c"].allows("sessions.get")
    assert decide["http://c"].allows("health")
    assert not decide["http://c"].allows("sessions.create")
    assert decide["http://d"].allows("sessions.screen-capture")
    assert not decide["http://d"].allows("health")


@pytest.mark.parametrize(
    "text",
    [
        "ftp://a",
        "http://a/path",
        "http://a (unknown.op)",
        "http://a ()",
        "http://user@a",
        "http://a b",
    ],
)
def test_bad_entries_are_refused(text):
    with pytest.raises(OriginSyntaxError):
        OriginPolicy.parse(text)


def test_most_specific_entry_decides():
    policy = OriginPolicy.parse(
        "* (health), https://*.example.com (sessions.get), https://x.example.com"
    )
    assert policy.rule_for(parse_origin("https://x.example.com")).pattern == "https://x.example.com"
    assert policy.rule_for(parse_origin("https://y.example.com")).pattern == "https://*.example.com"
    assert policy.rule_for(parse_origin("http://other.test")).pattern == "*"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("http://LOCALHOST:80", "http://localhost"),
        ("https://a.test:443", "https://a.test"),
        ("https://a.test:8443", "https://a.test:8443"),
        ("null", None),
        ("http://a.test/path", None),  # an Origin header has no path
        ("http://a.test:99999", None),
        ("javascript:alert(1)", None),
        ("", None),
    ],
)
def test_origin_header_normalisation(header, expected):
    origin = parse_origin(header)
    assert (str(origin) if origin else None) == expected
