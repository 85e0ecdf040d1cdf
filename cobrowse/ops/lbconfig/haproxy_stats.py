"""Read the state of HAProxy's servers from its stats socket (`show stat`, CSV)."""

from __future__ import annotations

import csv
import socket
from dataclasses import dataclass
from pathlib import Path

from cobrowse.ops.lbconfig.haproxy import ALL_NODES


@dataclass(frozen=True, slots=True)
class ServerState:
    """One server as HAProxy sees it."""

    name: str
    status: str  # UP, DOWN, NOLB (draining), MAINT; "UP 1/2" or "DOWN 1/2" while changing
    check_status: str  # L7OK after a good probe, L7OKC after a 404, L4CON when refused...

    @property
    def up(self) -> bool:
        """Return whether HAProxy's own probes found the server ready (not only assumed so)."""
        return self.status == "UP" and self.check_status == "L7OK"


def show_stat(socket_path: str | Path, timeout: float = 2.0) -> str:
    """Return the CSV that `show stat` prints on HAProxy's stats socket."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(timeout)
        connection.connect(str(socket_path))
        connection.sendall(b"show stat\n")
        chunks = []
        # HAProxy closes the connection after one command (no `prompt` mode).
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


def parse_stat(text: str, backend: str = ALL_NODES) -> dict[str, ServerState]:
    """Return the servers of `backend` from `show stat` CSV, by name."""
    # The header line starts with "# "; the rest is plain CSV.
    rows = csv.DictReader(text.removeprefix("# ").splitlines())
    return {
        row["svname"]: ServerState(row["svname"], row["status"], row["check_status"])
        for row in rows
        if row.get("pxname") == backend and row["svname"] not in ("FRONTEND", "BACKEND")
    }


def server_states(socket_path: str | Path, backend: str = ALL_NODES) -> dict[str, ServerState]:
    """Return the servers of `backend` as HAProxy sees them now."""
    return parse_stat(show_stat(socket_path), backend)


def every_server_up(socket_path: str | Path, names: list[str]) -> bool:
    """Return whether HAProxy's probes found every named server ready; False if unreachable."""
    try:
        states = server_states(socket_path)
    except OSError:
        return False
    return all(name in states and states[name].up for name in names)
