"""Real servers for failover tests: a Redis master, its replica and three sentinels, and PgBouncer in transaction
pooling mode in front of PostgreSQL, each a process of its own on 127.0.0.1 that a test can SIGKILL."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from redis import Redis, RedisError
from sqlalchemy import make_url

from directo.core.embedded_redis import redis_executable

MASTER_NAME = "directo"
# How long a master may be silent before a sentinel calls it down. Sentinel's default is 30 s; the drill's 10 s
# target needs it short, at the price of a failover when a master merely stalls that long (see README).
DOWN_AFTER_MS = 2000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout} s")
        time.sleep(0.1)


class Server:
    """One server process we started; `kill()` is SIGKILL, as a machine dying would leave it."""

    def __init__(self, name: str, argv: list[str], directory: Path, port: int) -> None:
        self.name = name
        self.port = port
        self.log = directory / f"{name}.log"
        self.process = subprocess.Popen(argv, stdout=self.log.open("ab"), stderr=subprocess.STDOUT,
                                        start_new_session=True)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        if self.alive:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.alive:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def _answers(port: int) -> bool:
    try:
        return bool(Redis(port=port, socket_connect_timeout=0.5, socket_timeout=1).ping())
    except RedisError:
        return False


def redis_server(directory: Path, *extra: str) -> Server:
    """A redis-server of our own on a free port (`extra`: more of its options, e.g. --replicaof)."""
    port = free_port()
    server = Server(f"redis-{port}", [
        redis_executable(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        "--dir", str(directory), *extra], directory, port)
    wait_for(lambda: _answers(port), 30, f"Redis on {port} answering")
    return server


def in_sync(replica: Server) -> bool:
    """Whether a replica is linked to its master and has everything the master sent so far."""
    info = Redis(port=replica.port, socket_timeout=1).info("replication")
    if info.get("role") != "slave" or info.get("master_link_status") != "up":
        return False
    master = Redis(port=int(info["master_port"]), socket_timeout=1).info("replication")
    return int(master["master_repl_offset"]) == int(info["slave_repl_offset"])


class SentinelGroup:
    """A master, one replica and three sentinels watching them, as a production Redis with failover runs."""

    def __init__(self, directory: Path, down_after_ms: int = DOWN_AFTER_MS) -> None:
        self.directory = directory
        self.down_after_ms = down_after_ms
        self.servers: list[Server] = []
        self.redis: dict[int, Server] = {}
        self.sentinels: list[Server] = []

    def start(self) -> SentinelGroup:
        binary = redis_executable()
        master = redis_server(self.directory)
        replica = redis_server(self.directory, "--replicaof", "127.0.0.1", str(master.port))
        for server in (master, replica):
            self.servers.append(server)
            self.redis[server.port] = server
        wait_for(lambda: in_sync(replica), 30, "the replica in sync")
        for _ in range(3):
            port = free_port()
            conf = self.directory / f"sentinel-{port}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.directory}\n"
                f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master.port} 2\n"
                f"sentinel down-after-milliseconds {MASTER_NAME} {self.down_after_ms}\n"
                f"sentinel failover-timeout {MASTER_NAME} 10000\n"
                f"sentinel parallel-syncs {MASTER_NAME} 1\n")
            sentinel = Server(f"sentinel-{port}", [binary, str(conf), "--sentinel"], self.directory, port)
            self.servers.append(sentinel)
            self.sentinels.append(sentinel)
        for sentinel in self.sentinels:
            wait_for(lambda s=sentinel: self._sentinel_sees_replica(s.port), 30, "the sentinels seeing the replica")
        return self

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{sentinel.port}" for sentinel in self.sentinels)
        return f"redis+sentinel://{hosts}/{MASTER_NAME}/0"

    def master_port(self) -> int | None:
        """The master as the sentinels report it (None while none of them can say)."""
        for sentinel in self.sentinels:
            if not sentinel.alive:
                continue
            try:
                address = Redis(port=sentinel.port, socket_timeout=1).execute_command(
                    "SENTINEL", "get-master-addr-by-name", MASTER_NAME)
            except RedisError:
                continue
            if address:
                return int(address[1])
        return None

    def master(self) -> Server:
        port = self.master_port()
        assert port is not None, "no sentinel knows the master"
        return self.redis[port]

    def kill_master(self) -> tuple[Server, float]:
        """SIGKILL the master; returns it and the wall-clock time of its death."""
        master = self.master()
        master.kill()
        return master, time.time()

    def wait_failover(self, old: Server, timeout: float = 30) -> int:
        wait_for(lambda: self.master_port() not in (None, old.port), timeout, "a failover")
        return self.master_port() or 0

    @staticmethod
    def _sentinel_sees_replica(port: int) -> bool:
        try:
            master = Redis(port=port, socket_timeout=1).sentinel_master(MASTER_NAME)
        except RedisError:
            return False
        return int(master.get("num-slaves", 0)) >= 1 and int(master.get("num-other-sentinels", 0)) >= 2

    def stop(self) -> None:
        for server in reversed(self.servers):
            server.stop()


@contextmanager
def sentinel_group(directory: Path, down_after_ms: int = DOWN_AFTER_MS) -> Iterator[SentinelGroup]:
    group = SentinelGroup(directory, down_after_ms)
    try:
        yield group.start()
    finally:
        group.stop()


def pgbouncer_executable() -> str | None:
    """Debian's pgbouncer (./run-tests installs it when it can), wherever it is."""
    return shutil.which("pgbouncer") or next(
        (path for path in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.access(path, os.X_OK)), None)


@contextmanager
def pgbouncer(database_url: str, pool_size: int = 20) -> Iterator[str]:
    """PgBouncer in transaction pooling mode in front of the PostgreSQL database of `database_url`: yields the
    URL that goes through it (same database name, user and password)."""
    binary = pgbouncer_executable()
    assert binary, "pgbouncer is not installed"
    url = make_url(database_url)
    port = free_port()
    user = url.username or "postgres"
    # Its own directory, readable by the user PgBouncer drops to when started as root (pytest's are private).
    directory = Path(tempfile.mkdtemp(prefix="directo-pgbouncer-"))
    directory.chmod(0o755)
    (directory / "userlist.txt").write_text(f'"{user}" "{url.password or ""}"\n')
    conf = directory / "pgbouncer.ini"
    conf.write_text(
        "[databases]\n"
        f"{url.database} = host={url.host or '127.0.0.1'} port={url.port or 5432} dbname={url.database}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = {'md5' if url.password else 'trust'}\nauth_file = {directory / 'userlist.txt'}\n"
        f"pool_mode = transaction\ndefault_pool_size = {pool_size}\nmax_client_conn = 1000\n"
        f"pidfile = {directory / 'pgbouncer.pid'}\n"
        "ignore_startup_parameters = extra_float_digits\n")
    argv = [binary, str(conf)]
    if os.geteuid() == 0:  # PgBouncer refuses to run as root: it drops to the postgres user
        for path in (directory, *directory.iterdir()):
            shutil.chown(path, "postgres")
        argv[1:1] = ["-u", "postgres"]
    server = Server("pgbouncer", argv, directory, port)
    try:
        wait_for(lambda: _listening(port) or not server.alive, 30, "PgBouncer listening")
        assert server.alive, server.log.read_text()
        yield url.set(port=port).render_as_string(hide_password=False)
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0
