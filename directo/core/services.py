"""The process-wide resources (database, Redis, presence, queues), built once from the configuration."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from redis import ConnectionPool, Redis
from redis.asyncio import BlockingConnectionPool as AsyncBlockingPool
from redis.asyncio import Redis as AsyncRedis
from rq import Queue

from directo.core.config import Config
from directo.core.db import Database
from directo.core.embedded_redis import EmbeddedRedis
from directo.core.urls import UrlFor, public_urls

# A Redis outage must cost a caller well under Twilio's 15 s webhook budget before the fallback kicks in.
REDIS_CONNECT_TIMEOUT = 0.5
REDIS_SOCKET_TIMEOUT = 2.0
# An asyncio client's connections: a thousand pages opening at once share these instead of each connecting.
ASYNC_REDIS_CONNECTIONS = 16


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
    # What the layers above build once per process on these resources (e.g. routing's presence scripts).
    extensions: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, config: Config) -> Services:
        redis = Redis.from_url(
            resolve_redis_url(config),
            socket_connect_timeout=REDIS_CONNECT_TIMEOUT,
            socket_timeout=REDIS_SOCKET_TIMEOUT,
            health_check_interval=30,
        )
        return cls(config=config, db=Database(config.database_url_sqlalchemy), redis=redis)

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
        pool = self.redis.connection_pool
        settings = {key: value for key, value in pool.connection_kwargs.items() if key != "socket_timeout"}
        return Redis(connection_pool=ConnectionPool(connection_class=pool.connection_class, **settings))

    def async_redis(self) -> AsyncRedis:
        """An asyncio client on the same Redis, for the web processes' live pages (one subscription feeds them all).

        Built here like the others, from the same URL and connect timeout; no read timeout of its own, since a
        subscription waits as long as nothing happens, and health checks find a dead link instead. A few
        connections, waited for when all are busy: pages opening by the thousand (a deploy, a network blip)
        queue for them rather than each opening a connection of its own within the connect timeout.
        """
        pool = AsyncBlockingPool.from_url(resolve_redis_url(self.config), max_connections=ASYNC_REDIS_CONNECTIONS,
                                          timeout=10, socket_connect_timeout=REDIS_CONNECT_TIMEOUT,
                                          health_check_interval=30)
        return AsyncRedis.from_pool(pool)

    def close(self) -> None:
        self.db.dispose()
        self.redis.close()
