"""Resolving an agent's token sees its state and its session's log in one snapshot.

A channel for a waiting agent starts where the log is when it resolves its token. If another
worker's consent (the agent accepted, `joined` appended) commits between reading the agent and
reading the session, the channel would start past the `joined` it waits for, and the agent would
wait forever. Here the consent commits, from another connection, right after the store read the
agent's row: the answer must be "waiting, before `joined`" or "accepted", never "waiting, past
`joined`".
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from typing import Any

from cobrowse.realtime import messages
from cobrowse.store import Session
from cobrowse.store.live import Participant
from cobrowse.store.sqlite import SqliteSessionStore
from cobrowse.store.sqlite_live import SqliteLiveStore

NOW = 1_700_000_000_000
KEY = "1" + "k" * 22
AGENT_TOKEN = "2" + "a" * 22


class AfterReading:
    """A connection that runs `hook` once, right after a row of `table` was fetched."""

    def __init__(self, connection: sqlite3.Connection, table: str, hook: Any) -> None:
        self.connection = connection
        self.table = table
        self.hook = hook

    def execute(self, sql: str, *args: Any) -> Any:
        cursor = self.connection.execute(sql, *args)
        if self.table not in sql or self.hook is None:
            return cursor
        hook, self.hook = self.hook, None
        return _Fetched(cursor, hook)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.connection, name)


class _Fetched:
    def __init__(self, cursor: sqlite3.Cursor, hook: Any) -> None:
        self.cursor = cursor
        self.hook = hook

    def fetchone(self) -> Any:
        row = self.cursor.fetchone()
        self.hook()
        return row


async def test_a_consent_committed_while_resolving_never_leaves_the_agent_past_its_joined(
    tmp_path,
) -> None:
    path = tmp_path / "live.db"
    sessions = SqliteSessionStore.at(path)
    live = SqliteLiveStore(sessions.database)
    await sessions.create(Session("123456789", KEY, NOW, NOW + 600_000, customer_id="c1"))
    agent = Participant(AGENT_TOKEN, "agent-1", "agent", "Ann", "pending")
    joined = await live.join(
        "123456789",
        agent,
        [messages.join_request(agent)],
        NOW,
        max_agents=1,
        agent_timeout_ms=60_000,
    )
    assert joined is not None

    other_worker = SqliteLiveStore(SqliteSessionStore.at(path).database)
    consented: list[int] = []

    def consent_from_another_worker() -> None:
        def run() -> None:
            entries = asyncio.run(
                other_worker.decide(KEY, "agent-1", True, [messages.joined(agent)], NOW + 1)
            )
            assert entries
            consented.append(next(e.seq for e in entries if e.kind == "joined"))

        thread = threading.Thread(target=run)
        thread.start()
        thread.join(10)
        assert consented, "the other worker's consent did not commit"

    real = sessions.database.connection()
    sessions.database.connection = lambda: AfterReading(  # type: ignore[method-assign]
        real, "participants", consent_from_another_worker
    )
    resolved = await live.resolve(AGENT_TOKEN, NOW + 2)

    assert resolved is not None
    session, participant = resolved
    [joined_seq] = consented
    if participant.state == "pending":
        assert session.last_seq < joined_seq  # its channel starts before `joined` and sees it
    else:
        assert participant.state == "accepted"
        assert session.last_seq >= joined_seq
