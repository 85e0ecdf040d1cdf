"""`[cross-origin] allowedOrigins`: which web origins may call which operations.

The syntax is the vendor's accepted-web-content-origins syntax::

    http://a, http://b (*), https://*.example.com (sessions.get, health), http://d (sessions.*)

An entry without a filter allows every operation. When several entries match an origin, the most
specific one decides: an exact origin, then the longest wildcard host, then `*`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

OPERATIONS = (
    "sessions.create",
    "sessions.get",
    "sessions.stop",
    "sessions.ping",
    "sessions.screen-capture",
    "sessions.join",
    "sessions.channel",
    "health",
)

_DEFAULT_PORTS = {"http": 80, "https": 443}
_ENTRY = re.compile(r"\s*(?P<origin>[^\s(,]+)\s*(?:\((?P<filters>[^)]*)\))?\s*(?:,|$)")
_HOST = re.compile(r"^(?:\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")


class OriginSyntaxError(ValueError):
    """An allowedOrigins entry that cannot be parsed."""


@dataclass(frozen=True, slots=True)
class Origin:
    """A normalised web origin: lower-case scheme and host, explicit port."""

    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        default = _DEFAULT_PORTS.get(self.scheme)
        host = f"[{self.host}]" if ":" in self.host else self.host
        suffix = "" if self.port == default else f":{self.port}"
        return f"{self.scheme}://{host}{suffix}"


@dataclass(frozen=True, slots=True)
class OriginRule:
    """One allowedOrigins entry: an origin pattern and the operations it allows."""

    pattern: str
    scheme: str | None  # None for `*`
    host: str | None  # exact host, `*.suffix`, or None for `*`
    port: int | None
    filters: tuple[str, ...]  # empty means every operation

    def allows(self, operation: str) -> bool:
        """Return whether this entry's filter admits `operation`."""
        if not self.filters:
            return True
        for name in self.filters:
            if name in ("*", operation):
                return True
            if name.endswith(".*") and operation.startswith(name[:-1]):
                return True
        return False

    @property
    def specificity(self) -> tuple[int, int]:
        if self.host is None:
            return (0, 0)
        if self.host.startswith("*."):
            return (1, len(self.host))
        return (2, 0)

    def matches(self, origin: Origin) -> bool:
        if self.host is None:
            return True
        if origin.scheme != self.scheme or origin.port != self.port:
            return False
        if self.host.startswith("*."):
            return origin.host.endswith(self.host[1:])
        return origin.host == self.host


def parse_origin(text: str, *, path_allowed: bool = False) -> Origin | None:
    """Parse an `Origin` header value (or, with `path_allowed`, a URL); None when it is not one.

    `null`, opaque schemes, credentials in the authority and unparseable ports are refused.
    """
    text = text.strip()
    if not text or text == "null" or len(text) > 2048:
        return None
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host or "@" in parts.netloc:
        return None
    if not path_allowed and (parts.path or parts.query or parts.fragment):
        return None
    if not host.isascii():
        return None
    return Origin(scheme, host, port if port is not None else _DEFAULT_PORTS[scheme])


def origin_of_referer(referer: str) -> Origin | None:
    """Return the origin part of a `Referer` header, or None when it has no scheme and host."""
    return parse_origin(referer, path_allowed=True)


def parse_rule(pattern: str, filters_text: str | None) -> OriginRule:
    """Parse one entry; raise OriginSyntaxError naming what is wrong."""
    filters: tuple[str, ...] = ()
    if filters_text is not None:
        filters = tuple(name.strip() for name in filters_text.split(",") if name.strip())
        if not filters:
            raise OriginSyntaxError(f"{pattern}: empty filter list '()'")
        for name in filters:
            if not _is_known_filter(name):
                known = ", ".join(OPERATIONS)
                raise OriginSyntaxError(
                    f"{pattern}: unknown operation {name!r} (known: {known}, or a prefix like "
                    "'sessions.*', or '*')"
                )
    if pattern == "*":
        return OriginRule(pattern, None, None, None, filters)
    parts = urlsplit(pattern)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise OriginSyntaxError(f"{pattern}: an origin is scheme://host[:port] with http or https")
    if parts.path not in ("", "/") or parts.query or parts.fragment or "@" in parts.netloc:
        raise OriginSyntaxError(f"{pattern}: an origin has no path, query or credentials")
    netloc = parts.netloc.lower()
    host, _, port_text = netloc.rpartition(":") if netloc.count(":") == 1 else (netloc, "", "")
    if not _HOST.match(host):
        raise OriginSyntaxError(f"{pattern}: {host!r} is not a host name or *.domain")
    try:
        port = int(port_text) if port_text else _DEFAULT_PORTS[scheme]
    except ValueError:
        raise OriginSyntaxError(f"{pattern}: bad port {port_text!r}") from None
    return OriginRule(pattern, scheme, host, port, filters)


def _is_known_filter(name: str) -> bool:
    if name == "*" or name in OPERATIONS:
        return True
    if name.endswith(".*"):
        prefix = name[:-1]
        return any(operation.startswith(prefix) for operation in OPERATIONS)
    return False


def split_entries(text: str) -> list[tuple[str, str | None]]:
    """Split an allowedOrigins value into (pattern, filter text) pairs."""
    entries: list[tuple[str, str | None]] = []
    position = 0
    text = text.strip()
    while position < len(text):
        match = _ENTRY.match(text, position)
        if not match or match.end() == position:
            raise OriginSyntaxError(f"cannot parse allowedOrigins near {text[position:]!r}")
        entries.append((match.group("origin"), match.group("filters")))
        position = match.end()
    return entries


class OriginPolicy:
    """Decide, for a request's origin and operation, whether to allow it."""

    def __init__(self, rules: tuple[OriginRule, ...] = ()) -> None:
        self.rules = tuple(sorted(rules, key=lambda rule: rule.specificity, reverse=True))
        # Most traffic comes from a handful of origins: parse and match each once per worker.
        self.rule_for_header = lru_cache(maxsize=4096)(self._rule_for_header)

    @classmethod
    def parse(cls, text: str) -> OriginPolicy:
        """Build a policy from an allowedOrigins value; raise OriginSyntaxError when malformed."""
        return cls(tuple(parse_rule(pattern, filters) for pattern, filters in split_entries(text)))

    def __repr__(self) -> str:
        return f"OriginPolicy({', '.join(rule.pattern for rule in self.rules)})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OriginPolicy) and self.rules == other.rules

    def __hash__(self) -> int:
        return hash(self.rules)

    def rule_for(self, origin: Origin) -> OriginRule | None:
        """Return the most specific entry matching `origin`, or None."""
        for rule in self.rules:
            if rule.matches(origin):
                return rule
        return None

    def _rule_for_header(self, header: str, is_referer: bool) -> tuple[str, OriginRule | None]:
        """Return (the origin to echo, its rule); ('', None) when the header is not an origin."""
        origin = origin_of_referer(header) if is_referer else parse_origin(header)
        if origin is None:
            return "", None
        return str(origin), self.rule_for(origin)
