"""The hash ring: even spread, minimal movement, and epochs that survive adding nodes."""

from __future__ import annotations

import random

import pytest
from uhashring import HashRing

from cobrowse.config.settings import NodeSpec
from cobrowse.sessions.ring import ClusterRing
from cobrowse.sessions.tokens import TokenIssuer


def nodes(count: int, epoch: int = 0, start: int = 1) -> list[NodeSpec]:
    return [
        NodeSpec(
            name=f"node-{index}", bind=f"127.0.0.1:{9000 + index}", data_dir=None, ring_epoch=epoch
        )  # type: ignore[arg-type]
        for index in range(start, start + count)
    ]


def sample_keys(count: int) -> list[str]:
    generator = random.Random(7)
    return [f"1{generator.randrange(10**8):08d}" for _ in range(count)]


@pytest.mark.parametrize("count", [3, 4, 5])
def test_distribution_is_within_ten_percent_of_even(count):
    ring = ClusterRing(nodes(count))
    keys = sample_keys(100_000)
    owned = {node.name: 0 for node in ring.members}
    for key in keys:
        owned[ring.owner(key)] += 1
    even = len(keys) / count
    for name, value in owned.items():
        assert abs(value - even) / even <= 0.10, (name, value, even)
    shares = ring.shares()
    assert sum(shares.values()) == pytest.approx(1.0)
    for share in shares.values():
        assert abs(share - 1 / count) <= 0.10 / count


@pytest.mark.parametrize("count", [3, 4, 5])
def test_adding_a_node_moves_about_one_in_n_plus_one_keys(count):
    keys = sample_keys(50_000)
    before = HashRing(
        nodes={f"node-{i}": {"vnodes": 1000, "weight": 1} for i in range(1, count + 1)}
    )
    after = HashRing(
        nodes={f"node-{i}": {"vnodes": 1000, "weight": 1} for i in range(1, count + 2)}
    )
    moved = [key for key in keys if before.get_node(key) != after.get_node(key)]
    assert abs(len(moved) / len(keys) - 1 / (count + 1)) < 0.05
    # Consistent hashing: keys only ever move to the new node.
    assert {after.get_node(key) for key in moved} == {f"node-{count + 1}"}


def test_tokens_of_an_older_epoch_keep_their_node_after_a_node_is_added():
    old_ring = ClusterRing(nodes(3))
    issued = {}
    for node in old_ring.members:
        issuer = TokenIssuer(old_ring, node.name, random.Random(node.name))
        for _ in range(200):
            issued[issuer.session_token()] = node.name
            issued[issuer.user_token()] = node.name
    grown = ClusterRing([*nodes(3), *nodes(1, epoch=1, start=4)])
    assert all(grown.owner(token) == owner for token, owner in issued.items())
    # New tokens come from the new epoch, whose ring includes node-4.
    new = TokenIssuer(grown, "node-4", random.Random(1)).session_token()
    assert new.startswith("2")
    assert grown.owner(new) == "node-4"


@pytest.mark.parametrize("token", ["", "0123", "9" * 9, "x" * 23])
def test_tokens_of_unknown_epochs_have_no_owner(token):
    assert ClusterRing(nodes(3)).owner(token) is None


def test_the_same_definition_gives_the_same_ring_everywhere():
    first, second = ClusterRing(nodes(4)), ClusterRing(list(reversed(nodes(4))))
    assert all(first.owner(key) == second.owner(key) for key in sample_keys(2000))


@pytest.mark.parametrize("count", [1, 3, 5])
def test_fast_lookup_agrees_with_uhashring(count):
    ring = ClusterRing(nodes(count))
    generator = random.Random(count)
    keys = sample_keys(5000) + ["1" + generator.randbytes(16).hex() for _ in range(5000)]
    assert all(ring.owner(key) == ring.uhashring_owner(key) for key in keys)
