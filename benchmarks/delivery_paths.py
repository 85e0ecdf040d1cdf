"""How a message crosses from one worker to another: the designs the realtime channel chose from.

    scripts/bench delivery_paths [--messages 3000] [--size 5000]

Two processes (a writer and a reader, pinned like the benchmarks' load and server), one node
database, messages of `--size` bytes (a typical rrweb batch). For each design, the writer stores
a message in the session's SQLite log (the record every design keeps, for resume) and the
reader must get it; reported: the reader's latency (store to in hand) p50/p99, and the
reader's CPU per message.

- poll: the reader queries the log every 10 ms.
- wake + read (chosen): the writer sends the session key in a datagram (abstract Unix socket);
  the reader wakes and reads the new rows from SQLite.
- payload fan-out: the writer sends the whole message in the datagram; the reader uses it
  (it would still need the log to fill gaps and to order messages from several writers).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import socket
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.common import LOAD_CPUS, SERVER_CPUS

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS live_log (session_key TEXT NOT NULL, seq INTEGER NOT NULL, "
    "stored_at REAL NOT NULL, payload BLOB NOT NULL, PRIMARY KEY (session_key, seq)) WITHOUT ROWID"
)
ADDRESS = "\0cobrowse-delivery-bench-"
KEY = b"1AbCdEfGhIjKlMnOpQrStUv"


def connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = NORMAL")
    connection.execute(SCHEMA)
    return connection


def writer(path: Path, design: str, messages: int, size: int, ready: object) -> None:
    os.sched_setaffinity(0, LOAD_CPUS)
    connection = connect(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    payload = os.urandom(size // 2).hex().encode()[:size]
    ready.wait()  # type: ignore[attr-defined]
    for seq in range(1, messages + 1):
        stored_at = time.time()
        connection.execute(
            "INSERT INTO live_log VALUES (?, ?, ?, ?)", (KEY.decode(), seq, stored_at, payload)
        )
        if design == "wake + read":
            sock.sendto(KEY, ADDRESS + design)
        elif design == "payload fan-out":
            sock.sendto(b"%d %f " % (seq, stored_at) + payload, ADDRESS + design)
        time.sleep(0.002)  # 500 messages a second: the paced load of a busy node
    if design != "poll":
        # The reader may have got every message and gone already.
        with contextlib.suppress(ConnectionRefusedError):
            sock.sendto(b"done", ADDRESS + design)


async def read(path: Path, design: str, messages: int, ready: object, out: object) -> None:
    connection = connect(path)
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(ADDRESS + design)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
    sock.setblocking(False)
    woke = asyncio.Event()
    inbox: list[bytes] = []

    def readable() -> None:
        while True:
            try:
                inbox.append(sock.recv(65536))
            except BlockingIOError:
                break
        woke.set()

    loop.add_reader(sock.fileno(), readable)
    latencies: list[float] = []
    cursor = 0
    cpu_before = time.process_time()
    ready.set()  # type: ignore[attr-defined]
    while cursor < messages:
        if design == "poll":
            await asyncio.sleep(0.01)
        else:
            await woke.wait()
            woke.clear()
        if design == "payload fan-out":
            batch, inbox[:] = list(inbox), []
            for datagram in batch:
                if datagram == b"done":
                    continue
                seq, stored_at, _ = datagram.split(b" ", 2)
                cursor = int(seq)
                latencies.append(time.time() - float(stored_at))
            continue
        inbox.clear()
        rows = connection.execute(
            "SELECT seq, stored_at, payload FROM live_log WHERE session_key = ? AND seq > ? "
            "ORDER BY seq",
            (KEY.decode(), cursor),
        ).fetchall()
        now = time.time()
        for seq, stored_at, _ in rows:
            cursor = seq
            latencies.append(now - stored_at)
    cpu = time.process_time() - cpu_before
    out.put((design, latencies, cpu))  # type: ignore[attr-defined]


def reader(path: Path, design: str, messages: int, ready: object, out: object) -> None:
    os.sched_setaffinity(0, SERVER_CPUS)
    asyncio.run(read(path, design, messages, ready, out))


def measure(design: str, messages: int, size: int) -> tuple[float, float, float]:
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="cobrowse-delivery-") as scratch:
        path = Path(scratch) / "node.db"
        connect(path).close()
        ready, out = context.Event(), context.Queue()
        read_process = context.Process(target=reader, args=(path, design, messages, ready, out))
        write_process = context.Process(target=writer, args=(path, design, messages, size, ready))
        read_process.start()
        write_process.start()
        _, latencies, cpu = out.get(timeout=120)
        for process in (write_process, read_process):
            process.join(30)
    ordered = sorted(latencies)
    p99 = ordered[int(0.99 * (len(ordered) - 1))]
    return statistics.median(ordered) * 1000, p99 * 1000, cpu / messages * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--size", type=int, default=5000, help="bytes per message")
    args = parser.parse_args(argv)
    print(f"{args.messages} messages of {args.size} bytes, 500 a second, writer -> reader")
    print(f"{'design':<18} {'p50 ms':>8} {'p99 ms':>8} {'reader CPU us/msg':>18}")
    for design in ("poll", "wake + read", "payload fan-out"):
        p50, p99, cpu = measure(design, args.messages, args.size)
        print(f"{design:<18} {p50:8.2f} {p99:8.2f} {cpu:18.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
