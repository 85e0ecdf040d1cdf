"""The live-session store in Redis: participants in hashes, each session's log in a stream.

A stream entry's ID is `<seq>-1`, so reading from a seq on is `XRANGE (seq+1)-0 +`, and
Redis keeps the order of seqs. Every operation that assigns seqs is one Lua script
(`redis_lua`): the same rules as the SQLite store, atomic across every worker of every node.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from cobrowse.store.live import (
    Draft,
    EventsOutcome,
    Joined,
    JoinRefusedError,
    LiveEntry,
    LiveSession,
    Participant,
)
from cobrowse.store.redis import RedisClient, RedisScripts, entry_from, guarded, number, text
from cobrowse.store.redis_lua import SESSION_FIELDS


def live_session(key: str, fields: Sequence[Any], now_ms: int | None = None) -> LiveSession:
    values = dict(zip(SESSION_FIELDS, fields, strict=True))
    end_reason = text(values["end_reason"]) if values["deactivation_time"] is not None else None
    expires_at = number(values["expires_at"])
    if end_reason is None and now_ms is not None and expires_at <= now_ms:
        end_reason = "timeout"  # past its deadline, not swept yet
    data = text(values["user_data"])
    return LiveSession(
        session_key=key,
        session_token=text(values["session_token"]) or "",
        customer_id=text(values["customer_id"]) or "",
        mode=text(values["mode"]) or "pointer",
        last_seq=number(values["last_seq"]),
        snapshot_seq=number(values["snapshot_seq"]),
        csrf_token=text(values["csrf_token"]) or None,
        end_reason=end_reason,
        expires_at=expires_at,
        user_data=json.loads(data) if data else {},
    )


def drafts_args(drafts: Sequence[Draft]) -> list[Any]:
    args: list[Any] = []
    for draft in drafts:
        args += [draft.kind, draft.audience, "1" if draft.snapshot else "0", draft.head, draft.tail]
    return args


def stream_entry(item: Sequence[Any]) -> LiveEntry:
    """Build a LiveEntry from an XRANGE item: (ID, [field, value, ...])."""
    entry_id, raw = item
    fields = raw if isinstance(raw, dict) else dict(zip(raw[::2], raw[1::2], strict=True))
    return LiveEntry(
        seq=int(bytes(entry_id).split(b"-", 1)[0]),
        kind=text(fields[b"k"]) or "",
        audience=text(fields[b"a"]) or "",
        payload=bytes(fields[b"p"]),
        stored_at=int(fields[b"t"]),
        snapshot=fields[b"s"] == b"1",
    )


class RedisLiveStore:
    """`LiveStore` in Redis."""

    def __init__(self, client: RedisClient, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self.scripts = RedisScripts(client, prefix)

    async def resolve(self, user_token: str, now_ms: int) -> tuple[LiveSession, Participant] | None:
        found = await self.scripts.resolve(user_token, now_ms)
        if not found:
            return None
        if found[0] == b"customer":
            session = live_session(user_token, found[1], now_ms)
            customer = Participant(user_token, session.customer_id, "customer", "", "accepted")
            return session, customer
        key, user_id, name, state = (text(value) or "" for value in found[2])
        session = live_session(key, found[1], now_ms)
        return session, Participant(user_token, user_id, "agent", name, state)

    async def session(self, session_key: str) -> LiveSession | None:
        fields = await guarded(self.client.hmget(f"{self.prefix}s:{session_key}", SESSION_FIELDS))
        if fields[0] is None:
            return None
        return live_session(session_key, fields)

    async def participants(self, session_key: str) -> list[Participant]:
        found = await self.scripts.participants(session_key)
        if not found:
            return []
        customer_id, agents = found
        return [
            Participant(session_key, text(customer_id) or "", "customer", "", "accepted"),
            *(
                Participant(
                    text(token) or "", text(uid) or "", "agent", text(name) or "", text(state) or ""
                )
                for token, uid, name, state in agents
            ),
        ]

    async def entries_after(self, session_key: str, seq: int, limit: int) -> list[LiveEntry]:
        items = await guarded(
            self.client.xrange(
                f"{self.prefix}l:{session_key}", min=f"{seq + 1}-0", max="+", count=limit
            )
        )
        return [stream_entry(item) for item in items]

    async def join(
        self,
        session_token: str,
        agent: Participant,
        drafts: list[Draft],
        now_ms: int,
        *,
        max_agents: int,
        agent_timeout_ms: int,
    ) -> Joined | None:
        found = await self.scripts.join(
            session_token,
            now_ms,
            max_agents,
            agent_timeout_ms,
            agent.user_token,
            agent.user_id,
            agent.name,
            agent.state,
            len(drafts),
            *drafts_args(drafts),
        )
        if found == b"full":
            raise JoinRefusedError(session_token)
        if not found:
            return None
        before, entries = found
        key = text(before[1]) or ""
        return Joined(live_session(key, before), agent, [entry_from(item) for item in entries])

    async def append(self, session_key: str, drafts: list[Draft], now_ms: int) -> list[LiveEntry]:
        entries = await self.scripts.append(session_key, now_ms, len(drafts), *drafts_args(drafts))
        return [entry_from(item) for item in entries]

    async def append_events(
        self,
        session_key: str,
        cseq: int,
        draft: Draft,
        now_ms: int,
        *,
        max_log_bytes: int,
        snapshot_request: Draft,
    ) -> EventsOutcome:
        outcome = await self.scripts.events(
            session_key, now_ms, cseq, max_log_bytes, *drafts_args([draft, snapshot_request])
        )
        status = text(outcome[0])
        if status == "duplicate":
            return EventsOutcome(None, [])
        if status in ("ended", "full"):
            return EventsOutcome(None, [], refused=status)
        entries = [entry_from(item) for item in outcome[1]]
        return EventsOutcome(entries[0], entries)

    async def decide(
        self, session_key: str, agent_id: str, accept: bool, drafts: list[Draft], now_ms: int
    ) -> list[LiveEntry] | None:
        entries = await self.scripts.decide(
            session_key,
            now_ms,
            agent_id,
            "1" if accept else "0",
            len(drafts),
            *drafts_args(drafts),
        )
        if entries is None or entries is False:
            return None
        return [entry_from(item) for item in entries]

    async def set_mode(
        self, session_key: str, mode: str, draft: Draft, now_ms: int
    ) -> list[LiveEntry]:
        entries = await self.scripts.mode(session_key, now_ms, mode, *drafts_args([draft]))
        return [entry_from(item) for item in entries]

    async def update_user_data(
        self, session_key: str, changes: dict[str, str | None], drafts: list[Draft], now_ms: int
    ) -> list[LiveEntry]:
        entries = await self.scripts.user_data(
            session_key, now_ms, json.dumps(changes), len(drafts), *drafts_args(drafts)
        )
        return [entry_from(item) for item in entries]

    async def leave(self, agent_token: str, drafts: list[Draft], now_ms: int) -> list[LiveEntry]:
        entries = await self.scripts.leave(agent_token, now_ms, len(drafts), *drafts_args(drafts))
        return [entry_from(item) for item in entries]

    async def end(self, session_key: str, reason: str, now_ms: int) -> list[LiveEntry]:
        entries = await self.scripts.end(session_key, reason, now_ms)
        return [entry_from(item) for item in entries]

    async def heartbeat(
        self, customers: list[str], agents: list[str], now_ms: int, expires_at: int
    ) -> None:
        if customers or agents:
            await self.scripts.heartbeat(now_ms, expires_at, len(customers), *customers, *agents)
