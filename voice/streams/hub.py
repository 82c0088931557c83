"""One Redis subscription per web process, fanned out to every live page the process holds.

Agent pages get their screen pops (with the id of the log entry, to resume from) and their presence; boards get
each agent's changes, gathered for TICK_SECONDS, and a snapshot computed once per process for all of them every
SNAPSHOT_SECONDS (today's figures, the costly part, every FIGURES_SECONDS). Nothing here holds a thread: a stream
is a queue of frames on the event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from redis.asyncio import Redis
from redis.exceptions import RedisError

from directo.core.services import Services
from routing.events import PREFIX, agent_channel, agent_log
from routing.presence import agent_key
from voice.agent_events import shown_state
from voice.streams import sse
from voice.streams.seats import Seats

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 15.0
# Streams end now and then (spread by a tenth either way) so pages rebalance over web processes after a deploy.
LIFETIME_SECONDS = 300.0
# How long the browser waits before its own reconnect if a connection drops (the page backs off on top of it).
RETRY_MS = 2000
SNAPSHOT_SECONDS = 10.0
FIGURES_SECONDS = 30.0
# Frames waiting for one slow page; past this it is told to reconnect, and resumes from its log.
QUEUE_FRAMES = 256
# The hub's clock: boards' gathered changes go out this often.
TICK_SECONDS = 0.2

RECONNECT = sse.frame({"after_ms": 0}, event="reconnect")
# The server is stopping: pages come back a moment later, spread out, to whichever process is up.
RESTART = sse.frame({"after_ms": 3000}, event="reconnect")
SUPERSEDED = sse.frame({}, event="superseded")


class Out(NamedTuple):
    """A frame on its way: events, states and snapshots carry their order, so a page never gets one twice or
    one older than it has (frames queue from the moment a stream opens, while its first frames are read)."""

    kind: str  # "event" (order: its log entry), "state" (Redis's clock), "board" (snapshot number), or "plain"
    order: tuple[int, int]
    data: bytes


# Kinds that are never sent twice; a state may be (the same state, read and pushed), but never an older one.
_ONCE = ("event", "board")


@dataclass(eq=False)
class Stream:
    """One open page: what it has been sent, and the frames queued for it."""

    person: str
    seat: str
    board: bool
    ends_at: float
    queue: asyncio.Queue[Out | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_FRAMES))
    sent: dict[str, tuple[int, int]] = field(default_factory=dict)  # the newest of each kind it was sent
    final: bytes = b""
    ended: bool = False

    def push(self, out: Out) -> None:
        if self.ended:
            return
        try:
            self.queue.put_nowait(out)
        except asyncio.QueueFull:
            self.end(RECONNECT)

    def end(self, final: bytes) -> None:
        """Close after `final`; whatever is still queued is dropped (the page resumes from its log)."""
        if self.ended:
            return
        self.ended, self.final = True, final
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(None)

    def fresh(self, out: Out) -> bool:
        """Whether `out` is newer than what this page was sent of its kind, noting it as sent."""
        if out.kind == "plain":
            return True
        newest = self.sent.get(out.kind)
        if newest is not None and (out.order <= newest if out.kind in _ONCE else out.order < newest):
            return False
        self.sent[out.kind] = out.order
        return True


@dataclass(frozen=True)
class BoardSource:
    """What a live board shows (voice.supervisor.board): who is on what, and today's figures."""

    rows: Callable[[Services], dict[str, Any]]
    figures: Callable[[Services], dict[str, Any]]


def event_order(event_id: str) -> tuple[int, int]:
    """A log entry id (`<ms>-<seq>`) as something to compare; anything else sorts first."""
    ms, _, seq = event_id.partition("-")
    return (int(ms), int(seq or 0)) if ms.isdigit() and (seq or "0").isdigit() else (0, 0)


class Hub:
    """A web process's open pages by person, the one subscription that feeds them, and the clock that keeps them."""

    def __init__(self, svc: Services, executor: Executor, board: BoardSource, prefix: str = PREFIX) -> None:
        self.svc = svc
        self.executor = executor
        self.board = board
        self.prefix = prefix
        self.channels = agent_channel("", prefix)
        self.people: dict[str, set[Stream]] = {}
        self.boards: set[Stream] = set()
        self.changes: dict[str, dict[str, Any]] = {}  # for the boards' next flush
        self.since_snapshot: dict[str, dict[str, Any]] = {}  # for a board that opens before the next snapshot
        self.snapshot: Out | None = None
        self.snapshot_at = 0.0
        self._board: dict[str, Any] | None = None
        self._figures: dict[str, Any] | None = None
        self._figures_at = 0.0
        self._snapshot_task: asyncio.Task[None] | None = None
        self.closing = False
        self._redis: Redis | None = None
        self._seats: Seats | None = None
        self._subscribed = asyncio.Event()
        self._snapshot_lock = asyncio.Lock()
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
            self.boards.add(stream)
        return stream

    def close_stream(self, stream: Stream) -> None:
        stream.end(b"")
        held = self.people.get(stream.person)
        if held is not None:
            held.discard(stream)
            if not held:
                del self.people[stream.person]
        self.boards.discard(stream)

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
        """The latest snapshot, and the changes heard since it was taken (each row carries its version)."""
        snapshot = await self._board_frame()
        stream.fresh(snapshot)
        since = sse.frame(list(self.since_snapshot.values()), event="agents") if self.since_snapshot else b""
        return sse.retry(RETRY_MS) + snapshot.data + since

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
                self._change(person, {"call": event.get("call_sid"),
                                      "with": event.get("callerName") or event.get("callerNumber")})
        elif "state" in message:
            state = message["state"]
            shown = shown_state(state)
            out = Out("state", (shown["v"], 0), sse.frame(shown, event="state"))
            for stream in streams:
                if not stream.board:
                    stream.push(out)
            self._change(person, {"status": state["status"], "call": state["call"] or None,
                                  "since": float(state["since"] or 0) or None,
                                  "until": float(state["until"] or 0) or None, "v": shown["v"]})
        elif "close" in message:
            closing = set(message["close"])
            for stream in list(streams):
                if stream.seat in closing:
                    stream.end(SUPERSEDED)

    def _change(self, person: str, fields: dict[str, Any]) -> None:
        """Gather an agent's change for the boards; a new call forgets whom the last one was with."""
        if self.snapshot is None:
            return  # no board was ever opened here
        for gathered in (self.changes, self.since_snapshot):
            change = gathered.setdefault(person, {"identity": person})
            if "with" not in fields and fields.get("call", change.get("call")) != change.get("call"):
                change.pop("with", None)
            change.update(fields)

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
        if self.changes:
            frame = sse.frame(list(self.changes.values()), event="agents")
            self.changes = {}
            for board in self.boards:
                board.push(Out("plain", (0, 0), frame))
        if self.boards and now - self.snapshot_at >= SNAPSHOT_SECONDS and not self._snapshot_lock.locked():
            self._snapshot_task = asyncio.create_task(self._refresh_snapshot())
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

    def _read_board(self) -> dict[str, Any]:
        """Off the event loop, one snapshot at a time: the rows afresh, the figures when they are due."""
        if self._figures is None or time.monotonic() - self._figures_at >= FIGURES_SECONDS:
            self._figures, self._figures_at = self.board.figures(self.svc), time.monotonic()
        return {**self.board.rows(self.svc), "figures": self._figures}

    async def _board_frame(self) -> Out:
        if self.snapshot is None or time.monotonic() - self.snapshot_at >= SNAPSHOT_SECONDS:
            await self._refresh_snapshot()
        assert self.snapshot is not None
        return self.snapshot

    async def _refresh_snapshot(self) -> None:
        """One snapshot for every board of this process, computed off the event loop, pushed when it changed."""
        asked = time.monotonic()
        async with self._snapshot_lock:
            if self.snapshot is not None and self.snapshot_at >= asked:
                return  # computed while we waited
            loop = asyncio.get_running_loop()
            self.snapshot_at = time.monotonic()  # a failing database is asked again next period, not every tick
            self.since_snapshot = {}
            try:
                board = await loop.run_in_executor(self.executor, self._read_board)
            except Exception:
                logger.exception("live board snapshot failed")
                if self.snapshot is None:
                    raise
                return
            number = self.snapshot.order[0] + 1 if self.snapshot else 1
            self.snapshot = Out("board", (number, 0), sse.frame({**board, "server_time": time.time()}, event="board"))
            if board != self._board:
                self._board = board
                for stream in self.boards:
                    stream.push(self.snapshot)
