"""Issue sessionTokens and userTokens that the cluster ring maps to this node."""

from __future__ import annotations

import base64
import os
import re
from typing import Protocol

from cobrowse.sessions.ring import ClusterRing

# Match with `fullmatch`: `$` alone also matches before a trailing newline.
# What the node accepts in a request. Any 9 digits could be a sessionToken that an agent typed,
# and any short URL-safe string a userToken: a wrong guess is 404, one answer for every guess;
# only what cannot be a token at all is 400.
SESSION_TOKEN = re.compile(r"^[0-9]{9}$")
USER_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# What the node issues: the epoch digit first (never 0), then 8 digits; for userTokens, 128
# random bits in URL-safe base64 without padding (22 characters).
ISSUED_SESSION_TOKEN = re.compile(r"^[1-9][0-9]{8}$")
ISSUED_USER_TOKEN = re.compile(r"^[1-9][A-Za-z0-9_-]{22}$")
USER_TOKEN_BITS = 128
CSRF_TOKEN_BITS = 128
USER_ID_BITS = 64


class RandomSource(Protocol):
    """What token issuing needs from a random generator: `secrets` in production."""

    def getrandbits(self, k: int, /) -> int: ...


class BufferedSystemRandom:
    """The operating system's randomness (`os.urandom`), read 4 KiB at a time.

    As unpredictable as `secrets.SystemRandom`, with one system call per few hundred draws
    instead of one per draw (a token takes several draws: the ring must map it to this node).
    A process that forked refills its buffer: no two processes ever share random bytes.
    """

    def __init__(self, chunk: int = 4096) -> None:
        self.chunk = chunk
        self.buffer = b""
        self.offset = 0
        self.pid = 0

    def getrandbits(self, k: int, /) -> int:
        size = (k + 7) // 8
        if self.offset + size > len(self.buffer) or self.pid != os.getpid():
            self.pid = os.getpid()
            self.buffer, self.offset = os.urandom(max(self.chunk, size)), 0
        raw = self.buffer[self.offset : self.offset + size]
        self.offset += size
        return int.from_bytes(raw, "big") >> (size * 8 - k)


class TokenExhaustedError(RuntimeError):
    """No token owned by this node was found: the ring definition is inconsistent."""


def random_urlsafe(random: RandomSource, bits: int) -> str:
    """Return `bits` random bits as unpadded URL-safe base64."""
    raw = random.getrandbits(bits).to_bytes(bits // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


class TokenIssuer:
    """Draw random tokens until the ring says this node owns them.

    With N equal nodes a draw succeeds with probability 1/N, so a token costs N draws on average.
    """

    def __init__(self, ring: ClusterRing, node_name: str, random: RandomSource) -> None:
        if node_name not in {node.name for node in ring.members}:
            raise ValueError(f"{node_name!r} is not a member of the ring")
        self.ring = ring
        self.node_name = node_name
        self.random = random
        self.prefix = ring.epoch_digit()
        # A node whose share is 1/N needs N tries on average: 2000 x N failing means a bug.
        self.max_draws = 2000 * len(ring.members)

    def session_token(self) -> str:
        """Return a new 9-digit sessionToken owned by this node."""
        for _ in range(self.max_draws):
            body = self.random.getrandbits(27)  # 2**27 > 10**8: reject the excess, no bias
            if body >= 100_000_000:
                continue
            candidate = f"{self.prefix}{body:08d}"
            if self.ring.owner(candidate) == self.node_name:
                return candidate
        raise TokenExhaustedError(f"no sessionToken maps to {self.node_name}")

    def user_token(self) -> str:
        """Return a new userToken (128 random bits) owned by this node."""
        for _ in range(self.max_draws):
            candidate = self.prefix + random_urlsafe(self.random, USER_TOKEN_BITS)
            if self.ring.owner(candidate) == self.node_name:
                return candidate
        raise TokenExhaustedError(f"no userToken maps to {self.node_name}")

    def csrf_token(self) -> str:
        """Return a new X-CSRF-Token value."""
        return random_urlsafe(self.random, CSRF_TOKEN_BITS)

    def user_id(self) -> str:
        """Return a participant's public id on the channel (not a secret: it names, not admits)."""
        return random_urlsafe(self.random, USER_ID_BITS)
