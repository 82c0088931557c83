"""A live page's stream as ASGI: who asks (Flask's own session and checks), a seat, then frames until it ends."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from flask import Flask
from redis.exceptions import RedisError
from werkzeug.exceptions import HTTPException
from werkzeug.test import EnvironBuilder

from voice.streams import sse
from voice.streams.hub import LIFETIME_SECONDS, Hub
from voice.streams.stream import Stream

logger = logging.getLogger(__name__)

Receive = Callable[[], Awaitable[dict[str, Any]]]
# How long a page opened while the process is (re)subscribing waits before it is told to retry.
READY_SECONDS = 2.0


@dataclass(frozen=True)
class Feed:
    """One kind of stream: who may open it (run in a request context; aborts when refused) and what it carries."""

    person: Callable[[], str]
    board: bool


class StreamEndpoint:
    def __init__(self, flask_app: Flask, hub: Hub, feeds: dict[str, Feed], executor: Executor) -> None:
        self.flask = flask_app
        self.hub = hub
        self.feeds = feeds
        self.executor = executor

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: sse.Send) -> None:
        feed = self.feeds[scope["path"]]
        if scope["method"] != "GET":
            await sse.refuse(send, 405, "live updates are read with GET")
            return
        try:
            person = await asyncio.get_running_loop().run_in_executor(self.executor, self._person, feed, scope)
        except HTTPException as refused:
            await sse.refuse(send, refused.code or 403, refused.description or "refused")
            return
        except Exception:
            logger.exception("could not check who opened %s", scope["path"])
            await sse.refuse(send, 503, "live updates are unavailable for a moment")
            return
        self.hub.start()
        if not await self.hub.ready(READY_SECONDS):
            logger.warning("live page for %s refused: not subscribed to Redis", person)
            await sse.refuse(send, 503, "live updates are unavailable for a moment (Redis)")
            return
        try:
            seat = await self.hub.seats.take(person)
        except (RedisError, OSError) as error:
            logger.warning("could not open a live page for %s: %s", person, error)
            await sse.refuse(send, 503, "live updates are unavailable for a moment (Redis)")
            return
        lifetime = float(self.flask.config.get("STREAM_SECONDS", LIFETIME_SECONDS))
        stream = self.hub.open(person, seat, board=feed.board, lifetime=lifetime)
        watcher = asyncio.create_task(_until_disconnected(receive, stream))
        try:
            try:
                opening = await (self.hub.board_opening(stream) if feed.board
                                 else self.hub.agent_opening(stream, _last_event_id(scope)))
            except Exception:
                logger.exception("could not open a live page for %s", person)
                await sse.refuse(send, 503, "live updates are unavailable for a moment")
                return
            await sse.start(send)
            await sse.body(send, opening)
            await _pump(stream, send)
        finally:
            watcher.cancel()
            self.hub.close_stream(stream)
            try:
                await self.hub.seats.leave(person, seat)
            except (RedisError, OSError):
                pass  # the seat lapses by itself

    def _person(self, feed: Feed, scope: dict[str, Any]) -> str:
        """Ask the Flask app in a request context built from the stream's request, as any of its pages would."""
        headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in scope["headers"]]
        environ = EnvironBuilder(path=scope["path"], headers=headers).get_environ()
        with self.flask.request_context(environ):
            return feed.person()


async def _until_disconnected(receive: Receive, stream: Stream) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    stream.end(b"")


async def _pump(stream: Stream, send: sse.Send) -> None:
    """Send what is queued, everything waiting at once in one write, until the stream ends."""
    while True:
        chunk: list[bytes] = []
        out = await stream.queue.get()
        while out is not None:
            if stream.fresh(out):
                chunk.append(out.data)
            if stream.queue.empty():
                break
            out = stream.queue.get_nowait()
        if chunk:
            await sse.body(send, b"".join(chunk))
        if out is None:
            break
    await sse.body(send, stream.final, more=False)


def _last_event_id(scope: dict[str, Any]) -> str | None:
    """The browser's Last-Event-ID on its own reconnects; the page's `last` when it opens a new stream itself."""
    for name, value in scope["headers"]:
        if name == b"last-event-id":
            return value.decode("latin-1") or None
    return (parse_qs(scope.get("query_string", b"").decode("latin-1")).get("last") or [None])[0]
