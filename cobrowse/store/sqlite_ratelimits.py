"""Rate-limit counters in the node's SQLite database: fixed one-minute windows, node-wide."""

from __future__ import annotations

import math
import sqlite3

from cobrowse.store import RateDecision, StoreUnavailableError
from cobrowse.store.sqlite_db import SqliteDatabase

WINDOW_MS = 60_000
FOREVER = -1


class SqliteRateLimitStore:
    """`RateLimitStore` on the node's database; every worker counts in the same rows."""

    def __init__(self, database: SqliteDatabase) -> None:
        self.database = database

    async def hit(
        self, client: str, operation: str, now_ms: int, limit: int, quarantine_ms: int
    ) -> RateDecision:
        window = now_ms // WINDOW_MS

        # Under the node-wide write lock, read-count-decide-write is atomic across workers.
        def count(connection: sqlite3.Connection) -> tuple[bool, int]:
            row = connection.execute(
                "SELECT window, count, quarantine_until FROM rate_limits "
                "WHERE client = ? AND operation = ?",
                (client, operation),
            ).fetchone()
            hits, quarantine_until = 1, 0
            if row is not None:
                hits = row[1] + 1 if row[0] == window else 1
                quarantine_until = row[2]
            quarantined = quarantine_until == FOREVER or quarantine_until > now_ms
            if not quarantined and hits > limit:
                quarantine_until = FOREVER if quarantine_ms == 0 else now_ms + quarantine_ms
                quarantined = True
            connection.execute(
                "INSERT INTO rate_limits (client, operation, window, count, quarantine_until) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (client, operation) DO UPDATE SET "
                "window = excluded.window, count = excluded.count, "
                "quarantine_until = excluded.quarantine_until",
                (client, operation, window, hits, quarantine_until),
            )
            return quarantined, quarantine_until

        try:
            quarantined, quarantine_until = await self.database.write(count)
        except sqlite3.DatabaseError as error:
            raise StoreUnavailableError(str(error)) from error
        if not quarantined:
            return RateDecision(allowed=True)
        if quarantine_until == FOREVER:
            return RateDecision(allowed=False, retry_after_s=None)
        return RateDecision(
            allowed=False, retry_after_s=max(1, math.ceil((quarantine_until - now_ms) / 1000))
        )

    async def forget_before(self, now_ms: int) -> int:
        try:
            return await self.database.write(
                lambda connection: (
                    connection.execute(
                        "DELETE FROM rate_limits WHERE window < ? AND quarantine_until != ? "
                        "AND quarantine_until <= ?",
                        (now_ms // WINDOW_MS, FOREVER, now_ms),
                    ).rowcount
                )
            )
        except sqlite3.DatabaseError as error:
            raise StoreUnavailableError(str(error)) from error
