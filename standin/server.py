"""StandIn: Twilio's REST API and phone network on 127.0.0.1, for tests and `directo simulate`."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from types import TracebackType

from twilio.rest import Client
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from .api import RestApi
from .balancer import Balancer
from .clock import Scheduler
from .faults import Faults
from .model import Message, Recording
from .network import Network, Sids
from .webhooks import CallbackQueue, WebhookSender

log = logging.getLogger(__name__)

DEFAULT_ACCOUNT_SID = "AC" + "0" * 32


class _QuietHandler(WSGIRequestHandler):
    """The stand-in's own request lines would drown the app's logs; its events record what happened."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class StandIn:
    """A local Twilio: start it (or use it as a context manager), point the real client at `base_url`."""

    def __init__(
        self,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        auth_token: str = "secret",
        *,
        time_scale: float = 0.02,
        seed: int | None = None,
        webhook_auth_token: str | None = None,
        webhook_timeout: float = 15.0,
        media_auth: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
        epoch: datetime | None = None,
        upstreams: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        """`upstreams`: public base URL -> the web processes behind it; webhooks are spread over them."""
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.webhook_auth_token = webhook_auth_token or auth_token
        self.faults = Faults(seed)
        self.scheduler = Scheduler(time_scale, epoch)
        sender = WebhookSender(self.webhook_auth_token, webhook_timeout, self.faults, Balancer(upstreams))
        self._callbacks = CallbackQueue(sender)
        self.network = Network(
            account_sid=account_sid,
            scheduler=self.scheduler,
            callbacks=self._callbacks,
            faults=self.faults,
            sids=Sids(seed),
            fetcher=sender.send,
        )
        self.api = RestApi(self.network, auth_token, media_auth)
        self._server: BaseWSGIServer = make_server(
            host, port, self.api.app, threaded=True, request_handler=_QuietHandler
        )
        self.base_url = f"http://{host}:{self._server.server_port}"
        self.network.base_url = self.base_url
        self._thread: threading.Thread | None = None

    def start(self) -> StandIn:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="standin-api", daemon=True
            )
            self._thread.start()
            log.info("Twilio stand-in listening on %s", self.base_url)
        return self

    def stop(self) -> None:
        """Hang everything up: the clock stops, pending callbacks get a moment, the API closes."""
        self.scheduler.close()
        self._callbacks.close()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> StandIn:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def client(self) -> Client:
        """The real twilio client, talking to this stand-in instead of api.twilio.com."""
        client = Client(self.account_sid, self.auth_token)
        client.api.base_url = self.base_url
        return client

    @property
    def recordings(self) -> list[Recording]:
        return self.network.recordings

    @property
    def messages(self) -> list[Message]:
        return self.network.messages

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait (real seconds) until every status callback queued so far has been delivered."""
        return self._callbacks.flush(timeout)
