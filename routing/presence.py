"""Live agent presence in Redis, with Lua scripts so reserving an agent is atomic across web processes.

Keys (under a prefix): `agent:<identity>` hash (status, since, call, languages, name, until),
`idle:<language>` sorted sets of available agents scored by idle-since, `wrapup` scored by wrap-up end,
`agents`, the set of known identities, and `loaded`, the replication id of the master presence was loaded on.

Every change of an agent's state is published on their event channel (`routing.events.agent_channel`) by the
script that makes it, stamped `v` with Redis's clock in ms, so pages and boards are pushed each change as it
happens and can tell a stale one (read before, delivered after) from the newest.
"""

from __future__ import annotations

from dataclasses import dataclass
from string import Template
from typing import TYPE_CHECKING, Any

from redis import Redis

from directo.core.states import AgentStatus
from routing.policy import AgentState, Snapshot

if TYPE_CHECKING:
    from directo.core.models import Agent
    from directo.core.services import Services


def _lua(script: str) -> str:
    """Scripts name states through the shared vocabulary, like every other module."""
    return Template(script).substitute(AVAILABLE=AgentStatus.AVAILABLE, RESERVED=AgentStatus.RESERVED,
                                       WRAPUP=AgentStatus.WRAPUP, OFFLINE=AgentStatus.OFFLINE)


# A master that is not the one presence was loaded on (a replica promoted by a failover, which may lack the last
# writes: a reservation, a call's end) forgets presence, so it is put back from the database as after a restart
# that lost it. The check costs no round trip: every routing snapshot makes it, in the same script.
_FENCE = """
local p = ARGV[1]
local function replication_id()
  return string.match(redis.call('INFO', 'replication'), 'master_replid:(%w+)')
end
local marker = redis.call('GET', p..'loaded')
if marker and marker ~= replication_id() then
  for _, id in ipairs(redis.call('SMEMBERS', p..'agents')) do
    local key = p..'agent:'..id
    for lang in string.gmatch(redis.call('HGET', key, 'languages') or '', '[^,]+') do
      redis.call('DEL', p..'idle:'..lang)
    end
    redis.call('DEL', key)
  end
  redis.call('DEL', p..'agents', p..'$WRAPUP', p..'loaded')
end
"""

_LOADED = _FENCE + """
return redis.call('EXISTS', p..'loaded')
"""

_MARK_LOADED = """
local replication = redis.call('INFO', 'replication')
redis.call('SET', ARGV[1]..'loaded', string.match(replication, 'master_replid:(%w+)'))
"""

# Stamps the agent's state with Redis's clock (ms) and publishes it on their channel, as routing.events names it.
_PUBLISH_STATE = """
local function publish_state(p, id)
  local key = p..'agent:'..id
  local clock = redis.call('TIME')
  redis.call('HSET', key, 'v', string.format('%d', clock[1] * 1000 + math.floor(clock[2] / 1000)))
  local s = redis.call('HMGET', key, 'status', 'call', 'since', 'until', 'v')
  redis.call('PUBLISH', p..'events:agent:'..id, cjson.encode({state = {
    status = s[1] or '$OFFLINE', call = s[2] or '', since = s[3] or '0', ['until'] = s[4] or '0', v = s[5]}}))
end
"""

# Wrap-ups that have ended are promoted lazily here, so no timer is needed for an agent to become free.
_PROMOTE = _PUBLISH_STATE + """
local p = ARGV[1]
local due = redis.call('ZRANGEBYSCORE', p..'$WRAPUP', '-inf', ARGV[2])
for _, id in ipairs(due) do
  local key = p..'agent:'..id
  local ends = redis.call('HGET', key, 'until')
  redis.call('HSET', key, 'status', '$AVAILABLE', 'since', ends, 'call', '')
  for lang in string.gmatch(redis.call('HGET', key, 'languages') or '', '[^,]+') do
    redis.call('ZADD', p..'idle:'..lang, ends, id)
  end
  redis.call('ZREM', p..'$WRAPUP', id)
  publish_state(p, id)
end
"""

_SNAPSHOT = _FENCE + _PROMOTE + """
local prev = false
if ARGV[4] ~= '' then
  local s = redis.call('HMGET', p..'agent:'..ARGV[4], 'status', 'since', 'languages')
  if s[1] then prev = {s[1], s[2] or '0', s[3] or ''} end
end
local idle = redis.call('ZRANGE', p..'idle:'..ARGV[3], 0, tonumber(ARGV[5]) - 1, 'WITHSCORES')
return {prev, idle, due}
"""

_RESERVE = _PUBLISH_STATE + """
local p = ARGV[1]
for i = 4, #ARGV do
  local id = ARGV[i]
  local key = p..'agent:'..id
  if redis.call('HGET', key, 'status') == '$AVAILABLE' then
    for lang in string.gmatch(redis.call('HGET', key, 'languages') or '', '[^,]+') do
      redis.call('ZREM', p..'idle:'..lang, id)
    end
    redis.call('HSET', key, 'status', '$RESERVED', 'call', ARGV[2], 'reserved_at', ARGV[3])
    publish_state(p, id)
    local facts = redis.call('HMGET', key, 'agent_id', 'name', 'phone')
    return {id, facts[1] or '', facts[2] or '', facts[3] or ''}
  end
end
return false
"""

# ARGV: prefix, identity, expected call ('*' = any), status, call, since ('' = keep), until.
_TRANSITION = _PUBLISH_STATE + """
local p, id = ARGV[1], ARGV[2]
local key = p..'agent:'..id
if redis.call('EXISTS', key) == 0 then return 0 end
if ARGV[3] ~= '*' and (redis.call('HGET', key, 'call') or '') ~= ARGV[3] then return 0 end
local langs = redis.call('HGET', key, 'languages') or ''
for lang in string.gmatch(langs, '[^,]+') do redis.call('ZREM', p..'idle:'..lang, id) end
redis.call('ZREM', p..'$WRAPUP', id)
redis.call('HSET', key, 'status', ARGV[4], 'call', ARGV[5])
if ARGV[6] ~= '' then redis.call('HSET', key, 'since', ARGV[6]) end
if ARGV[4] == '$AVAILABLE' then
  local since = redis.call('HGET', key, 'since')
  for lang in string.gmatch(langs, '[^,]+') do redis.call('ZADD', p..'idle:'..lang, since, id) end
elseif ARGV[4] == '$WRAPUP' then
  redis.call('HSET', key, 'until', ARGV[7])
  redis.call('ZADD', p..'$WRAPUP', ARGV[7], id)
end
publish_state(p, id)
return 1
"""


def agent_key(identity: str, prefix: str = "directo:") -> str:
    """The agent's presence hash (status, since, call, until, v, and the facts a call needs)."""
    return f"{prefix}agent:{identity}"


@dataclass(frozen=True)
class Reserved:
    identity: str
    agent_id: int
    name: str
    phone: str | None


class Presence:
    """The Redis edge of routing: reads snapshots for the pure policy and applies its choices atomically."""

    def __init__(self, redis: Redis, prefix: str = "directo:") -> None:
        self.redis = redis
        self.prefix = prefix
        self._promote = redis.register_script(_lua(_PROMOTE))
        self._loaded = redis.register_script(_lua(_LOADED))
        self._mark_loaded = redis.register_script(_lua(_MARK_LOADED))
        self._snapshot = redis.register_script(_lua(_SNAPSHOT))
        self._reserve = redis.register_script(_lua(_RESERVE))
        self._transition = redis.register_script(_lua(_TRANSITION))

    def _key(self, identity: str) -> str:
        return agent_key(identity, self.prefix)

    def register(self, agent: Agent) -> None:
        """Make an agent known to the router (offline until they say otherwise), keeping any live state.

        The facts a call needs about its agent ride along, so reserving one costs no database query.
        """
        identity = agent.identity
        key = self._key(identity)
        pipe = self.redis.pipeline()
        pipe.hsetnx(key, "status", AgentStatus.OFFLINE)
        pipe.hsetnx(key, "since", "0")
        pipe.hset(key, mapping={"name": agent.name, "languages": agent.languages_csv, "agent_id": agent.id,
                                "phone": agent.phone or ""})
        pipe.sadd(f"{self.prefix}agents", identity)
        pipe.execute()

    def loaded(self) -> bool:
        """Whether presence was loaded from the database on this master since it last lost its data."""
        return bool(self._loaded(args=[self.prefix]))

    def mark_loaded(self) -> None:
        self._mark_loaded(args=[self.prefix])

    def known(self, identity: str) -> bool:
        return bool(self.redis.exists(self._key(identity)))

    def snapshot(self, language: str, previous: str | None, now: float, limit: int = 8) -> tuple[Snapshot, list[str]]:
        """The routing snapshot, plus the agents whose wrap-up ended just now (they may take queued work)."""
        prev, idle, due = self._snapshot(args=[self.prefix, now, language, previous or "", limit])
        previous_state = None
        if prev and previous:
            status, since, langs = (_text(v) for v in prev)
            previous_state = AgentState(previous, status, float(since), tuple(filter(None, langs.split(","))))
        idle_states = tuple(
            AgentState(_text(idle[i]), AgentStatus.AVAILABLE, float(idle[i + 1]), (language,))
            for i in range(0, len(idle), 2)
        )
        return Snapshot(previous_state, idle_states), [_text(d) for d in due]

    def idle_agents(self, languages: tuple[str, ...], limit: int = 50) -> list[AgentState]:
        """The longest-idle available agents over these languages, each once, with all their languages."""
        pipe = self.redis.pipeline()
        for language in languages:
            pipe.zrange(f"{self.prefix}idle:{language}", 0, limit - 1, withscores=True)
        since = {_text(member): score for rows in pipe.execute() for member, score in rows}
        identities = sorted(since, key=lambda i: (since[i], i))[:limit]
        pipe = self.redis.pipeline()
        for identity in identities:
            pipe.hget(self._key(identity), "languages")
        return [
            AgentState(identity, AgentStatus.AVAILABLE, since[identity],
                       tuple(filter(None, _text(langs or b"").split(","))))
            for identity, langs in zip(identities, pipe.execute(), strict=True)
        ]

    def promote_due(self, now: float) -> None:
        self._promote(args=[self.prefix, now])

    def reserve(self, call_sid: str, candidates: list[str], now: float) -> Reserved | None:
        """Reserve the first candidate still available; None when all were taken meanwhile."""
        if not candidates:
            return None
        chosen = self._reserve(args=[self.prefix, call_sid, now, *candidates])
        if not chosen:
            return None
        identity, agent_id, name, phone = (_text(v) for v in chosen)
        return Reserved(identity, int(agent_id), name, phone or None)

    def transition(
        self,
        identity: str,
        status: str,
        *,
        expect_call: str = "*",
        call: str = "",
        since: float | None = None,
        until: float | None = None,
    ) -> bool:
        """Move an agent to `status` if they are still on `expect_call`; False when that call is no longer theirs."""
        status = AgentStatus(status)  # an unknown status is a bug: ValueError
        done = self._transition(
            args=[
                self.prefix,
                identity,
                expect_call,
                status,
                call,
                "" if since is None else repr(since),
                "" if until is None else repr(until),
            ]
        )
        return bool(done)

    def release(self, identity: str, holding: str) -> bool:
        """Free an agent still held by `holding`, as idle as before it (their place in line is kept)."""
        return self.transition(identity, AgentStatus.AVAILABLE, expect_call=holding)

    def state(self, identity: str) -> dict[str, str]:
        return {_text(k): _text(v) for k, v in self.redis.hgetall(self._key(identity)).items()}

    def states(self, fields: tuple[str, ...] = ()) -> dict[str, dict[str, str]]:
        """Every known agent's state; only `fields` of it when given (the live board reads a thousand, often)."""
        identities = sorted(_text(i) for i in self.redis.smembers(f"{self.prefix}agents"))
        pipe = self.redis.pipeline(transaction=False)
        for identity in identities:
            if fields:
                pipe.hmget(self._key(identity), fields)
            else:
                pipe.hgetall(self._key(identity))
        rows = zip(identities, pipe.execute(), strict=True)
        if fields:
            return {identity: {name: _text(value) for name, value in zip(fields, row, strict=True) if value is not None}
                    for identity, row in rows}
        return {identity: {_text(k): _text(v) for k, v in raw.items()} for identity, raw in rows}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def presence(svc: Services) -> Presence:
    """The process's presence on its Redis, built once (registering the Lua scripts hashes them)."""
    found = svc.extensions.get("presence")
    if found is None:
        found = svc.extensions["presence"] = Presence(svc.redis)
    return found
