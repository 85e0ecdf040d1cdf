"""Token formats, ownership and injected randomness."""

from __future__ import annotations

import random
import re

import pytest

from cobrowse.config.settings import NodeSpec
from cobrowse.sessions.ring import ClusterRing
from cobrowse.sessions.tokens import SESSION_TOKEN, USER_TOKEN, TokenIssuer

NODES = [NodeSpec(name=f"n{i}", bind=f"127.0.0.1:{9000 + i}", data_dir=None) for i in range(3)]  # type: ignore[arg-type]


def issuer(name: str = "n0", seed: int = 1) -> TokenIssuer:
    return TokenIssuer(ClusterRing(NODES), name, random.Random(seed))


def test_session_tokens_are_nine_digits_owned_by_the_node():
    tokens = [issuer().session_token() for _ in range(1)] + [
        issuer(seed=seed).session_token() for seed in range(200)
    ]
    ring = ClusterRing(NODES)
    for token in tokens:
        assert SESSION_TOKEN.match(token)
        assert len(token) == 9
        assert ring.owner(token) == "n0"


def test_user_tokens_carry_128_random_bits_and_are_url_safe():
    token = issuer().user_token()
    assert USER_TOKEN.match(token)
    assert re.fullmatch(r"[A-Za-z0-9_-]+", token)
    assert len(token) - 1 == 22  # 22 base64 characters carry 132 bits, 128 of them random


def test_seeded_randomness_gives_repeatable_tokens():
    assert issuer(seed=5).session_token() == issuer(seed=5).session_token()
    assert issuer(seed=5).session_token() != issuer(seed=6).session_token()


def test_an_issuer_must_belong_to_the_ring():
    with pytest.raises(ValueError, match="not a member"):
        TokenIssuer(ClusterRing(NODES), "stranger", random.Random(0))


def test_csrf_tokens_differ():
    source = issuer()
    assert source.csrf_token() != source.csrf_token()


def test_buffered_system_random_draws_the_asked_bits_and_refills_after_fork():
    import os

    from cobrowse.sessions.tokens import BufferedSystemRandom

    source = BufferedSystemRandom(chunk=64)
    draws = [source.getrandbits(27) for _ in range(2000)]  # many refills of 64 bytes
    assert all(0 <= value < 2**27 for value in draws)
    assert len(set(draws)) > 1990
    assert max(draws).bit_length() == 27  # the top bit is used too
    source.pid = os.getpid() + 1  # as seen by a forked child: its buffer is not reused
    before = source.buffer
    source.getrandbits(8)
    assert source.buffer is not before
