"""The live-session store on the node's SQLite database: participants and the live log.

Every write runs under the node-wide write lock (`SqliteDatabase.write`) in one transaction, so
seqs are assigned in commit order across all workers. Reads run inline.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable
from typing import TypeVar

from cobrowse.store import StoreUnavailableError
from cobrowse.store.live import (
    ALL,
    TRANSIENT_KINDS,
    Draft,
    EventsOutcome,
    Joined,
    JoinRefusedError,
    LiveEntry,
    LiveSession,
    Participant,
    ended_draft,
)
from cobrowse.store.sqlite_db import SqliteDatabase

T = TypeVar("T")

_SESSION_COLUMNS = (
    "user_token, session_token, customer_id, mode, last_seq, snapshot_seq, csrf_token, "
    "end_reason, deactivation_time, expires_at, user_data"
)
_SESSION = f"SELECT {_SESSION_COLUMNS} FROM sessions"
# An agent and its session in one statement, so in one snapshot: read apart, another worker's
# consent could commit in between, and the channel would start past the `joined` it waits for.
_AGENT_SESSION = (
    "SELECT p.user_id, p.name, p.state, "
    + ", ".join(f"s.{column.strip()}" for column in _SESSION_COLUMNS.split(","))
    + " FROM participants AS p JOIN sessions AS s ON s.user_token = p.session_key"
    " WHERE p.user_token = ?"
)
_ENTRY = "SELECT seq, kind, audience, payload, stored_at, snapshot FROM live_log"
_TRANSIENT = ", ".join(f"'{kind}'" for kind in TRANSIENT_KINDS)
HOLDS_A_PLACE = ("pending", "accepted")


def _live_session(row: tuple[object, ...], now_ms: int | None = None) -> LiveSession:
    (key, token, customer_id, mode, last_seq, snapshot_seq, csrf, reason, ended, expires, data) = (
        row
    )
    end_reason = reason if ended is not None else None
    if end_reason is None and now_ms is not None and int(expires) <= now_ms:  # type: ignore[call-overload]
        end_reason = "timeout"  # past its deadline, not swept yet
    return LiveSession(
        session_key=str(key),
        session_token=str(token),
        customer_id=str(customer_id),
        mode=str(mode),
        last_seq=int(last_seq),  # type: ignore[call-overload]
        snapshot_seq=int(snapshot_seq),  # type: ignore[call-overload]
        csrf_token=None if csrf is None else str(csrf),
        end_reason=None if end_reason is None else str(end_reason),
        expires_at=int(expires),  # type: ignore[call-overload]
        user_data=json.loads(str(data)) if data else {},
    )


def _entry(row: tuple[object, ...]) -> LiveEntry:
    seq, kind, audience, payload, stored_at, snapshot = row
    return LiveEntry(
        int(seq),  # type: ignore[call-overload]
        str(kind),
        str(audience),
        bytes(payload),  # type: ignore[call-overload]
        int(stored_at),  # type: ignore[call-overload]
        bool(snapshot),
    )


def mode_draft(mode: str, reason: str) -> Draft:
    """Return the `mode` message the node sends when it changes the mode itself."""
    return Draft(
        "mode",
        ALL,
        b'{"type":"mode","seq":',
        b',"mode":"%s","reason":"%s"}'
        % (
            mode.encode(),
            reason.encode(),
        ),
    )


def append_drafts(
    connection: sqlite3.Connection, key: str, last_seq: int, drafts: Iterable[Draft], now_ms: int
) -> list[LiveEntry]:
    """Insert drafts after `last_seq` and advance the session's counters; inside a transaction."""
    entries = []
    seq = last_seq
    added = 0
    for draft in drafts:
        seq += 1
        payload = draft.payload(seq)
        connection.execute(
            "INSERT INTO live_log (session_key, seq, kind, audience, snapshot, stored_at, payload) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (key, seq, draft.kind, draft.audience, int(draft.snapshot), now_ms, payload),
        )
        added += len(payload)
        entries.append(LiveEntry(seq, draft.kind, draft.audience, payload, now_ms, draft.snapshot))
    if entries:
        connection.execute(
            "UPDATE sessions SET last_seq = ?, log_bytes = log_bytes + ? WHERE user_token = ?",
            (seq, added, key),
        )
    return entries


def end_live(connection: sqlite3.Connection, key: str, reason: str, now_ms: int) -> list[LiveEntry]:
    """Drop a just-ended session's live content and append `ended`; inside a transaction.

    Only metadata stays as history: the log (but `ended`, which every worker still has to
    deliver), the attached data, and the agents' places go.
    """
    row = connection.execute(
        "SELECT last_seq FROM sessions WHERE user_token = ?", (key,)
    ).fetchone()
    connection.execute("DELETE FROM live_log WHERE session_key = ?", (key,))
    connection.execute(
        "UPDATE sessions SET user_data = NULL, log_bytes = 0, mode = 'pointer' "
        "WHERE user_token = ?",
        (key,),
    )
    connection.execute(
        "UPDATE participants SET state = 'left', last_seen = ? "
        "WHERE session_key = ? AND state IN ('pending', 'accepted')",
        (now_ms, key),
    )
    return append_drafts(connection, key, int(row[0]), [ended_draft(reason)], now_ms)


def transaction(connection: sqlite3.Connection, work: Callable[[], T]) -> T:
    """Run `work` all or nothing (the caller holds the node-wide write lock).

    A savepoint: a transaction of its own when alone, nested when the write shares a commit.
    """
    connection.execute("SAVEPOINT work")
    try:
        result = work()
    except BaseException:
        connection.execute("ROLLBACK TO work")
        connection.execute("RELEASE work")
        raise
    connection.execute("RELEASE work")
    return result


class SqliteLiveStore:
    """`LiveStore` on the node's database."""

    def __init__(self, database: SqliteDatabase) -> None:
        self.database = database

    # plumbing
    def _read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return work(self.database.connection())
        except sqlite3.DatabaseError as error:
            raise StoreUnavailableError(str(error)) from error

    async def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return await self.database.write(
                lambda connection: transaction(connection, lambda: work(connection))
            )
        except sqlite3.DatabaseError as error:
            raise StoreUnavailableError(str(error)) from error

    # reads
    async def resolve(self, user_token: str, now_ms: int) -> tuple[LiveSession, Participant] | None:
        def find(connection: sqlite3.Connection) -> tuple[LiveSession, Participant] | None:
            row = connection.execute(f"{_SESSION} WHERE user_token = ?", (user_token,)).fetchone()
            if row is not None:
                session = _live_session(row, now_ms)
                customer = Participant(user_token, session.customer_id, "customer", "", "accepted")
                return session, customer
            agent = connection.execute(_AGENT_SESSION, (user_token,)).fetchone()
            if agent is None:
                return None
            participant = Participant(user_token, agent[0], "agent", agent[1], agent[2])
            return _live_session(agent[3:], now_ms), participant

        return self._read(find)

    async def session(self, session_key: str) -> LiveSession | None:
        row = self._read(
            lambda connection: connection.execute(
                f"{_SESSION} WHERE user_token = ?", (session_key,)
            ).fetchone()
        )
        return None if row is None else _live_session(row)

    async def participants(self, session_key: str) -> list[Participant]:
        def read(connection: sqlite3.Connection) -> list[Participant]:
            customer = connection.execute(
                "SELECT customer_id FROM sessions WHERE user_token = ?", (session_key,)
            ).fetchone()
            if customer is None:
                return []
            agents = connection.execute(
                "SELECT user_token, user_id, name, state FROM participants "
                "WHERE session_key = ? AND state IN ('pending', 'accepted') ORDER BY joined_at",
                (session_key,),
            ).fetchall()
            return [
                Participant(session_key, customer[0], "customer", "", "accepted"),
                *(
                    Participant(token, uid, "agent", name, state)
                    for token, uid, name, state in agents
                ),
            ]

        return self._read(read)

    async def entries_after(self, session_key: str, seq: int, limit: int) -> list[LiveEntry]:
        rows = self._read(
            lambda connection: connection.execute(
                f"{_ENTRY} WHERE session_key = ? AND seq > ? ORDER BY seq LIMIT ?",
                (session_key, seq, limit),
            ).fetchall()
        )
        return [_entry(row) for row in rows]

    # writes
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
        def join(connection: sqlite3.Connection) -> Joined | None:
            row = connection.execute(
                f"{_SESSION} WHERE session_token = ? AND deactivation_time IS NULL "
                "AND expires_at > ?",
                (session_token, now_ms),
            ).fetchone()
            if row is None:
                return None
            session = _live_session(row)
            holding = connection.execute(
                "SELECT count(*) FROM participants WHERE session_key = ? "
                "AND state IN ('pending', 'accepted') AND last_seen > ?",
                (session.session_key, now_ms - agent_timeout_ms),
            ).fetchone()[0]
            if holding >= max_agents:
                raise JoinRefusedError(session.session_key)
            connection.execute(
                "INSERT INTO participants "
                "(user_token, session_key, user_id, name, state, joined_at, last_seen) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    agent.user_token,
                    session.session_key,
                    agent.user_id,
                    agent.name,
                    agent.state,
                    now_ms,
                    now_ms,
                ),
            )
            entries = append_drafts(
                connection, session.session_key, session.last_seq, drafts, now_ms
            )
            if agent.state == "accepted":
                entries += self._reset_mode(connection, session.session_key, now_ms)
            return Joined(session, agent, entries)

        return await self._write(join)

    async def append(self, session_key: str, drafts: list[Draft], now_ms: int) -> list[LiveEntry]:
        def append(connection: sqlite3.Connection) -> list[LiveEntry]:
            row = connection.execute(
                "SELECT last_seq FROM sessions WHERE user_token = ? AND deactivation_time IS NULL",
                (session_key,),
            ).fetchone()
            if row is None:
                return []
            return append_drafts(connection, session_key, row[0], drafts, now_ms)

        return await self._write(append)

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
        def store(connection: sqlite3.Connection) -> EventsOutcome:
            row = connection.execute(
                "SELECT last_seq, last_cseq, log_bytes, snapshot_requested FROM sessions "
                "WHERE user_token = ? AND deactivation_time IS NULL AND expires_at > ?",
                (session_key, now_ms),
            ).fetchone()
            if row is None:
                return EventsOutcome(None, [], refused="ended")
            last_seq, last_cseq, log_bytes, requested = row
            if cseq <= last_cseq:
                return EventsOutcome(None, [])  # stored before: the customer resent it
            if not draft.snapshot and log_bytes > 2 * max_log_bytes:
                return EventsOutcome(None, [], refused="full")
            seq = last_seq + 1
            payload = draft.payload(seq)
            size = len(payload)
            connection.execute(
                "INSERT INTO live_log (session_key, seq, kind, audience, snapshot, stored_at, "
                "payload) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    session_key,
                    seq,
                    draft.kind,
                    draft.audience,
                    int(draft.snapshot),
                    now_ms,
                    payload,
                ),
            )
            entries = [LiveEntry(seq, draft.kind, draft.audience, payload, now_ms, draft.snapshot)]
            if draft.snapshot:
                # The log now starts at this snapshot: what it makes obsolete goes.
                connection.execute(
                    f"DELETE FROM live_log WHERE session_key = ? AND seq < ? "
                    f"AND kind IN ({_TRANSIENT})",
                    (session_key, seq),
                )
                log_bytes, requested = size, 0
            else:
                log_bytes += size
            request = log_bytes > max_log_bytes and not requested
            # One update for the batch's counters (the hot path: every batch of every customer).
            connection.execute(
                "UPDATE sessions SET last_seq = ?, last_cseq = ?, log_bytes = ?, "
                "snapshot_seq = CASE WHEN ? THEN ? ELSE snapshot_seq END, "
                "snapshot_requested = ? WHERE user_token = ?",
                (seq, cseq, log_bytes, draft.snapshot, seq, int(requested or request), session_key),
            )
            if request:
                entries += append_drafts(connection, session_key, seq, [snapshot_request], now_ms)
            return EventsOutcome(entries[0], entries)

        return await self._write(store)

    async def decide(
        self, session_key: str, agent_id: str, accept: bool, drafts: list[Draft], now_ms: int
    ) -> list[LiveEntry] | None:
        def decide(connection: sqlite3.Connection) -> list[LiveEntry] | None:
            changed = connection.execute(
                "UPDATE participants SET state = ?, last_seen = ? "
                "WHERE session_key = ? AND user_id = ? AND state = 'pending'",
                ("accepted" if accept else "declined", now_ms, session_key, agent_id),
            ).rowcount
            last = self._last_seq(connection, session_key)
            if not changed or last is None:
                return None
            entries = append_drafts(connection, session_key, last, drafts, now_ms)
            if accept:
                entries += self._reset_mode(connection, session_key, now_ms)
            return entries

        return await self._write(decide)

    async def set_mode(
        self, session_key: str, mode: str, draft: Draft, now_ms: int
    ) -> list[LiveEntry]:
        def change(connection: sqlite3.Connection) -> list[LiveEntry]:
            row = connection.execute(
                "UPDATE sessions SET mode = ? WHERE user_token = ? AND mode != ? "
                "AND deactivation_time IS NULL RETURNING last_seq",
                (mode, session_key, mode),
            ).fetchone()
            if row is None:
                return []
            return append_drafts(connection, session_key, row[0], [draft], now_ms)

        return await self._write(change)

    async def update_user_data(
        self, session_key: str, changes: dict[str, str | None], drafts: list[Draft], now_ms: int
    ) -> list[LiveEntry]:
        def update(connection: sqlite3.Connection) -> list[LiveEntry]:
            row = connection.execute(
                "SELECT last_seq, user_data FROM sessions "
                "WHERE user_token = ? AND deactivation_time IS NULL",
                (session_key,),
            ).fetchone()
            if row is None:
                return []
            data = json.loads(row[1]) if row[1] else {}
            for key, value in changes.items():
                if value is None:
                    data.pop(key, None)
                else:
                    data[key] = value
            connection.execute(
                "UPDATE sessions SET user_data = ? WHERE user_token = ?",
                (json.dumps(data), session_key),
            )
            return append_drafts(connection, session_key, row[0], drafts, now_ms)

        return await self._write(update)

    async def leave(self, agent_token: str, drafts: list[Draft], now_ms: int) -> list[LiveEntry]:
        def leave(connection: sqlite3.Connection) -> list[LiveEntry]:
            row = connection.execute(
                "UPDATE participants SET state = 'left', last_seen = ? "
                "WHERE user_token = ? AND state IN ('pending', 'accepted') "
                "RETURNING session_key, state",
                (now_ms, agent_token),
            ).fetchone()
            if row is None:
                return []
            key = row[0]
            last = self._last_seq(connection, key)
            if last is None:
                return []
            entries = append_drafts(connection, key, last, drafts, now_ms)
            return entries + self._reset_mode(connection, key, now_ms)

        return await self._write(leave)

    async def end(self, session_key: str, reason: str, now_ms: int) -> list[LiveEntry]:
        def end(connection: sqlite3.Connection) -> list[LiveEntry]:
            ended = connection.execute(
                "UPDATE sessions SET deactivation_time = MIN(expires_at, ?), end_reason = ? "
                "WHERE user_token = ? AND deactivation_time IS NULL",
                (now_ms, reason, session_key),
            ).rowcount
            if not ended:
                return []
            return end_live(connection, session_key, reason, now_ms)

        return await self._write(end)

    async def heartbeat(
        self, customers: list[str], agents: list[str], now_ms: int, expires_at: int
    ) -> None:
        if not customers and not agents:
            return

        def beat(connection: sqlite3.Connection) -> None:
            for start in range(0, len(customers), 500):
                chunk = customers[start : start + 500]
                connection.execute(
                    "UPDATE sessions SET last_activity = ?, expires_at = ? "
                    f"WHERE user_token IN ({', '.join('?' * len(chunk))}) "
                    "AND deactivation_time IS NULL AND expires_at > ?",
                    (now_ms, expires_at, *chunk, now_ms),
                )
            for start in range(0, len(agents), 500):
                chunk = agents[start : start + 500]
                connection.execute(
                    f"UPDATE participants SET last_seen = ? "
                    f"WHERE user_token IN ({', '.join('?' * len(chunk))})",
                    (now_ms, *chunk),
                )

        await self._write(beat)

    # helpers, inside a write
    @staticmethod
    def _last_seq(connection: sqlite3.Connection, key: str) -> int | None:
        row = connection.execute(
            "SELECT last_seq FROM sessions WHERE user_token = ? AND deactivation_time IS NULL",
            (key,),
        ).fetchone()
        return None if row is None else int(row[0])

    @staticmethod
    def _reset_mode(connection: sqlite3.Connection, key: str, now_ms: int) -> list[LiveEntry]:
        """Back to pointer mode when the agents change: write mode was granted to others."""
        row = connection.execute(
            "UPDATE sessions SET mode = 'pointer' WHERE user_token = ? AND mode = 'write' "
            "RETURNING last_seq",
            (key,),
        ).fetchone()
        if row is None:
            return []
        return append_drafts(
            connection, key, row[0], [mode_draft("pointer", "participants")], now_ms
        )
