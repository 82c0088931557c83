"""gunicorn's worker for the web process: uvicorn, whose stop tells every open page to reconnect at once.

uvicorn stops by waiting for responses in progress to finish, and a live page's stream never finishes by
itself: without the word, `directo run` would wait out gunicorn's graceful timeout with pages open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import signal
import sys
from types import FrameType
from typing import Any

from gunicorn.arbiter import Arbiter
from uvicorn.server import Server
from uvicorn_worker import UvicornWorker

from voice.access_log import RedactMediaTokens
from voice.web import WebApp

# What a webhook or page still in progress gets once the streams are told to end.
GRACE_SECONDS = 3


class _Server(Server):
    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self.end_streams()

    def quit(self) -> None:
        """gunicorn's quick stop (SIGQUIT, on Ctrl-C): stop as on SIGTERM, with no signal to raise again after."""
        self.should_exit = True
        self.end_streams()

    def end_streams(self) -> None:
        if isinstance(self.config.app, WebApp):
            self.config.app.stop_streams()


class WebWorker(UvicornWorker):
    CONFIG_KWARGS = {**UvicornWorker.CONFIG_KWARGS, "timeout_graceful_shutdown": GRACE_SECONDS}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # points uvicorn's access log at gunicorn's handlers
        logging.getLogger("uvicorn.access").addFilter(RedactMediaTokens())

    def init_process(self) -> None:
        # Every open page is a connection: lift the soft limit on open files (often 1,024) to the hard one.
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != hard:
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        super().init_process()

    async def _serve(self) -> None:
        """As UvicornWorker's, with our server."""
        self.config.app = self.wsgi
        server = _Server(config=self.config)
        asyncio.get_running_loop().add_signal_handler(signal.SIGQUIT, server.quit)
        await server.serve(sockets=self.sockets)
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)
