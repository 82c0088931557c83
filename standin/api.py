"""Twilio's REST API (2010-04-01) for calls, messages and recordings, as a WSGI app over the network."""

from __future__ import annotations

import logging
import math
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlencode, urlsplit

from flask import Flask, Response, jsonify, request
from werkzeug.datastructures import MultiDict

from . import audio
from .model import CALL_EVENTS, RECORDING_EVENTS, Call, Callback, Message, Recording
from .network import API_VERSION, CallNotActive, Network, Sids
from .twiml import Document

log = logging.getLogger(__name__)

ENDPOINT = re.compile(r"^(\+[1-9]\d{7,14}|client:[^\s]+|sip:[^\s]+)$")
GSM7 = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà^{}\\[~]|€"
)
PAGE_PARAMS = {"PageSize", "Page", "PageToken"}

# The form and query parameters each endpoint acts on; all are parameters of Twilio's spec (checked by tests).
CALL_CREATE_PARAMS = {
    "To",
    "From",
    "Url",
    "Twiml",
    "Method",
    "FallbackUrl",
    "FallbackMethod",
    "StatusCallback",
    "StatusCallbackEvent",
    "StatusCallbackMethod",
    "Timeout",
    "TimeLimit",
    "Record",
    "RecordingChannels",
    "RecordingStatusCallback",
    "RecordingStatusCallbackMethod",
    "RecordingStatusCallbackEvent",
    "RecordingTrack",
}
CALL_UPDATE_PARAMS = {"Status", "Url", "Method", "Twiml"}
CALL_LIST_PARAMS = {"To", "From", "Status", "ParentCallSid"} | PAGE_PARAMS
CALL_RECORDING_CREATE_PARAMS = {
    "RecordingStatusCallback",
    "RecordingStatusCallbackEvent",
    "RecordingStatusCallbackMethod",
    "RecordingChannels",
    "RecordingTrack",
}
CALL_RECORDING_UPDATE_PARAMS = {"Status"}
MESSAGE_CREATE_PARAMS = {"To", "From", "MessagingServiceSid", "Body", "StatusCallback", "MediaUrl"}
MESSAGE_LIST_PARAMS = {"To", "From"} | PAGE_PARAMS
RECORDING_LIST_PARAMS = {"CallSid"} | PAGE_PARAMS
ACCEPTED_PARAMS: dict[tuple[str, str], set[str]] = {
    ("POST", "/Calls.json"): CALL_CREATE_PARAMS,
    ("GET", "/Calls.json"): CALL_LIST_PARAMS,
    ("POST", "/Calls/{Sid}.json"): CALL_UPDATE_PARAMS,
    ("POST", "/Calls/{CallSid}/Recordings.json"): CALL_RECORDING_CREATE_PARAMS,
    ("GET", "/Calls/{CallSid}/Recordings.json"): PAGE_PARAMS,
    ("POST", "/Calls/{CallSid}/Recordings/{Sid}.json"): CALL_RECORDING_UPDATE_PARAMS,
    ("POST", "/Messages.json"): MESSAGE_CREATE_PARAMS,
    ("GET", "/Messages.json"): MESSAGE_LIST_PARAMS,
    ("GET", "/Recordings.json"): RECORDING_LIST_PARAMS,
}


class TwilioError(Exception):
    """An error answered the way Twilio answers it: status plus {code, message, more_info, status}."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def response(self) -> Response:
        body = jsonify(
            code=self.code,
            message=self.message,
            more_info=f"https://www.twilio.com/docs/errors/{self.code}",
            status=self.status,
        )
        body.status_code = self.status
        if self.status == 401:
            body.headers["WWW-Authenticate"] = 'Basic realm="Twilio API"'
        return body


def formatted(number: str) -> str:
    """Twilio's display form: North American numbers as (415) 867-5309, others unchanged."""
    if re.fullmatch(r"\+1\d{10}", number):
        return f"({number[2:5]}) {number[5:8]}-{number[8:]}"
    return number


def segments(body: str) -> int:
    """SMS segments: 160/153 GSM-7 characters, or 70/67 UCS-2 ones."""
    single, multi = (160, 153) if set(body) <= GSM7 else (70, 67)
    return 1 if len(body) <= single else math.ceil(len(body) / multi)


class RestApi:
    """The REST API: routes, authentication, validation, and Twilio's JSON representations."""

    def __init__(self, network: Network, auth_token: str, media_auth: bool = True) -> None:
        self.network = network
        self.account_sid = network.account_sid
        self.auth_token = auth_token
        self.media_auth = media_auth
        # Requests answered per route ("GET /Calls/<sid>.json"), so tests can see how often the app asks.
        self.requests: Counter[str] = Counter()
        self.app = Flask("standin")
        self._routes()

    # -- plumbing ---------------------------------------------------------------------------------
    def _routes(self) -> None:
        prefix = f"/{API_VERSION}/Accounts/<account_sid>"
        rules: list[tuple[str, str, Callable[..., Any]]] = [
            ("/Calls.json", "POST", self.create_call),
            ("/Calls.json", "GET", self.list_calls),
            ("/Calls/<sid>.json", "GET", self.fetch_call),
            ("/Calls/<sid>.json", "POST", self.update_call),
            ("/Calls/<call_sid>/Recordings.json", "POST", self.create_call_recording),
            ("/Calls/<call_sid>/Recordings.json", "GET", self.list_call_recordings),
            ("/Calls/<call_sid>/Recordings/<sid>.json", "GET", self.fetch_call_recording),
            ("/Calls/<call_sid>/Recordings/<sid>.json", "POST", self.update_call_recording),
            ("/Messages.json", "POST", self.create_message),
            ("/Messages.json", "GET", self.list_messages),
            ("/Messages/<sid>.json", "GET", self.fetch_message),
            ("/Recordings.json", "GET", self.list_recordings),
            ("/Recordings/<name>", "GET", self.recording_resource),
            ("/Recordings/<name>", "DELETE", self.delete_recording),
        ]
        for path, method, view in rules:
            endpoint = f"{method} {path}"
            self.app.add_url_rule(prefix + path, endpoint, self._guard(view), methods=[method])
        self.app.register_error_handler(404, lambda _: self._not_found().response())
        self.app.register_error_handler(405, lambda _: TwilioError(405, 20004, "Method not allowed").response())

    def _guard(self, view: Callable[..., Any]) -> Callable[..., Any]:
        def guarded(account_sid: str, **kwargs: Any) -> Any:
            self.requests[request.url_rule.endpoint if request.url_rule else request.path] += 1
            try:
                media = view == self.recording_resource and not kwargs["name"].endswith(".json")
                if not media or self.media_auth:
                    self._authenticate()
                if account_sid != self.account_sid:
                    raise self._not_found()
                return view(**kwargs)
            except TwilioError as error:
                return error.response()

        guarded.__name__ = view.__name__
        return guarded

    def _authenticate(self) -> None:
        auth = request.authorization
        if auth is None or auth.username != self.account_sid or auth.password != self.auth_token:
            raise TwilioError(401, 20003, "Authenticate")

    def _not_found(self) -> TwilioError:
        return TwilioError(404, 20404, f"The requested resource {request.path} was not found")

    def _params(self, accepted: set[str]) -> MultiDict[str, str]:
        source = request.form if request.method == "POST" else request.args
        ignored = set(source) - accepted
        if ignored:
            log.debug("stand-in ignores parameters %s on %s", sorted(ignored), request.path)
        return MultiDict([(k, v) for k, v in source.items(multi=True) if k in accepted])

    def _uri(self, tail: str) -> str:
        return f"/{API_VERSION}/Accounts/{self.account_sid}{tail}"

    def _rfc(self, at: float | None) -> str | None:
        return None if at is None else self.network.rfc2822(at)

    def _page(self, key: str, items: list[dict[str, Any]], params: MultiDict[str, str]) -> Response:
        """Twilio's paging envelope; the client follows next_page_uri."""
        size = max(1, min(self._number(params.get("PageSize"), 50, "PageSize"), 1000))
        page = max(0, self._number(params.get("Page"), 0, "Page"))
        filters = [(k, v) for k, v in params.items(multi=True) if k not in PAGE_PARAMS]
        path = urlsplit(request.path).path

        def uri(number: int) -> str:
            return path + "?" + urlencode([*filters, ("PageSize", size), ("Page", number)])

        chunk = items[page * size : (page + 1) * size]
        more = (page + 1) * size < len(items)
        return jsonify(
            {
                key: chunk,
                "end": page * size + max(len(chunk) - 1, 0),
                "first_page_uri": uri(0),
                "next_page_uri": uri(page + 1) + f"&PageToken=PA{page + 1}" if more else None,
                "page": page,
                "page_size": size,
                "previous_page_uri": uri(page - 1) if page > 0 else None,
                "start": page * size,
                "uri": uri(page),
            }
        )

    @staticmethod
    def _events(values: Iterable[str], allowed: frozenset[str], default: str) -> frozenset[str]:
        """Event lists come repeated or space-separated; unknown names are dropped."""
        events = {e for value in values for e in value.replace(",", " ").split()} & allowed
        return frozenset(events or {default})

    @staticmethod
    def _method(value: str | None) -> str:
        method = (value or "POST").upper()
        if method not in ("GET", "POST"):
            raise TwilioError(400, 21207, f"Invalid method {value}")
        return method

    @staticmethod
    def _url(value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise TwilioError(400, 21205, f"Url is not a valid URL: {value}")
        return value

    @staticmethod
    def _number(value: str | None, default: int, name: str) -> int:
        try:
            return int(value) if value not in (None, "") else default
        except ValueError:
            raise TwilioError(400, 20001, f"Invalid {name}: {value}") from None

    # -- calls ------------------------------------------------------------------------------------
    def call_json(self, call: Call) -> dict[str, Any]:
        uri = self._uri(f"/Calls/{call.sid}")
        numbered = call.direction in ("inbound", "outbound-api")
        return {
            "sid": call.sid,
            "date_created": self._rfc(call.created_at),
            "date_updated": self._rfc(call.updated_at),
            "parent_call_sid": call.parent.sid if call.parent else None,
            "account_sid": call.account_sid,
            "to": call.to,
            "to_formatted": formatted(call.to),
            "from": call.from_,
            "from_formatted": formatted(call.from_),
            "phone_number_sid": Sids.for_number(call.to if call.direction == "inbound" else call.from_)
            if numbered
            else None,
            "status": call.status,
            "start_time": self._rfc(call.started_at),
            "end_time": self._rfc(call.ended_at),
            "duration": str(call.duration) if call.status == "completed" else None,
            "price": None,
            "price_unit": "USD",
            "direction": call.direction,
            "answered_by": None,
            "api_version": API_VERSION,
            "forwarded_from": call.forwarded_from,
            "group_sid": None,
            "caller_name": call.caller_name,
            "queue_time": "0",
            "trunk_sid": None,
            "uri": uri + ".json",
            "subresource_uris": {
                name: f"{uri}/{path}.json"
                for name, path in (
                    ("notifications", "Notifications"),
                    ("recordings", "Recordings"),
                    ("payments", "Payments"),
                    ("events", "Events"),
                    ("siprec", "Siprec"),
                    ("streams", "Streams"),
                    ("transcriptions", "Transcriptions"),
                    ("user_defined_message_subscriptions", "UserDefinedMessageSubscriptions"),
                    ("user_defined_messages", "UserDefinedMessages"),
                )
            },
        }

    def _call(self, sid: str) -> Call:
        call = self.network.call(sid)
        if call is None:
            raise self._not_found()
        return call

    def create_call(self) -> Any:
        time.sleep(self.network.faults.take_delay("Calls"))  # the call is still made, however long the client waits
        form = self._params(CALL_CREATE_PARAMS)
        to, from_ = form.get("To", "").strip(), form.get("From", "").strip()
        if not to:
            raise TwilioError(400, 21201, "No 'To' number is specified")
        if not from_:
            raise TwilioError(400, 21213, "No 'From' number is specified")
        if not ENDPOINT.match(to):
            raise TwilioError(400, 21211, f"Invalid 'To' Phone Number: {to}")
        if not ENDPOINT.match(from_):
            raise TwilioError(400, 21212, f"Invalid 'From' Phone Number: {from_}")
        url, twiml = form.get("Url"), form.get("Twiml")
        if not url and not twiml:
            raise TwilioError(400, 21205, "Url parameter is required.")
        source = (
            Document(twiml=twiml)
            if twiml
            else Document(url=self._url(url or ""), method=self._method(form.get("Method")))
        )
        fallback = (
            Document(url=self._url(form["FallbackUrl"]), method=self._method(form.get("FallbackMethod")))
            if form.get("FallbackUrl")
            else None
        )
        status_callback = (
            Callback(
                self._url(form["StatusCallback"]),
                self._method(form.get("StatusCallbackMethod")),
                self._events(form.getlist("StatusCallbackEvent"), CALL_EVENTS, "completed"),
            )
            if form.get("StatusCallback")
            else None
        )
        timeout = self._number(form.get("Timeout"), 60, "Timeout")
        if not 1 <= timeout <= 600:
            raise TwilioError(400, 21216, f"Timeout must be between 1 and 600: {timeout}")
        time_limit = form.get("TimeLimit")
        record = None
        if (form.get("Record") or "").lower() == "true":
            record = {
                "channels": 2 if form.get("RecordingChannels") == "dual" else 1,
                "track": form.get("RecordingTrack") or "both",
                "callback": self._recording_callback(form),
            }
        created: list[dict[str, Any]] = []
        self.network.create_call(
            to=to,
            from_=from_,
            source=source,
            fallback=fallback,
            status_callback=status_callback,
            timeout=timeout,
            time_limit=self._number(time_limit, 0, "TimeLimit") if time_limit else None,
            record=record,
            before_start=lambda call: created.append(self.call_json(call)),
        )
        return self._created(created[0])

    def _created(self, body: dict[str, Any]) -> Response:
        response = jsonify(body)
        response.status_code = 201
        return response

    def _recording_callback(self, form: MultiDict[str, str]) -> Callback | None:
        if not form.get("RecordingStatusCallback"):
            return None
        return Callback(
            self._url(form["RecordingStatusCallback"]),
            self._method(form.get("RecordingStatusCallbackMethod")),
            self._events(form.getlist("RecordingStatusCallbackEvent"), RECORDING_EVENTS, "completed"),
        )

    def list_calls(self) -> Any:
        params = self._params(CALL_LIST_PARAMS)
        calls = [
            c
            for c in reversed(self.network.calls)
            if params.get("To", c.to) == c.to
            and params.get("From", c.from_) == c.from_
            and params.get("Status", c.status) == c.status
            and params.get("ParentCallSid", c.parent.sid if c.parent else None) == (c.parent.sid if c.parent else None)
        ]
        return self._page("calls", [self.call_json(c) for c in calls], params)

    def fetch_call(self, sid: str) -> Any:
        return jsonify(self.call_json(self._call(sid)))

    def update_call(self, sid: str) -> Any:
        call = self._call(sid)
        form = self._params(CALL_UPDATE_PARAMS)
        status = form.get("Status")
        if status not in (None, "completed", "canceled"):
            raise TwilioError(400, 20001, f"Invalid Status: {status}")
        url, twiml = form.get("Url"), form.get("Twiml")
        try:
            self.network.update_call(
                sid,
                status=status,
                url=self._url(url) if url else None,
                method=self._method(form.get("Method")),
                twiml=twiml,
            )
        except CallNotActive:
            if url or twiml:
                raise TwilioError(400, 21220, "Call is not in-progress. Cannot redirect.") from None
        return jsonify(self.call_json(call))

    # -- call recordings --------------------------------------------------------------------------
    def _recording_fields(self, recording: Recording) -> dict[str, Any]:
        """The fields Twilio's call-recording and recording resources share."""
        return {
            "account_sid": recording.account_sid,
            "api_version": API_VERSION,
            "call_sid": recording.call_sid,
            "conference_sid": None,
            "date_created": self._rfc(recording.started_at),
            "date_updated": self._rfc(recording.updated_at),
            "start_time": self._rfc(recording.started_at),
            "duration": None if recording.duration is None else str(recording.duration),
            "sid": recording.sid,
            "price": None,
            "price_unit": "USD",
            "status": recording.status,
            "channels": recording.channels,
            "source": recording.source,
            "error_code": recording.error_code,
            "encryption_details": None,
        }

    def call_recording_json(self, recording: Recording) -> dict[str, Any]:
        return {
            **self._recording_fields(recording),
            "uri": self._uri(f"/Calls/{recording.call_sid}/Recordings/{recording.sid}.json"),
            "track": recording.track,
        }

    def create_call_recording(self, call_sid: str) -> Any:
        call = self._call(call_sid)
        form = self._params(CALL_RECORDING_CREATE_PARAMS)
        if call.status != "in-progress":
            raise TwilioError(400, 21220, "Requested resource is not eligible for recording")
        try:
            recording = self.network.start_recording(
                call,
                source="StartCallRecordingAPI",
                channels=2 if form.get("RecordingChannels") == "dual" else 1,
                track=form.get("RecordingTrack") or "both",
                callback=self._recording_callback(form),
            )
        except CallNotActive:
            raise TwilioError(400, 21220, "Requested resource is not eligible for recording") from None
        return self._created(self.call_recording_json(recording))

    def list_call_recordings(self, call_sid: str) -> Any:
        self._call(call_sid)
        params = self._params(PAGE_PARAMS)
        recordings = [r for r in reversed(self.network.recordings) if r.call_sid == call_sid]
        return self._page("recordings", [self.call_recording_json(r) for r in recordings], params)

    def _call_recording(self, call_sid: str, sid: str) -> Recording:
        recording = self.network.recording(sid)
        if recording is None or recording.call_sid != call_sid:
            raise self._not_found()
        return recording

    def fetch_call_recording(self, call_sid: str, sid: str) -> Any:
        return jsonify(self.call_recording_json(self._call_recording(call_sid, sid)))

    def update_call_recording(self, call_sid: str, sid: str) -> Any:
        recording = self._call_recording(call_sid, sid)
        status = self._params(CALL_RECORDING_UPDATE_PARAMS).get("Status")
        if status != "stopped":
            raise TwilioError(400, 20001, f"The stand-in only models Status=stopped, not {status}")
        self.network.stop_recording(recording)
        return jsonify(self.call_recording_json(recording))

    # -- recordings -------------------------------------------------------------------------------
    def recording_json(self, recording: Recording) -> dict[str, Any]:
        uri = self._uri(f"/Recordings/{recording.sid}")
        return {
            **self._recording_fields(recording),
            "uri": uri + ".json",
            "subresource_uris": {
                "add_on_results": f"{uri}/AddOnResults.json",
                "transcriptions": f"{uri}/Transcriptions.json",
            },
            "media_url": self.network.recording_url(recording.sid),
        }

    def list_recordings(self) -> Any:
        params = self._params(RECORDING_LIST_PARAMS)
        recordings = [r for r in reversed(self.network.recordings) if params.get("CallSid", r.call_sid) == r.call_sid]
        return self._page("recordings", [self.recording_json(r) for r in recordings], params)

    def _recording(self, sid: str) -> Recording:
        recording = self.network.recording(sid)
        if recording is None:
            raise self._not_found()
        return recording

    def recording_resource(self, name: str) -> Any:
        """Recordings/{Sid}.json is the resource; {Sid}, {Sid}.wav and {Sid}.mp3 are its media."""
        sid, _, extension = name.partition(".")
        recording = self._recording(sid)
        if extension == "json":
            return jsonify(self.recording_json(recording))
        if extension not in ("", "wav", "mp3") or recording.status != "completed" or recording.media is None:
            raise self._not_found()
        if extension == "mp3":
            if recording.mp3 is None:
                recording.mp3 = audio.to_mp3(recording.media)
            if recording.mp3 is None:
                raise self._not_found()
            return Response(recording.mp3, mimetype="audio/mpeg")
        return Response(recording.media, mimetype="audio/x-wav")

    def delete_recording(self, name: str) -> Any:
        sid, _, extension = name.partition(".")
        if extension != "json" or not self.network.delete_recording(sid):
            raise self._not_found()
        return Response(status=204)

    # -- messages ---------------------------------------------------------------------------------
    def message_json(self, message: Message) -> dict[str, Any]:
        uri = self._uri(f"/Messages/{message.sid}")
        return {
            "body": message.body,
            "num_segments": str(segments(message.body)),
            "direction": "outbound-api",
            "from": message.from_,
            "to": message.to,
            "date_updated": self._rfc(message.updated_at),
            "price": None,
            "error_message": message.error_message,
            "uri": uri + ".json",
            "account_sid": message.account_sid,
            "num_media": str(message.num_media),
            "status": message.status,
            "messaging_service_sid": message.messaging_service_sid,
            "sid": message.sid,
            "date_sent": self._rfc(message.sent_at),
            "date_created": self._rfc(message.created_at),
            "error_code": message.error_code,
            "price_unit": "USD",
            "api_version": API_VERSION,
            "subresource_uris": {"media": f"{uri}/Media.json"},
        }

    def create_message(self) -> Any:
        time.sleep(self.network.faults.take_delay("Messages"))  # still sent, however long the client waits
        refusal = self.network.faults.take_refusal()
        if refusal is not None:
            messages = {429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}
            raise TwilioError(refusal.status, refusal.code, messages[refusal.status])
        form = self._params(MESSAGE_CREATE_PARAMS)
        to = form.get("To", "").strip()
        from_ = form.get("From", "").strip() or None
        service = form.get("MessagingServiceSid") or None
        body = form.get("Body", "")
        media = form.getlist("MediaUrl")
        if not to:
            raise TwilioError(400, 21604, "A 'To' phone number is required.")
        if from_ is None and service is None:
            raise TwilioError(400, 21603, "A 'From' phone number is required.")
        if not body and not media:
            raise TwilioError(400, 21602, "Message body is required.")
        if not ENDPOINT.match(to) or to.startswith(("client:", "sip:")):
            raise TwilioError(400, 21211, f"Invalid 'To' Phone Number: {to}")
        if len(body) > 1600:
            raise TwilioError(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
        callback = Callback(self._url(form["StatusCallback"])) if form.get("StatusCallback") else None
        message = self.network.sms.send(
            to=to,
            from_=from_,
            body=body,
            messaging_service_sid=service,
            callback=callback,
            num_media=len(media),
        )
        return self._created(self.message_json(message))

    def list_messages(self) -> Any:
        params = self._params(MESSAGE_LIST_PARAMS)
        messages = [
            m
            for m in reversed(self.network.messages)
            if params.get("To", m.to) == m.to and params.get("From", m.from_) == m.from_
        ]
        return self._page("messages", [self.message_json(m) for m in messages], params)

    def fetch_message(self, sid: str) -> Any:
        message = self.network.message(sid)
        if message is None:
            raise self._not_found()
        return jsonify(self.message_json(message))
