"""The web process as users run it (`directo run`, the Procfile): Twilio's webhooks, the pages and the live streams.

Each has capacity of its own, so that however many pages are open a webhook never waits behind them:
- live streams (agent pages, boards) run on the event loop, fed by one Redis subscription per process; an open
  page is a queue of frames, not a thread;
- Twilio's requests (`/voice/*`, the `/media/*` it plays, `/health`) run on a thread pool that nothing else uses;
- every other page runs on a pool of its own, so a slow export cannot take a webhook's thread either;
- streams check who opens them and build the board's snapshot on two threads of their own, and only read the
  database, so they never take SQLite's write lock from a webhook.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from a2wsgi import WSGIMiddleware
from flask import Flask

from directo.core.config import Config
from voice import create_app
from voice.auth import active_person
from voice.streams import AGENT_EVENTS, BOARD_EVENTS
from voice.streams.boards import BoardSource
from voice.streams.endpoint import Feed, Receive, StreamEndpoint
from voice.streams.hub import Hub
from voice.streams.sse import Send
from voice.supervisor import board

# Threads per web process. Webhooks: more than the two cores can keep busy, so a burst queues on the CPU, not for
# a thread. Pages: a person clicks now and then. Streams: only their opening check and the board's snapshot.
# Together they stay within the database pool (PostgreSQL: 30 connections per process).
CALL_THREADS = 20
PAGE_THREADS = 8
STREAM_THREADS = 2
CALL_PATHS = ("/voice/", "/media/", "/health")


class WebApp:
    """An ASGI app routing each request to the capacity kept for it."""

    def __init__(self, flask_app: Flask) -> None:
        self.flask = flask_app
        services = flask_app.extensions["directo"]
        self.calls = WSGIMiddleware(flask_app, workers=CALL_THREADS)
        self.pages = WSGIMiddleware(flask_app, workers=PAGE_THREADS)
        executor = ThreadPoolExecutor(STREAM_THREADS, thread_name_prefix="streams")
        self.executors = (self.calls.executor, self.pages.executor, executor)
        self.hub = Hub(services, executor, BoardSource(board.who_is_on_what, board.todays_figures))
        feeds = {AGENT_EVENTS: Feed(lambda: active_person(supervisor=False), board=False),
                 BOARD_EVENTS: Feed(lambda: active_person(supervisor=True), board=True)}
        self.streams = StreamEndpoint(flask_app, self.hub, feeds, executor)
        self._loop: asyncio.AbstractEventLoop | None = None

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] != "http":
            await send({"type": "websocket.close", "code": 1000})
        elif scope["path"] in self.streams.feeds:
            self._loop = asyncio.get_running_loop()
            await self.streams(scope, receive, send)
        elif scope["path"].startswith(CALL_PATHS):
            await self.calls(scope, receive, send)  # type: ignore[arg-type]
        else:
            await self.pages(scope, receive, send)  # type: ignore[arg-type]

    def stop_streams(self) -> None:
        """The server was asked to stop (a signal handler calls this): tell every open page to come back shortly."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.hub.stop_streams)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._loop = asyncio.get_running_loop()
                self.hub.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.hub.close()
                for executor in self.executors:
                    executor.shutdown(wait=False)
                await send({"type": "lifespan.shutdown.complete"})
                return


def create_web_app(config: Config | None = None) -> WebApp:
    """Build the web process's app from `config`, or from the environment when none is given."""
    return WebApp(create_app(config))
