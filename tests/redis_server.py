"""A real redis-server for tests: its own port and data directory, stopped by whoever started it."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from cobrowse.config.clusterfile import free_port

DEADLINE_S = 10.0


class RedisServer:
    """`redis-server` on loopback; AOF with `appendfsync always` when durability matters."""

    def __init__(self, directory: Path, *, durable: bool = False, port: int | None = None):
        executable = shutil.which("redis-server")
        assert executable, "redis-server is installed by scripts/test (Debian's redis-server)"
        self.directory = directory
        self.port = port or free_port()
        directory.mkdir(parents=True, exist_ok=True)
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "always"]
            if durable
            else ["--appendonly", "no"]
        )
        self.argv = [
            executable,
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(directory),
            "--save", "",
            "--protected-mode", "yes",
            *persistence,
        ]  # fmt: skip
        self.process: subprocess.Popen[bytes] | None = None
        self.log = directory / "redis.log"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT)
        end = time.monotonic() + DEADLINE_S
        while time.monotonic() < end:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited:\n{self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as probe:
                    probe.sendall(b"PING\r\n")
                    if probe.recv(64).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"redis-server did not answer within {DEADLINE_S} s")

    def stop(self) -> None:
        """Stop it (SIGTERM: with AOF, what was acknowledged is on disk); wait for it."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(DEADLINE_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def kill(self) -> None:
        """kill -9, as a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)
