"""The process-wide resources (database, Redis, presence, queues), built once from the configuration."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from redis import Redis
from redis.asyncio import BlockingConnectionPool as AsyncBlockingPool
from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.backoff import ConstantBackoff, NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelManagedConnection
from rq import Queue

from directo.core.config import Config
from directo.core.db import Database
from directo.core.embedded_redis import EmbeddedRedis
from directo.core.private_files import DIRECTORY_MODE, tighten
from directo.core.urls import UrlFor, public_urls

# A Redis outage must cost a caller well under Twilio's 15 s webhook budget before the fallback kicks in.
REDIS_CONNECT_TIMEOUT = 0.5
REDIS_SOCKET_TIMEOUT = 2.0
# An asyncio client's connections: a thousand pages opening at once share these instead of each connecting.
ASYNC_REDIS_CONNECTIONS = 16
_REDIS_OPTIONS = {"socket_connect_timeout": REDIS_CONNECT_TIMEOUT, "health_check_interval": 30}
SENTINEL_SCHEME = "redis+sentinel"
DEFAULT_SENTINEL_PORT = 26379
# With Sentinel, a command that lost the master waits this long for the new one before it fails (and a webhook
# takes the outage fallback): down-after-milliseconds plus the election must fit in it, and it must leave room in
# Twilio's 15 s for the rest of the webhook.
FAILOVER_WAIT_SECONDS = 6.0
FAILOVER_PAUSE_SECONDS = 0.1
SENTINEL_TIMEOUT = 1.0
SENTINEL_FORM = "redis+sentinel://[:password@]host:26379,host2:26379,host3:26379/MASTER_NAME[/DB]"


@dataclass(frozen=True)
class RedisTarget:
    """Where Redis is, read from REDIS_URL: one server, or a master that Sentinel watches and fails over."""

    url: str
    sentinels: tuple[tuple[str, int], ...] = ()
    master: str = ""
    db: int = 0
    password: str | None = None
    sentinel_password: str | None = None

    @property
    def sentinel(self) -> bool:
        return bool(self.sentinels)


def parse_redis_url(url: str) -> RedisTarget:
    """The one reading of REDIS_URL: every Redis client Directo builds, of any kind, starts from it.

    `redis://`, `rediss://` and `unix://` name one server (redis-py reads them). `redis+sentinel://` names the
    sentinels, the master's name and the database: clients ask the sentinels where the master is, and ask again
    when it fails over. A password before the hosts is the Redis servers'; sentinels that need one of their own
    take `?sentinel_password=`.
    """
    parts = urlsplit(url)
    if parts.scheme in ("redis", "rediss", "unix"):
        return RedisTarget(url)
    if parts.scheme != SENTINEL_SCHEME:
        raise ValueError(f"REDIS_URL={url!r}: use redis://, rediss://, unix:// or {SENTINEL_FORM}")
    credentials, _, hosts = parts.netloc.rpartition("@")
    path = [segment for segment in parts.path.split("/") if segment]
    try:
        sentinels = tuple(_address(address) for address in hosts.split(","))
        db = int(path[1]) if len(path) > 1 else 0
    except ValueError:
        sentinels, db = (), -1
    if not sentinels or not path or len(path) > 2 or db < 0:
        raise ValueError(f"REDIS_URL={url!r}: the Sentinel form is {SENTINEL_FORM}")
    password = unquote(credentials.partition(":")[2]) if credentials else None
    sentinel_password = parse_qs(parts.query).get("sentinel_password", [None])[0]
    return RedisTarget(url, sentinels, unquote(path[0]), db, password or None, sentinel_password)


def _address(text: str) -> tuple[str, int]:
    """`host:port` of one sentinel, 26379 (Sentinel's own port) when the port is left out."""
    host, colon, port = text.strip().rpartition(":")
    if not colon:
        host, port = port, ""
    if not host:
        raise ValueError(text)
    return host, int(port or DEFAULT_SENTINEL_PORT)


class UntilFailedOver(Retry):
    """Retry a command that lost its connection for `seconds` in all, whatever each try costs, not N times:
    a dead master refuses at once on one network and times out after the connect timeout on another."""

    def __init__(self, seconds: float = FAILOVER_WAIT_SECONDS, pause: float = FAILOVER_PAUSE_SECONDS) -> None:
        super().__init__(ConstantBackoff(pause), retries=-1)
        self.seconds = seconds
        self.pause = pause

    def call_with_retry(self, do: Any, fail: Any, is_retryable: Any = None, with_failure_count: bool = False) -> Any:
        deadline = time.monotonic() + self.seconds
        failures = 0
        while True:
            try:
                return do()
            except self._supported_errors as error:
                if is_retryable is not None and not is_retryable(error):
                    raise
                failures += 1
                if with_failure_count:
                    fail(error, failures)
                else:
                    fail(error)
                if time.monotonic() + self.pause > deadline:
                    raise
                time.sleep(self.pause)


class MasterFollowingConnection(SentinelManagedConnection):
    """A connection that asks the sentinels where the master is whenever it connects again.

    redis-py's own reconnects, when a command fails and is retried, to the address it had: the dead master's,
    for as long as the retries last; RQ's worker then quit on its heartbeat (tests/test_sentinel.py)."""

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if not self._sock:
            self.connect()
        super().send_packed_command(command, check_health)


def redis_client(url: str, **options: Any) -> Redis:
    """A client of the Redis in `url` (`options` as for redis.Redis); with Sentinel, of whichever server is master.

    A Sentinel-managed client asks the sentinels for the master before each new connection, drops connections
    to a master that was demoted (READONLY) or died, and so follows a failover without a restart.
    """
    target = parse_redis_url(url)
    if not target.sentinel:
        return Redis.from_url(url, **options)
    # A sentinel answers at once or not at all: one that hangs (its host stalled) must not hold up the next one,
    # even for the worker's client, which has no read timeout of its own.
    asking = {"socket_connect_timeout": options.get("socket_connect_timeout", REDIS_CONNECT_TIMEOUT),
              "socket_timeout": SENTINEL_TIMEOUT, "retry": Retry(NoBackoff(), 0), "password": target.sentinel_password}
    sentinel = Sentinel(list(target.sentinels), sentinel_kwargs=asking)
    return sentinel.master_for(target.master, db=target.db, password=target.password, retry=UntilFailedOver(),
                               connection_class=MasterFollowingConnection, **options)


def resolve_redis_url(config: Config) -> str:
    """REDIS_URL when configured; otherwise a private redis-server in the data directory, started if needed."""
    if config.redis_url:
        return config.redis_url
    return EmbeddedRedis(Path(config.data_dir) / "redis").start()


@dataclass
class Services:
    config: Config
    db: Database
    redis: Redis
    redis_url: str  # as resolved: the embedded server's when REDIS_URL is unset
    # What the layers above build once per process on these resources (e.g. routing's presence scripts).
    extensions: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, config: Config) -> Services:
        # Older versions left these readable by everyone: tightened at every start (new ones are made private).
        for directory in (config.data_dir, config.recordings_dir):
            tighten(Path(directory), DIRECTORY_MODE)
        redis_url = resolve_redis_url(config)
        redis = redis_client(redis_url, socket_timeout=REDIS_SOCKET_TIMEOUT, **_REDIS_OPTIONS)
        db = Database(config.database_url_sqlalchemy, config.database_direct_url_sqlalchemy,
                      config.database_pool_size, config.database_max_overflow)
        return cls(config=config, db=db, redis=redis, redis_url=redis_url)

    @cached_property
    def urls(self) -> UrlFor:
        """Where Twilio reaches us, for work done outside a request (jobs, the sweep, the CLI)."""
        return public_urls(self.config.public_base_url)

    @cached_property
    def queue(self) -> Queue:
        return Queue("directo", connection=self.redis)

    def blocking_redis(self) -> Redis:
        """A connection of its own for RQ's worker, which blocks for minutes on Redis waiting for the next job.

        The shared connection's short read timeout (there so a webhook falls back fast when Redis is gone) cuts
        such a wait short; RQ takes that for a lost Redis and backs off, 1, 2, 4... up to 60 s, before it listens
        again, so a callback or an SMS queued meanwhile would wait that long. On a connection with no read
        timeout of its own, RQ sets one that outlasts its wait.
        """
        return redis_client(self.redis_url, **_REDIS_OPTIONS)

    def async_redis(self) -> AsyncRedis:
        """An asyncio client on the same Redis, for the web processes' live pages (one subscription feeds them all).

        Built here like the others, from the same URL and connect timeout; no read timeout of its own, since a
        subscription waits as long as nothing happens, and health checks find a dead link instead. A few
        connections, waited for when all are busy: pages opening by the thousand (a deploy, a network blip)
        queue for them rather than each opening a connection of its own within the connect timeout.
        """
        target = parse_redis_url(self.redis_url)
        if target.sentinel:  # the master, as the sentinels name it now and after a failover
            asking = {"socket_connect_timeout": REDIS_CONNECT_TIMEOUT, "socket_timeout": SENTINEL_TIMEOUT,
                      "password": target.sentinel_password}
            return AsyncSentinel(list(target.sentinels), sentinel_kwargs=asking).master_for(
                target.master, db=target.db, password=target.password, max_connections=ASYNC_REDIS_CONNECTIONS,
                socket_connect_timeout=REDIS_CONNECT_TIMEOUT, health_check_interval=30)
        pool = AsyncBlockingPool.from_url(target.url, max_connections=ASYNC_REDIS_CONNECTIONS, timeout=10,
                                          socket_connect_timeout=REDIS_CONNECT_TIMEOUT, health_check_interval=30)
        return AsyncRedis.from_pool(pool)

    def close(self) -> None:
        self.db.dispose()
        self.redis.close()
