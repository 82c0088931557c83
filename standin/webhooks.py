"""Requests the stand-in makes to the app, signed and encoded exactly as Twilio makes them."""

from __future__ import annotations

import logging
import queue
import threading
import uuid
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qs, parse_qsl, urldefrag, urlencode, urljoin, urlsplit, urlunsplit

import requests
from twilio.request_validator import RequestValidator

from .balancer import Balancer
from .faults import Faults

log = logging.getLogger(__name__)

USER_AGENT = "TwilioProxy/1.1"
XML_TYPES = ("text/xml", "application/xml", "text/html")


def _retry_count(fragment: str) -> int:
    """Twilio's `rc` connection override (retries on connection failure), 1 when absent, at most 5."""
    value = parse_qs(fragment).get("rc", ["1"])[0]
    return max(0, min(5, int(value))) if value.isdigit() else 1


def resolve(base_url: str, url: str) -> str:
    """Resolve a URL from TwiML against the document that contained it, as Twilio does."""
    return urljoin(base_url, url.strip())


def with_query(url: str, params: Mapping[str, str]) -> str:
    """Append parameters to a URL's query string, keeping the ones it already has."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


@dataclass
class WebhookResult:
    """What came back from one webhook: a status and body, or the Twilio error for a failure."""

    url: str
    method: str
    params: dict[str, str]
    status: int | None = None
    body: bytes = b""
    content_type: str = ""
    error_code: int | None = None
    error: str | None = None
    served_by: str | None = None  # the URL that answered, behind a load balancer

    @property
    def ok(self) -> bool:
        return self.error_code is None


@dataclass
class WebhookSender:
    """Sends signed webhooks; one HTTP session per thread because sessions are not thread-safe."""

    auth_token: str
    timeout: float = 15.0
    faults: Faults | None = None
    balancer: Balancer = field(default_factory=Balancer)
    _local: threading.local = field(default_factory=threading.local, repr=False)

    def signature(self, url: str, params: Mapping[str, str]) -> str:
        return RequestValidator(self.auth_token).compute_signature(url, dict(params))

    def send(self, url: str, method: str, params: Mapping[str, str]) -> WebhookResult:
        """Make the request; HTTP failures become Twilio errors 11200 (bad answer) or 11205 (no answer).

        Like Twilio, a connection that fails (refused, reset, closed without an answer) is tried again: once by
        default, or as often as the URL's `#rc=N` connection override says (0 to 5). Behind a load balancer, a try
        fails only when no backend could be reached: the request is signed over the public URL all the same.
        """
        url, fragment = urldefrag(url)
        retries = _retry_count(fragment)
        method = method.upper() if method and method.upper() in ("GET", "POST") else "POST"
        result = WebhookResult(url=url, method=method, params=dict(params))
        if self.faults is not None and self.faults.take_unreachable(urlsplit(url).path):
            result.error_code, result.error = 11205, "HTTP connection failure: the app was unreachable (fault)"
            log.info("webhook %s: unreachable (injected fault)", url)
            return result
        headers = {
            "User-Agent": USER_AGENT,
            "I-Twilio-Idempotency-Token": str(uuid.uuid4()),
            "Accept": "*/*",
        }
        if method == "GET":
            target, body = with_query(url, params), None
            headers["X-Twilio-Signature"] = self.signature(target, {})
        else:
            target, body = url, dict(params)
            headers["X-Twilio-Signature"] = self.signature(url, params)
        for attempt in range(retries + 1):
            try:
                response = self._balanced(method, target, body, headers)
                break
            except requests.ConnectionError as exc:
                self._local.session = None  # a fresh connection for the retry
                result.error_code, result.error = 11205, f"HTTP connection failure: {exc}"
                log.info("webhook %s: connection failed (try %s of %s)", url, attempt + 1, retries + 1)
            except requests.RequestException as exc:
                result.error_code, result.error = 11205, f"HTTP connection failure: {exc}"
                return result
        else:
            return result
        result.error_code, result.error = None, None
        result.served_by = response.url
        result.status = response.status_code
        result.body = response.content
        result.content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if not 200 <= response.status_code < 300:
            result.error_code, result.error = 11200, f"HTTP retrieval failure: status {response.status_code}"
        return result

    def _balanced(self, method: str, target: str, body: dict[str, str] | None,
                  headers: dict[str, str]) -> requests.Response:
        """The first backend in turn that takes the request; the last connection failure when none does."""
        failure: requests.ConnectionError | None = None
        for candidate in self.balancer.targets(target):
            try:
                return self._session().request(method, candidate, data=body, headers=headers, timeout=self.timeout)
            except requests.ConnectionError as exc:
                self._local.session = None
                failure = exc
        assert failure is not None
        raise failure

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session


@dataclass
class _Job:
    url: str
    method: str
    params: dict[str, str]
    on_done: Callable[[WebhookResult], None]


class CallbackQueue:
    """Delivers fire-and-forget callbacks off the simulation's clock, in order for each call or message."""

    def __init__(self, sender: WebhookSender, workers: int = 4) -> None:
        self._sender = sender
        self._queues: list[queue.Queue[_Job | None]] = [queue.Queue() for _ in range(workers)]
        self._pending = 0
        self._idle = threading.Condition()
        self._threads = [
            threading.Thread(target=self._work, args=(q,), name=f"standin-callbacks-{i}", daemon=True)
            for i, q in enumerate(self._queues)
        ]
        for thread in self._threads:
            thread.start()

    def submit(
        self,
        key: str,
        url: str,
        method: str,
        params: Mapping[str, str],
        on_done: Callable[[WebhookResult], None],
    ) -> None:
        """Queue a callback; callbacks with the same key are delivered one after another."""
        with self._idle:
            self._pending += 1
        index = zlib.crc32(key.encode()) % len(self._queues)
        self._queues[index].put(_Job(url, method, dict(params), on_done))

    def flush(self, timeout: float) -> bool:
        """Wait until every queued callback has been delivered (or has failed)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def close(self, timeout: float = 2.0) -> None:
        self.flush(timeout)
        for q in self._queues:
            q.put(None)
        for thread in self._threads:
            thread.join(timeout)

    def _work(self, jobs: queue.Queue[_Job | None]) -> None:
        while (job := jobs.get()) is not None:
            try:
                result = self._sender.send(job.url, job.method, job.params)
                if not result.ok:
                    log.info("status callback to %s failed: %s", job.url, result.error)
                job.on_done(result)
            except Exception:
                log.exception("status callback to %s crashed", job.url)
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()
