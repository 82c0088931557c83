"""Live pages held open as browsers hold them: many agents' and supervisors' event streams at once, for load.

One event loop in a thread of its own holds every stream (aiohttp), so the code driving calls stays plain and
synchronous; each page keeps every frame it received and when, to be looked at afterwards.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp
from flask import Flask

# The server's public interface, as a browser meets it (the simulator knows it as Twilio knows /voice/incoming).
AGENT_EVENTS = "/agent/events"
BOARD_EVENTS = "/supervisor/board/events"
SESSION_COOKIE = "session"
# What a login keeps in the session (voice.auth): who, and the version of their sessions it was opened under (the
# person's role is read from the record on every request); the stream tests open pages with these cookies.
IDENTITY_KEY, VERSION_KEY = "agent_identity", "session_version"


def session_cookie(secret_key: str, identity: str, version: int = 0) -> str:
    """The session cookie logging in gives (signed with the server's SECRET_KEY): a thousand pages, no passwords.
    `version` is the person's session version on record (0 until they first log out or change password)."""
    app = Flask(__name__)
    app.secret_key = secret_key
    serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
    return serializer.dumps({IDENTITY_KEY: identity, VERSION_KEY: version, "_permanent": True})


@dataclass(frozen=True)
class Frame:
    event: str
    data: str
    event_id: str | None
    at: float  # time.time() when it arrived


@dataclass(eq=False)
class Page:
    """One open stream: what it was answered, every frame, and the comments (heartbeats) it got."""

    person: str
    board: bool
    cookie: str
    last: str | None = None  # the last event id the page had, as the agent page sends it when it comes back
    status: int | None = None
    error: str = ""
    frames: list[Frame] = field(default_factory=list)
    heartbeats: int = 0
    ended: bool = False

    @property
    def path(self) -> str:
        path = BOARD_EVENTS if self.board else AGENT_EVENTS
        return f"{path}?{urlencode({'last': self.last})}" if self.last else path

    def named(self, event: str) -> list[Frame]:
        return [frame for frame in self.frames if frame.event == event]


class Crowd:
    """Pages opened against one server and held until closed, all on one event loop in a background thread."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.pages: list[Page] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._session: aiohttp.ClientSession = self._call(self._new_session())
        self._tasks: list[asyncio.Future[Any]] = []

    def __enter__(self) -> Crowd:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self, pages: Iterable[Page]) -> list[Page]:
        opened = list(pages)
        for page in opened:
            self.pages.append(page)
            self._tasks.append(asyncio.run_coroutine_threadsafe(self._hold(page), self._loop))
        return opened

    def wait(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"pages: {what} did not happen within {timeout} s")
            time.sleep(0.02)

    def wait_open(self, pages: list[Page], timeout: float = 60.0) -> None:
        """Until each page was answered and got its first frame (it is subscribed by then)."""
        self.wait(lambda: all(p.frames or p.ended for p in pages), timeout, f"{len(pages)} pages opening")

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._call(self._session.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def _call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=30)

    async def _new_session(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=True),
                                     timeout=aiohttp.ClientTimeout(total=None, sock_connect=30))

    async def _hold(self, page: Page) -> None:
        headers = {"Cookie": f"{SESSION_COOKIE}={page.cookie}", "Accept": "text/event-stream"}
        try:
            async with self._session.get(self.base_url + page.path, headers=headers) as response:
                page.status = response.status
                if response.status != 200:
                    page.error = await response.text()
                    return
                fields: dict[str, str] = {}
                async for raw in response.content:
                    line = raw.decode().rstrip("\r\n")
                    if not line:
                        if "data" in fields:
                            page.frames.append(Frame(fields.get("event", "message"), fields["data"],
                                                     fields.get("id"), time.time()))
                        fields = {}
                    elif line.startswith(":"):
                        page.heartbeats += 1
                    else:
                        name, _, value = line.partition(":")
                        fields[name] = value.removeprefix(" ")
        except aiohttp.ClientError as error:
            page.error = str(error)
        finally:
            page.ended = True
