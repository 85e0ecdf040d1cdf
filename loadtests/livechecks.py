"""The live scenarios' pure parts: the recording and its pace, the send stamp, the stream checks.

No Locust or gevent import: everything here is unit-tested on its own (tests/test_loadtest_live.py).

- `Recording`: the rrweb recording fixture (batches `{"t": ms offset, "events": [...]}`), each
  batch serialised once, so that a customer builds a frame by formatting bytes, not by encoding
  JSON for every batch it sends.
- `Replay`: when each batch is due at a speed multiple, looping the recording (every loop starts
  over with its first batch: Meta and the first full snapshot). A replay may also start at any
  later full snapshot: customers that start at different ones are not all in the same part of
  the recording at once (its busy parts carry five times the batches of its quiet ones).
- The send stamp: a Custom event (rrweb type 5, tag `loadtest`, payload `{"sent": epoch ms}`)
  first in every batch; the agent's delivery latency is its receive time minus `sent`.
- `StreamChecker`: what an agent checks on every frame (REALTIME.md invariants 1 and 2): `seq`
  strictly increasing (reset after a `resync`), the customer's `cseq` without gap or duplicate,
  a full snapshot first (after joining and after each resync).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "demo-recording.json"

RRWEB_FULL_SNAPSHOT = 2
RRWEB_CUSTOM = 5
STAMP_TAG = "loadtest"

# Close codes after which a client must not reconnect (REALTIME.md "Close codes").
STOP_CODES = frozenset({1000, 1009, 4400, 4401, 4404, 4410})
ENDED = 4410
POLICY = 1008

# Violations, as Locust shows them (one failure row each): no token, no number in them.
LOST = "lost: a gap in the customer's cseq"
UNDELIVERED = "lost: acknowledged to the customer, never delivered"
DUPLICATE = "duplicate: a cseq delivered twice"
OUT_OF_ORDER = "out of order: seq not increasing, or a cseq after a later one"
NO_SNAPSHOT = "missing snapshot: the first events after joining or a resync hold no full snapshot"


# ---------------------------------------------------------------------------------------------
# the recording


@dataclass(frozen=True, slots=True)
class Recording:
    """Batches of rrweb events with their offsets, each serialised once (without brackets)."""

    offsets_ms: tuple[int, ...]
    bodies: tuple[bytes, ...]  # a batch's events as JSON, `[` and `]` left out
    events: tuple[int, ...]  # events per batch
    snapshots: tuple[int, ...]  # the batches that hold a full snapshot: where a replay may start

    @classmethod
    def load(cls, path: Path = FIXTURE) -> Recording:
        return cls.from_batches(orjson.loads(path.read_bytes()))

    @classmethod
    def from_batches(cls, batches: Sequence[dict[str, Any]]) -> Recording:
        if not batches:
            raise ValueError("the recording holds no batch")
        if not any(event.get("type") == RRWEB_FULL_SNAPSHOT for event in batches[0]["events"]):
            raise ValueError("the recording must start with a full snapshot")
        start = int(batches[0]["t"])
        offsets = tuple(int(batch["t"]) - start for batch in batches)
        if any(later < earlier for earlier, later in itertools.pairwise(offsets)):
            raise ValueError("the batches' offsets must not decrease")
        bodies = tuple(orjson.dumps(batch["events"])[1:-1] for batch in batches)
        snapshots = tuple(
            index for index, batch in enumerate(batches) if has_full_snapshot(batch["events"])
        )
        return cls(offsets, bodies, tuple(len(batch["events"]) for batch in batches), snapshots)

    def __len__(self) -> int:
        return len(self.offsets_ms)

    @property
    def loop_ms(self) -> int:
        """One loop: the recording, then the mean interval between its batches."""
        last = self.offsets_ms[-1]
        return last + (last // (len(self) - 1) if len(self) > 1 else 1000)

    def frame(self, index: int, cseq: int, sent_ms: float) -> bytes:
        """The `events` frame of batch `index`, stamped with its send time."""
        body = self.bodies[index]
        return b'{"type":"events","cseq":%d,"data":[%s%s%s]}' % (
            cseq,
            stamp(sent_ms),
            b"," if body else b"",
            body,
        )


def stamp(sent_ms: float) -> bytes:
    """The Custom event that carries a batch's send time (epoch ms, to the microsecond)."""
    return b'{"type":5,"data":{"tag":"%s","payload":{"sent":%.3f}},"timestamp":%d}' % (
        STAMP_TAG.encode(),
        sent_ms,
        int(sent_ms),
    )


def sent_ms(events: Sequence[Any]) -> float | None:
    """Return the send time stamped in a batch's events, or None when there is none."""
    for event in events[:1]:  # the stamp comes first
        if isinstance(event, dict) and event.get("type") == RRWEB_CUSTOM:
            data = event.get("data")
            if isinstance(data, dict) and data.get("tag") == STAMP_TAG:
                payload = data.get("payload")
                sent = payload.get("sent") if isinstance(payload, dict) else None
                if isinstance(sent, int | float) and not isinstance(sent, bool):
                    return float(sent)
    return None


def has_full_snapshot(events: Sequence[Any]) -> bool:
    return any(
        isinstance(event, dict) and event.get("type") == RRWEB_FULL_SNAPSHOT for event in events
    )


class Replay:
    """Which batch is due when: the recording at `speed` times its pace, looping.

    Times are seconds on any monotonic clock. A replay that falls behind (a busy load generator)
    sends late batches at once rather than skip them; `lag_s` says how late each one was.
    """

    def __init__(self, recording: Recording, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError("the speed must be above 0")
        self.recording = recording
        self.speed = speed
        self.index = 0
        self.loop_start_s = 0.0
        self.loops = 0

    def restart(self, now_s: float, index: int = 0) -> None:
        """Start over at batch `index` (the first by default; it must hold a full snapshot),
        due at `now_s`; the pace follows from there."""
        if index not in self.recording.snapshots:
            raise ValueError(f"batch {index} holds no full snapshot: a replay cannot start there")
        self.index = index
        self.loop_start_s = now_s - self.recording.offsets_ms[index] / 1000 / self.speed

    def due_s(self) -> float:
        """When the next batch is due."""
        return self.loop_start_s + self.recording.offsets_ms[self.index] / 1000 / self.speed

    def take(self) -> int:
        """Return the index of the batch due now, and move on to the next (looping)."""
        index = self.index
        self.index += 1
        if self.index == len(self.recording):
            self.index = 0
            self.loop_start_s += self.recording.loop_ms / 1000 / self.speed
            self.loops += 1
        return index


def backoff_s(retries: int, code: int | None = None, rng: random.Random | None = None) -> float:
    """The customer script's reconnection delay: 0.5 s doubling to 10 s, +-20 %; +5 s on 1008."""
    jitter = (rng or random).uniform(0.8, 1.2)
    delay = min(10.0, 0.5 * 2**retries) * jitter
    return delay + 5.0 if code == POLICY else delay


# ---------------------------------------------------------------------------------------------
# an agent's checks


@dataclass(slots=True)
class Checked:
    """What one frame was, for the report: its type, violations, send time, whether history."""

    kind: str
    violations: list[str] = field(default_factory=list)
    sent_ms: float | None = None
    # At or below the welcome's seq (the log replayed on (re)connection), or control messages
    # replayed after a resync: late by design, not live.
    history: bool = False
    snapshot: bool = False


@dataclass
class StreamChecker:
    """Check everything an agent receives, across reconnections, in order of arrival.

    `lost` counts the batches missing from gaps in `cseq`; a batch that turns up after a later
    one was not lost after all and is counted out of order instead. After a `resync` the stream
    restarts from the last full snapshot: `seq` may go down and `cseq` may jump, and neither is a
    violation; a missing snapshot is.
    """

    last_seq: int = 0
    welcome_seq: int = 0
    last_cseq: int | None = None  # None: the next events must hold a full snapshot
    missing: set[int] = field(default_factory=set)  # cseqs counted lost, in case they turn up
    delivered: int = 0
    lost: int = 0
    duplicated: int = 0
    out_of_order: int = 0
    missing_snapshots: int = 0
    resyncs: int = 0
    replaying: bool = False  # after a resync, until the snapshot: the log replayed again
    max_missing: int = 100_000  # remembered for a late arrival; beyond it, lost for good

    def check(self, frame: dict[str, Any]) -> Checked:
        """Check one frame the agent received; update the counters."""
        kind = str(frame.get("type"))
        seq = frame.get("seq")
        if kind == "welcome":
            self.welcome_seq = seq if isinstance(seq, int) else 0
            return Checked(kind)
        if kind == "resync":
            self.resyncs += 1
            self.last_seq = 0
            self.last_cseq = None
            self.replaying = True
            return Checked(kind)
        history = isinstance(seq, int) and seq <= self.welcome_seq
        checked = Checked(kind, history=history or (self.replaying and kind != "events"))
        if kind == "events":
            self.replaying = False
            self._events(frame, checked)
        if not isinstance(seq, int):
            if kind not in ("ack", "error"):
                checked.violations.append(OUT_OF_ORDER)  # every message but these has a seq
                self.out_of_order += 1
            return checked
        if DUPLICATE not in checked.violations:
            if seq <= self.last_seq:
                if OUT_OF_ORDER not in checked.violations:
                    checked.violations.append(OUT_OF_ORDER)
                    self.out_of_order += 1
            else:
                self.last_seq = seq
        return checked

    def _events(self, frame: dict[str, Any], checked: Checked) -> None:
        data = frame.get("data")
        events: list[Any] = data if isinstance(data, list) else []
        checked.sent_ms = sent_ms(events)
        checked.snapshot = has_full_snapshot(events)
        cseq = frame.get("cseq")
        if not isinstance(cseq, int):
            checked.violations.append(OUT_OF_ORDER)
            self.out_of_order += 1
            return
        self.delivered += 1
        last = self.last_cseq
        if last is None:
            if not checked.snapshot:
                checked.violations.append(NO_SNAPSHOT)
                self.missing_snapshots += 1
            self.last_cseq = cseq
        elif cseq in self.missing:
            self.missing.discard(cseq)  # late, not lost
            self.lost -= 1
            self.out_of_order += 1
            checked.violations.append(OUT_OF_ORDER)
        elif cseq <= last:
            self.duplicated += 1
            checked.violations.append(DUPLICATE)
        else:
            if cseq > last + 1:
                self.lost += cseq - last - 1
                checked.violations.append(LOST)
                if len(self.missing) + cseq - last - 1 <= self.max_missing:
                    self.missing.update(range(last + 1, cseq))
            self.last_cseq = cseq


def undelivered(acked: Sequence[tuple[int, float]], reached: int | None, before: float) -> int:
    """Batches acknowledged before `before` (any clock) that the agent never got to.

    `acked` holds (cseq, time acknowledged) pairs, `reached` the highest cseq the agent received.
    A customer's cseqs follow each other, so what lies between is what is missing.
    """
    acked_before = [cseq for cseq, at in acked if at < before]
    if not acked_before:
        return 0
    return max(0, max(acked_before) - (reached or 0))
