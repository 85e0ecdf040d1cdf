"""Stop a node gracefully: stop reporting ready first, then finish in-flight requests, then exit.

On SIGTERM the Gunicorn master marks the node `stopping` (its `/health` answers 503), keeps
serving for `shutdownDelay` seconds so that load balancers stop sending new work, and only
then stops the workers gracefully (each finishes the requests it has). A second SIGTERM, or
SIGINT/SIGQUIT, stops at once.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from gunicorn.arbiter import Arbiter

log = logging.getLogger("cobrowse.node")


def set_stopping_flag(database_path: Path, stopping: bool) -> bool:
    """Set the node-wide `stopping` switch from the master, with a connection it closes at once;
    return whether it is set.

    The master never keeps a connection (or any thread) open: it forks workers at any time.
    """
    if not database_path.exists():
        return True  # a new database starts with the switch off
    try:
        # Under the node-wide write lock, as every writer: a worker's event loop then never
        # meets SQLite's own lock held by the master.
        descriptor = os.open(f"{database_path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            connection = sqlite3.connect(database_path, timeout=5, isolation_level=None)
            try:
                connection.execute(
                    "UPDATE node_state SET stopping = ? WHERE id = 1", (int(stopping),)
                )
            finally:
                connection.close()
        finally:
            os.close(descriptor)  # closing releases the lock
    except (sqlite3.DatabaseError, OSError) as error:
        log.warning("cannot set the stopping switch in %s: %s", database_path, error)
        return False
    return True


class DrainingArbiter(Arbiter):  # type: ignore[misc]
    """Gunicorn's arbiter, with a not-ready period between SIGTERM and the graceful stop."""

    def __init__(self, app: Any, database_path: Path, delay_s: float) -> None:
        super().__init__(app)
        self.database_path = database_path
        self.delay_s = delay_s
        self.stop_at: float | None = None
        # A hard stop leaves the switch on; a store that is not writable yet (a disk remounted
        # read-only) keeps it on until the master manages to clear it, once a second.
        self.cleared = set_stopping_flag(database_path, stopping=False)

    def handle_term(self) -> None:
        if self.stop_at is not None:
            raise StopIteration
        # Also tells the workers' channels that the node stops (1001), not reloads (1012).
        set_stopping_flag(self.database_path, stopping=True)
        if self.delay_s <= 0:
            raise StopIteration
        self.stop_at = time.monotonic() + self.delay_s
        self.log.info(
            "SIGTERM: /health answers 503 now; stopping gracefully in %.1f s", self.delay_s
        )

    def murder_workers(self) -> None:
        # Called on every turn of the master loop (at least once a second).
        if self.stop_at is not None and time.monotonic() >= self.stop_at:
            raise StopIteration
        if not self.cleared and self.stop_at is None:
            self.cleared = set_stopping_flag(self.database_path, stopping=False)
        super().murder_workers()
