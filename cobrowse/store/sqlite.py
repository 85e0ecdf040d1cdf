"""The SQLite session store: one database file per node, shared by all its Gunicorn workers."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from cobrowse.store import (
    NodeState,
    PurgeResult,
    Session,
    SessionNotFoundError,
    StopResult,
    StoreUnavailableError,
    TokenConflictError,
)
from cobrowse.store.sqlite_db import SqliteDatabase
from cobrowse.store.sqlite_live import end_live, transaction

T = TypeVar("T")

_SESSION_COLUMNS = (
    "session_token, user_token, activation_time, expires_at, deactivation_time, end_reason, "
    "csrf_token, screen_capture"
)


# How long the `ended` entry of a session stays in the log, for workers to deliver it.
ENDED_LOG_KEPT_MS = 60_000

_GET_LIVE = (
    f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE session_token = ? "
    "AND deactivation_time IS NULL AND expires_at > ?"
)


def _session(row: tuple[object, ...]) -> Session:
    return Session(*row)  # type: ignore[arg-type]


class SqliteSessionStore:
    """`SessionStore` on one SQLite file."""

    def __init__(self, database: SqliteDatabase) -> None:
        self.database = database

    @classmethod
    def at(cls, path: Path) -> SqliteSessionStore:
        """Return a store on the database file at `path` (opened on first use)."""
        return cls(SqliteDatabase(path))

    async def open(self) -> None:
        # Opening migrates the schema under SQLite's write lock: do it before serving, not
        # inside the first request.
        self._run(lambda connection: None)

    async def close(self) -> None:
        self.database.close()

    # Both turn SQLite's operational failures (read-only, full, locked, corrupt) into
    # StoreUnavailableError, which clients see as 503. Integrity errors are the caller's to handle.
    def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return work(self.database.connection())
        except sqlite3.IntegrityError:
            raise
        except sqlite3.DatabaseError as error:
            raise StoreUnavailableError(str(error)) from error

    async def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return await self.database.write(work)
        except sqlite3.IntegrityError:
            raise
        except sqlite3.DatabaseError as error:
            raise StoreUnavailableError(str(error)) from error

    async def create(self, session: Session) -> None:
        def insert(connection: sqlite3.Connection) -> None:
            try:
                connection.execute(
                    f"INSERT INTO sessions ({_SESSION_COLUMNS}, last_activity, customer_id, "
                    "user_data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        session.session_token,
                        session.user_token,
                        session.activation_time,
                        session.expires_at,
                        session.deactivation_time,
                        session.end_reason,
                        session.csrf_token,
                        session.screen_capture,
                        session.activation_time,
                        session.customer_id,
                        None if session.user_data is None else json.dumps(session.user_data),
                    ),
                )
            except sqlite3.IntegrityError as error:
                raise TokenConflictError(str(error)) from error

        await self._write(insert)

    async def get_live(self, session_token: str, now_ms: int) -> Session | None:
        # The hottest read of all (every agent lookup): no closure, one statement.
        try:
            row = self.database.connection().execute(_GET_LIVE, (session_token, now_ms)).fetchone()
        except sqlite3.DatabaseError as error:
            raise StoreUnavailableError(str(error)) from error
        return None if row is None else _session(row)

    async def get_by_user_token(self, user_token: str) -> Session | None:
        row = self._run(
            lambda connection: connection.execute(
                f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE user_token = ?", (user_token,)
            ).fetchone()
        )
        return None if row is None else _session(row)

    async def stop(self, user_token: str, now_ms: int) -> StopResult:
        recorded = await self.get_by_user_token(user_token)
        if recorded is None:
            raise SessionNotFoundError(user_token)
        if recorded.deactivation_time is not None:
            return StopResult(recorded, ended_now=False)  # a repeated stop needs no write

        def end(connection: sqlite3.Connection) -> StopResult:
            # One UPDATE is atomic across workers: exactly one caller ends the session, and a
            # session already past its inactivity deadline ends at that deadline, not now.
            row = connection.execute(
                "UPDATE sessions SET deactivation_time = MIN(expires_at, :now), "
                "end_reason = CASE WHEN expires_at <= :now THEN 'timeout' ELSE 'stop' END "
                "WHERE user_token = :token AND deactivation_time IS NULL "
                f"RETURNING {_SESSION_COLUMNS}",
                {"now": now_ms, "token": user_token},
            ).fetchone()
            if row is not None:
                stopped = _session(row)
                entries = end_live(connection, user_token, stopped.end_reason or "stop", now_ms)
                return StopResult(stopped, ended_now=True, entries=entries)
            row = connection.execute(
                f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE user_token = ?", (user_token,)
            ).fetchone()
            if row is None:
                raise SessionNotFoundError(user_token)
            return StopResult(_session(row), ended_now=False)

        return await self._write(
            lambda connection: transaction(connection, lambda: end(connection))
        )

    async def touch(self, user_token: str, now_ms: int, expires_at: int) -> Session | None:
        row = await self._write(
            lambda connection: connection.execute(
                "UPDATE sessions SET last_activity = ?, expires_at = ? "
                "WHERE user_token = ? AND deactivation_time IS NULL AND expires_at > ? "
                f"RETURNING {_SESSION_COLUMNS}",
                (now_ms, expires_at, user_token, now_ms),
            ).fetchone()
        )
        return None if row is None else _session(row)

    async def change_screen_capture(
        self, user_token: str, now_ms: int, expires_at: int, change: Callable[[str], str]
    ) -> Session | None:
        def update(connection: sqlite3.Connection) -> Session | None:
            # Read and write under the node-wide write lock: no other worker can change the
            # state in between.
            row = connection.execute(
                "SELECT screen_capture FROM sessions WHERE user_token = ? "
                "AND deactivation_time IS NULL AND expires_at > ?",
                (user_token, now_ms),
            ).fetchone()
            if row is None:
                return None
            row = connection.execute(
                "UPDATE sessions SET screen_capture = ?, last_activity = ?, expires_at = ? "
                f"WHERE user_token = ? RETURNING {_SESSION_COLUMNS}",
                (change(row[0]), now_ms, expires_at, user_token),
            ).fetchone()
            return _session(row)

        return await self._write(update)

    async def sweep(self, now_ms: int, retention_ms: int) -> PurgeResult:
        def purge(connection: sqlite3.Connection) -> PurgeResult:
            expired = connection.execute(
                "UPDATE sessions SET deactivation_time = expires_at, end_reason = 'timeout' "
                "WHERE deactivation_time IS NULL AND expires_at <= ? RETURNING user_token",
                (now_ms,),
            ).fetchall()
            ended = [(key, end_live(connection, key, "timeout", now_ms)) for (key,) in expired]
            # `ended` has reached every worker long before: the last of the live content goes.
            connection.execute(
                "DELETE FROM live_log WHERE session_key IN (SELECT user_token FROM sessions "
                "WHERE deactivation_time IS NOT NULL AND deactivation_time < ?)",
                (now_ms - ENDED_LOG_KEPT_MS,),
            )
            purged = connection.execute(
                "DELETE FROM sessions WHERE deactivation_time IS NOT NULL "
                "AND deactivation_time < ? RETURNING user_token",
                (now_ms - retention_ms,),
            ).fetchall()
            for start in range(0, len(purged), 500):
                chunk = [key for (key,) in purged[start : start + 500]]
                marks = ", ".join("?" * len(chunk))
                connection.execute(
                    f"DELETE FROM participants WHERE session_key IN ({marks})", chunk
                )
            return PurgeResult(timed_out=len(expired), purged=len(purged), ended=ended)

        # It scans every live session: in a thread, so that the loop serves meanwhile.
        try:
            return await self.database.write_in_thread(
                lambda connection: transaction(connection, lambda: purge(connection))
            )
        except sqlite3.DatabaseError as error:
            raise StoreUnavailableError(str(error)) from error

    async def live_count(self, now_ms: int) -> int:
        # It scans every live session (tens of milliseconds at 100,000): in a thread.
        try:
            row = await self.database.read_in_thread(
                lambda connection: connection.execute(
                    "SELECT count(*) FROM sessions "
                    "WHERE deactivation_time IS NULL AND expires_at > ?",
                    (now_ms,),
                ).fetchone()
            )
        except sqlite3.DatabaseError as error:
            raise StoreUnavailableError(str(error)) from error
        return int(row[0])

    async def node_state(self) -> NodeState:
        row = self._run(
            lambda connection: connection.execute(
                "SELECT draining, stopping FROM node_state WHERE id = 1"
            ).fetchone()
        )
        return NodeState(draining=bool(row[0]), stopping=bool(row[1]))

    async def set_node_state(
        self, *, draining: bool | None = None, stopping: bool | None = None
    ) -> None:
        def update(connection: sqlite3.Connection) -> None:
            if draining is not None:
                connection.execute("UPDATE node_state SET draining = ? WHERE id = 1", (draining,))
            if stopping is not None:
                connection.execute("UPDATE node_state SET stopping = ? WHERE id = 1", (stopping,))

        await self._write(update)

    async def check_writable(self) -> None:
        # A real (tiny) write: a read-only or full filesystem only shows when pages are written.
        await self._write(
            lambda connection: connection.execute(
                "UPDATE node_state SET heartbeat = heartbeat + 1 WHERE id = 1"
            )
        )


__all__ = ["SqliteDatabase", "SqliteSessionStore"]
