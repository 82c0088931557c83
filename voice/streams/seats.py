"""The bound on live pages per person, kept in Redis so it holds across web processes and hosts.

Each open stream holds a seat: a member of the person's sorted set named `<opened ms>-<random>` and scored by
when its web process last vouched for it. Taking a seat past the bound gives up the oldest ones, and tells
whichever process holds them (on the person's channel) to close them with a message the page shows. A process
that died stops vouching, and its seats lapse after STALE_SECONDS.
"""

from __future__ import annotations

import secrets
import time

from redis.asyncio import Redis

from routing.events import PREFIX, agent_channel

# KEYS: the person's seats, their channel. ARGV: the new seat, now, lapse before, bound, key lifetime (s).
_TAKE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[5])
local seats = redis.call('ZRANGE', KEYS[1], 0, -1)
table.sort(seats)
local oldest = {}
for i = 1, #seats - tonumber(ARGV[4]) do
  redis.call('ZREM', KEYS[1], seats[i])
  oldest[#oldest + 1] = seats[i]
end
if #oldest > 0 then
  redis.call('PUBLISH', KEYS[2], cjson.encode({close = oldest, reason = 'superseded'}))
end
return oldest
"""


class Seats:
    """At most `limit` open streams per person; the newest wins, as a person expects of the tab they just opened."""

    def __init__(self, redis: Redis, limit: int, stale_seconds: float, prefix: str = PREFIX) -> None:
        self.redis = redis
        self.limit = limit
        self.stale_seconds = stale_seconds
        self.prefix = prefix
        self._take = redis.register_script(_TAKE)

    def key(self, person: str) -> str:
        return f"{self.prefix}streams:{person}"

    async def take(self, person: str) -> str:
        now = time.time()
        seat = f"{int(now * 1000):013d}-{secrets.token_hex(4)}"
        await self._take(keys=[self.key(person), agent_channel(person, self.prefix)],
                         args=[seat, now, now - self.stale_seconds, self.limit, int(self.stale_seconds) + 1])
        return seat

    async def keep(self, held: list[tuple[str, str]]) -> None:
        """Vouch for the seats this process holds (a seat given up meanwhile stays given up)."""
        if not held:
            return
        now = time.time()
        pipe = self.redis.pipeline(transaction=False)
        for person, seat in held:
            pipe.zadd(self.key(person), {seat: now}, xx=True)
            pipe.expire(self.key(person), int(self.stale_seconds) + 1)
        await pipe.execute()

    async def leave(self, person: str, seat: str) -> None:
        await self.redis.zrem(self.key(person), seat)
