"""Issue sessionTokens and userTokens that the cluster ring maps to this node."""

from __future__ import annotations

import base64
import re
from typing import Protocol

from cobrowse.sessions.ring import ClusterRing

# Match with `fullmatch`: `$` alone also matches before a trailing newline.
SESSION_TOKEN = re.compile(r"^[1-9][0-9]{8}$")
# Epoch digit, then 128 random bits in URL-safe base64 without padding (22 characters).
USER_TOKEN = re.compile(r"^[1-9][A-Za-z0-9_-]{22}$")
USER_TOKEN_BITS = 128
CSRF_TOKEN_BITS = 128


class RandomSource(Protocol):
    """What token issuing needs from a random generator: `secrets` in production."""

    def getrandbits(self, k: int, /) -> int: ...


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
