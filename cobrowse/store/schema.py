"""Schema migrations, safe when every Gunicorn worker runs them at the same moment.

Each worker opens its connection and calls `migrate`. The migration takes SQLite's write lock
with BEGIN IMMEDIATE before it reads `PRAGMA user_version`, so exactly one worker applies each
step and the others see the new version when they get the lock. A naive
`CREATE TABLE IF NOT EXISTS` per worker races instead.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

import sqlite_utils


def _v1_sessions(db: sqlite_utils.Database) -> None:
    # Raw DDL where sqlite-utils has no words for it: WITHOUT ROWID stores rows in the userToken
    # key itself, and the partial index keeps a sessionToken unique only among sessions not yet
    # ended, so it can be drawn again once its session is history. Every index costs each create
    # a write, so there are no others: the once-a-minute sweep scans live rows through this one.
    db.execute(
        """
        CREATE TABLE sessions (
            user_token TEXT PRIMARY KEY NOT NULL,
            session_token TEXT NOT NULL,
            activation_time INTEGER NOT NULL,
            last_activity INTEGER NOT NULL,
            expires_at INTEGER NOT NULL,
            deactivation_time INTEGER,
            end_reason TEXT,
            csrf_token TEXT,
            screen_capture TEXT NOT NULL DEFAULT 'disabled'
        ) WITHOUT ROWID
        """
    )
    db.execute(
        "CREATE UNIQUE INDEX sessions_live_token ON sessions(session_token) "
        "WHERE deactivation_time IS NULL"
    )
    db.table("node_state").create(
        {"id": int, "draining": int, "stopping": int},
        pk="id",
        not_null={"draining", "stopping"},
        defaults={"draining": 0, "stopping": 0},
    )
    db.table("node_state").insert({"id": 1})


def _v2_rate_limits(db: sqlite_utils.Database) -> None:
    # One row per client and operation: the current fixed window, its count, and the end of
    # a quarantine (0 none, -1 forever), shared by every worker and kept across restarts.
    db.execute(
        """
        CREATE TABLE rate_limits (
            client TEXT NOT NULL,
            operation TEXT NOT NULL,
            window INTEGER NOT NULL,
            count INTEGER NOT NULL,
            quarantine_until INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (client, operation)
        ) WITHOUT ROWID
        """
    )


def _v3_heartbeat(db: sqlite_utils.Database) -> None:
    # Health checks write here: the cheapest proof that the store still accepts writes.
    db.table("node_state").add_column("heartbeat", int, not_null_default=0)


def _v4_live(db: sqlite_utils.Database) -> None:
    # The realtime channel (REALTIME.md). Per session: who the customer is to agents
    # (customer_id), pointer or write mode, attached data (JSON, cleared when the session
    # ends), and the counters of its live log: the last seq assigned, the last customer batch
    # stored (cseq, for idempotent resends), the seq of the last full snapshot, and the bytes
    # kept since it.
    for column, kind, default in (
        ("customer_id", str, ""),
        ("mode", str, "pointer"),
        ("last_seq", int, 0),
        ("last_cseq", int, 0),
        ("snapshot_seq", int, 0),
        ("log_bytes", int, 0),
        ("snapshot_requested", int, 0),
    ):
        db.table("sessions").add_column(column, kind, not_null_default=default)
    db.table("sessions").add_column("user_data", str)
    # Sessions are named by their customer's userToken (`session_key`) from here on: unlike a
    # sessionToken, it is never drawn again once its session has ended.
    # Agents who joined a session; the customer is the session itself. A place is held while
    # an agent waits or is accepted and has been seen within `[session] agentTimeout`.
    db.execute(
        """
        CREATE TABLE participants (
            user_token TEXT PRIMARY KEY NOT NULL,
            session_key TEXT NOT NULL,
            user_id TEXT NOT NULL,
            name TEXT NOT NULL,
            state TEXT NOT NULL,
            joined_at INTEGER NOT NULL,
            last_seen INTEGER NOT NULL
        ) WITHOUT ROWID
        """
    )
    db.execute("CREATE INDEX participants_session ON participants(session_key)")
    # The live log: every message the server sends with a seq, ready to send (`payload`), with
    # who may see it (`audience`), in the order of `seq` per session. A rowid table, unlike
    # `sessions`: its rows hold kilobytes of events, and SQLite keeps large rows best out of
    # the key's b-tree (inserts measured 40% cheaper).
    db.execute(
        """
        CREATE TABLE live_log (
            session_key TEXT NOT NULL,
            seq INTEGER NOT NULL,
            kind TEXT NOT NULL,
            audience TEXT NOT NULL,
            snapshot INTEGER NOT NULL DEFAULT 0,
            stored_at INTEGER NOT NULL,
            payload BLOB NOT NULL,
            PRIMARY KEY (session_key, seq)
        )
        """
    )


MIGRATIONS: tuple[Callable[[sqlite_utils.Database], None], ...] = (
    _v1_sessions,
    _v2_rate_limits,
    _v3_heartbeat,
    _v4_live,
)


def migrate(connection: sqlite3.Connection, timeout_s: float = 5.0) -> int:
    """Bring the database to the newest schema; return the version it is at."""
    wanted = len(MIGRATIONS)
    # Cheap fast path for every connection after the first: no write lock needed.
    if connection.execute("PRAGMA user_version").fetchone()[0] == wanted:
        return wanted
    _use_wal(connection, timeout_s)
    connection.execute("BEGIN IMMEDIATE")
    try:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version > wanted:
            raise sqlite3.DatabaseError(
                f"database schema version {version} is newer than this release ({wanted})"
            )
        db = sqlite_utils.Database(connection)
        for step in MIGRATIONS[version:]:
            step(db)
        connection.execute(f"PRAGMA user_version = {wanted}")
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    return wanted


def _use_wal(connection: sqlite3.Connection, timeout_s: float) -> None:
    """Switch the file to WAL (persistent once set), retrying while another process holds it.

    SQLite answers "database is locked" at once, without calling the busy handler, when two
    connections switch the journal mode of a new file at the same instant (one of them would
    otherwise deadlock), so the busy timeout does not cover this step: the loop does.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if connection.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                connection.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() >= deadline:
                raise
            time.sleep(0.005)
