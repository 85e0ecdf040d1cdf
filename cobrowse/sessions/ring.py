"""The cluster's consistent hash ring: which node owns a token.

Tokens name their node (ARCHITECTURE invariant 2). A node only issues tokens that the ring maps
to itself, so anyone with the cluster file can find a token's node without asking anybody.

To survive ring changes, every node carries a `ringEpoch` (0 by default) and every token starts
with a digit that records the epoch it was issued in (`epoch + 1`, so tokens never start with 0).
The ring of epoch E is built from the nodes whose `ringEpoch` is at most E. Adding a node with a
higher epoch leaves every older ring untouched, so tokens issued before the change still resolve
to the node that issued them. Nodes issue tokens in the cluster's newest epoch.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from hashlib import md5

from uhashring import HashRing

from cobrowse.config.settings import MAX_RING_EPOCH, NodeSpec

HASH_SPACE = 2**128  # uhashring's default ring hashes keys with md5


class ClusterRing:
    """Resolve tokens to node names with one uhashring ring per epoch."""

    def __init__(self, nodes: Iterable[NodeSpec]) -> None:
        # Backup nodes are members too: when they take over they issue tokens of their own.
        members = tuple(nodes)
        if not members:
            raise ValueError("a ring needs at least one node")
        self.members = members
        self.current_epoch = max(node.ring_epoch for node in members)
        self._rings: list[HashRing | None] = [None] * (MAX_RING_EPOCH + 1)
        # uhashring builds each ring; lookups read its points directly, because a token costs
        # several lookups (one per draw) and uhashring's generic path is several times slower.
        self._points: list[tuple[list[int], list[str]]] = []
        for epoch in range(self.current_epoch + 1):
            in_ring = {
                node.name: {"vnodes": node.vnodes, "weight": node.weight}
                for node in members
                if node.ring_epoch <= epoch
            }
            ring = HashRing(nodes=in_ring) if in_ring else None
            self._rings[epoch] = ring
            points = ring.get_points() if ring else []
            self._points.append(([p for p, _ in points], [name for _, name in points]))

    def definition(self, epoch: int) -> dict[str, tuple[int, int]]:
        """Return {node: (vnodes, weight)} of the ring of `epoch`: what must never change."""
        return {
            node.name: (node.vnodes, node.weight)
            for node in self.members
            if node.ring_epoch <= epoch
        }

    def epoch_digit(self) -> str:
        """Return the first digit of tokens issued now."""
        return str(self.current_epoch + 1)

    def owner(self, token: str) -> str | None:
        """Return the node that issued `token`, or None when no ring can own it."""
        if not token:
            return None
        epoch = ord(token[0]) - 49  # '1' is epoch 0
        if not 0 <= epoch <= self.current_epoch:
            return None
        positions, owners = self._points[epoch]
        if not positions:
            return None
        try:
            key = token.encode("utf-8")
        except UnicodeEncodeError:
            return None
        # The same arithmetic as uhashring's MetaRing: md5 as a big integer, the first point
        # strictly after it, wrapping around to the first point.
        index = bisect_right(positions, int.from_bytes(md5(key).digest(), "big"))  # noqa: S324
        return owners[index if index < len(positions) else 0]

    def uhashring_owner(self, token: str) -> str | None:
        """Return uhashring's own answer for `token`: the reference `owner` must agree with."""
        ring = self._rings[ord(token[0]) - 49]
        return None if ring is None else str(ring.get_node(token))

    def issuable_by(self, token: str, node_name: str) -> bool:
        """Return whether `node_name` may issue `token` in the current epoch."""
        return token[:1] == self.epoch_digit() and self.owner(token) == node_name

    def shares(self) -> dict[str, float]:
        """Return each member's share of the current epoch's hash space, from 0 to 1."""
        ring = self._rings[self.current_epoch]
        assert ring is not None
        points = ring.get_points()  # sorted (position, node); a point owns the arc before it
        owned = dict.fromkeys((node.name for node in self.members), 0)
        previous = points[-1][0] - HASH_SPACE
        for position, name in points:
            owned[name] += position - previous
            previous = position
        return {name: arc / HASH_SPACE for name, arc in owned.items()}


def ring_change_problems(old: ClusterRing, new: ClusterRing) -> list[str]:
    """Return why `new` would strand tokens issued under `old`: none if it would not."""
    problems = []
    for epoch in range(old.current_epoch + 1):
        before, after = old.definition(epoch), new.definition(epoch)
        for name, shape in after.items():
            if name not in before:
                problems.append(
                    f"node {name} joins ring epoch {epoch}, which already issued tokens: give "
                    f"it ringEpoch = {old.current_epoch + 1}"
                )
            elif before[name] != shape:
                problems.append(
                    f"node {name} changes vnodes/weight in ring epoch {epoch}, which already "
                    "issued tokens"
                )
    return problems
