"""Stop a node gracefully: stop reporting ready first, then finish in-flight requests, then exit.

On SIGTERM the Gunicorn master marks the node `stopping` (its `/health` answers 503), keeps
serving for `shutdownDelay` seconds so that load balancers stop sending new work, and only
then stops the workers gracefully (each finishes the requests it has). A second SIGTERM, or
SIGINT/SIGQUIT, stops at once.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

from gunicorn.arbiter import Arbiter

log = logging.getLogger("cobrowse.node")


def set_stopping_flag(database_path: Path, stopping: bool) -> None:
    """Set the node-wide `stopping` switch from the master, with a connection it closes at once.

    The master never keeps a connection (or any thread) open: it forks workers at any time.
    """
    if not database_path.exists():
        return  # a new database starts with the switch off
    try:
        connection = sqlite3.connect(database_path, timeout=5, isolation_level=None)
        try:
            connection.execute("UPDATE node_state SET stopping = ? WHERE id = 1", (int(stopping),))
        finally:
            connection.close()
    except sqlite3.DatabaseError as error:
        log.warning("cannot set the stopping switch in %s: %s", database_path, error)


class DrainingArbiter(Arbiter):  # type: ignore[misc]
    """Gunicorn's arbiter, with a not-ready period between SIGTERM and the graceful stop."""

    def __init__(self, app: Any, database_path: Path, delay_s: float) -> None:
        super().__init__(app)
        self.database_path = database_path
        self.delay_s = delay_s
        self.stop_at: float | None = None

    def handle_term(self) -> None:
        if self.stop_at is not None or self.delay_s <= 0:
            raise StopIteration
        set_stopping_flag(self.database_path, stopping=True)
        self.stop_at = time.monotonic() + self.delay_s
        self.log.info(
            "SIGTERM: /health answers 503 now; stopping gracefully in %.1f s", self.delay_s
        )

    def murder_workers(self) -> None:
        # Called on every turn of the master loop (at least once a second).
        if self.stop_at is not None and time.monotonic() >= self.stop_at:
            raise StopIteration
        super().murder_workers()
