"""One Redis subscription per web process, fanned out to every live page the process holds.

Agent pages get their screen pops (with the id of the log entry, to resume from) and their presence; boards get
each agent's changes and snapshots (voice.streams.boards). Nothing here holds a thread: a stream is a queue of
frames on the event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from concurrent.futures import Executor

from redis.asyncio import Redis
from redis.exceptions import RedisError

from directo.core.services import Services
from routing.events import PREFIX, agent_channel, agent_log
from routing.presence import agent_key
from voice.agent_events import shown_state
from voice.streams import sse
from voice.streams.boards import Boards, BoardSource
from voice.streams.seats import Seats
from voice.streams.stream import RECONNECT, RESTART, SUPERSEDED, Out, Stream, event_order

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 15.0
# Streams end now and then (spread by a tenth either way) so pages rebalance over web processes after a deploy.
LIFETIME_SECONDS = 300.0
# How long the browser waits before its own reconnect if a connection drops (the page backs off on top of it).
RETRY_MS = 2000
# The hub's clock: boards' gathered changes go out this often.
TICK_SECONDS = 0.2


class Hub:
    """A web process's open pages by person, the one subscription that feeds them, and the clock that keeps them."""

    def __init__(self, svc: Services, executor: Executor, board: BoardSource, prefix: str = PREFIX) -> None:
        self.svc = svc
        self.prefix = prefix
        self.channels = agent_channel("", prefix)
        self.people: dict[str, set[Stream]] = {}
        self.boards = Boards(svc, executor, board)
        self.closing = False
        self._redis: Redis | None = None
        self._seats: Seats | None = None
        self._subscribed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def redis(self) -> Redis:
        assert self._redis is not None, "the hub is not started"
        return self._redis

    @property
    def seats(self) -> Seats:
        assert self._seats is not None, "the hub is not started"
        return self._seats

    def start(self) -> None:
        """Subscribe (in the background, retrying while Redis is away); safe to call again."""
        if self._tasks or self.closing:
            return
        self._redis = self.svc.async_redis()
        self._seats = Seats(self._redis, self.svc.config.streams_per_person, stale_seconds=3 * HEARTBEAT_SECONDS,
                            prefix=self.prefix)
        self._tasks = [asyncio.create_task(self._listen()), asyncio.create_task(self._tick())]

    async def ready(self, timeout: float) -> bool:
        """Whether the subscription is live, so a page opened now misses nothing."""
        try:
            await asyncio.wait_for(self._subscribed.wait(), timeout)
        except TimeoutError:
            return False
        return not self.closing

    def stop_streams(self) -> None:
        """The server is stopping: every page is told to come back shortly (elsewhere, or to the next process)."""
        self.closing = True
        for stream in self._all():
            stream.end(RESTART)

    async def close(self) -> None:
        self.stop_streams()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._redis is not None:
            await self._redis.aclose()

    # --- streams ----------------------------------------------------------------------------------------

    def open(self, person: str, seat: str, *, board: bool, lifetime: float) -> Stream:
        stream = Stream(person, seat, board, time.monotonic() + lifetime * random.uniform(0.9, 1.1))
        self.people.setdefault(person, set()).add(stream)
        if board:
            self.boards.streams.add(stream)
        return stream

    def close_stream(self, stream: Stream) -> None:
        stream.end(b"")
        held = self.people.get(stream.person)
        if held is not None:
            held.discard(stream)
            if not held:
                del self.people[stream.person]
        self.boards.streams.discard(stream)

    def _all(self) -> list[Stream]:
        return [stream for held in self.people.values() for stream in held]

    async def agent_opening(self, stream: Stream, after: str | None) -> bytes:
        """For a page coming back, every logged event after the last one it had; then their presence now.

        The replay comes first, so the page knows which call it is showing when it reads where things stand.
        """
        frames = [sse.retry(RETRY_MS)]
        if after:
            ms, seq = event_order(after)
            entries = await self.redis.xrange(agent_log(stream.person, self.prefix), min=f"{ms}-{seq + 1}")
            for entry_id, fields in entries:
                event_id = entry_id.decode()
                stream.fresh(Out("event", event_order(event_id), b""))
                frames.append(sse.frame(fields[b"event"].decode(), event_id=event_id))
        raw = await self.redis.hgetall(agent_key(stream.person, self.prefix))
        state = shown_state({key.decode(): value.decode() for key, value in raw.items()})
        stream.fresh(Out("state", (state["v"], 0), b""))
        frames.append(sse.frame(state, event="state"))
        return b"".join(frames)

    async def board_opening(self, stream: Stream) -> bytes:
        return sse.retry(RETRY_MS) + await self.boards.opening(stream)

    # --- what Redis says --------------------------------------------------------------------------------

    async def _listen(self) -> None:
        delay = 0.2
        while not self.closing:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(self.channels + "*")
                self._subscribed.set()
                delay = 0.2
                while not self.closing:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None and message["type"] == "pmessage":
                        self._dispatch(message["channel"].decode(), message["data"])
            except (RedisError, OSError) as error:
                logger.warning("page streams lost their Redis subscription (%s); retrying", error)
            finally:
                self._subscribed.clear()
                await pubsub.aclose()
            # Whatever was published meanwhile went unheard: pages start over, and resume from their logs.
            for stream in self._all():
                stream.end(RECONNECT)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _dispatch(self, channel: str, data: bytes) -> None:
        person = channel[len(self.channels):]
        try:
            message = json.loads(data)
        except ValueError:
            logger.warning("unreadable event for %s", person)
            return
        streams = self.people.get(person, ())
        if "event" in message:
            event = message["event"]
            out = Out("event", event_order(message["id"]), sse.frame(event, event_id=message["id"]))
            for stream in streams:
                if not stream.board:
                    stream.push(out)
            if event.get("type") == "call-reserved":
                self.boards.change(person, {"call": event.get("call_sid"),
                                            "with": event.get("callerName") or event.get("callerNumber")})
        elif "state" in message:
            state = message["state"]
            shown = shown_state(state)
            out = Out("state", (shown["v"], 0), sse.frame(shown, event="state"))
            for stream in streams:
                if not stream.board:
                    stream.push(out)
            self.boards.change(person, {"status": state["status"], "call": state["call"] or None,
                                        "since": float(state["since"] or 0) or None,
                                        "until": float(state["until"] or 0) or None, "v": shown["v"]})
        elif "close" in message:
            closing = set(message["close"])
            for stream in list(streams):
                if stream.seat in closing:
                    stream.end(SUPERSEDED)

    # --- time -------------------------------------------------------------------------------------------

    async def _tick(self) -> None:
        beat = time.monotonic()
        while True:
            await asyncio.sleep(TICK_SECONDS)
            try:
                beat = await self._every_tick(beat)
            except Exception:  # the clock of every page must not stop for one bad turn
                logger.exception("page streams' tick failed")

    async def _every_tick(self, beat: float) -> float:
        """Flush the boards' gathered changes, refresh their snapshot, end streams past their lifetime, and beat."""
        now = time.monotonic()
        self.boards.tick(now)
        for stream in self._all():
            if stream.ends_at <= now:
                stream.end(RECONNECT)
        if now - beat >= HEARTBEAT_SECONDS:
            beat = now
            await self._heartbeat()
        return beat

    async def _heartbeat(self) -> None:
        streams = self._all()
        for stream in streams:
            stream.push(Out("plain", (0, 0), sse.HEARTBEAT))
        try:
            await self.seats.keep([(stream.person, stream.seat) for stream in streams if not stream.ended])
        except (RedisError, OSError) as error:
            logger.warning("could not vouch for open pages' seats: %s", error)
