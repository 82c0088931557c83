"""What the fuzz tests share: a call center with something in it, requests drawn by hypothesis (random, huge,
duplicated, non-UTF-8 and missing parameters), and the checks made after each: no 500, nothing internal in any
body, nothing changed by a request Twilio did not sign, and the call center's invariants after one it did."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl, quote_from_bytes

import pytest
import requests
import werkzeug.formparser  # noqa: F401  (registers the "werkzeug.url_quote" codec error handler used below)
from conftest import ACCOUNT_SID, AUTH_TOKEN, LiveServer, TwilioWebhooks, clean_all, make_config
from hypothesis import strategies as st
from redis import Redis
from sqlalchemy import func, select
from test_agent_page import PASSWORD
from test_incoming import add, complete_call, dial_of
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict

from directo.core.models import Base, Call, Callback
from directo.core.states import HELD, LIVE, CallbackState, CallOutcome, CallStatus, RecordingStatus
from recordings.audit import verify
from recordings.complaints import flag
from routing import agents as admin
from routing import roster
from voice import create_app
from voice.twilio_form import clean

# How many cases ran, per (database, endpoint, kind): printed at the end of the run (tests/conftest.py).
CASES: Counter[tuple[str, str, str]] = Counter()

# What must never reach a client: tracebacks, the database's or the framework's own words, file paths.
INTERNAL = re.compile(r"Traceback|File \"/|sqlalchemy|psycopg|sqlite3|OperationalError|IntegrityError|DataError|"
                      r"werkzeug\.|jinja2\.|/site-packages/|redis\.exceptions|Internal Server Error", re.IGNORECASE)

AGENT_PHONE = "+34611222333"
FALLBACK = "+34910000099"
CALLERS = ["+34600111222", "+34600333444", "+34600555666", "+447700900123"]
LIVE_SID, DONE_SID, CALLBACK_SID = "CA" + "1" * 32, "CA" + "2" * 32, "CA" + "3" * 32
SIDS = [LIVE_SID, DONE_SID, CALLBACK_SID, "CA" + "a" * 32, "RE" + "4" * 32, "SM" + "5" * 32]


@dataclass
class Online:
    """The furnished call center on a real HTTP server."""

    app: Any
    services: Any
    url: str
    http: requests.Session


def furnish(services, twilio: TwilioWebhooks) -> None:
    """A call center mid-morning: a call in progress, one over, a callback held for an agent, a complaint."""
    for identity in ("ana", "cy"):
        add(services, identity)
        roster.set_password(services, identity, PASSWORD)
    add(services, "tom", phone=AGENT_PHONE, status="away")
    add(services, "bea", status="away")
    roster.add_agent(services, "sara", "Sara", ["es"], role="supervisor")
    roster.set_password(services, "sara", PASSWORD)
    live = twilio.incoming(LIVE_SID, from_=CALLERS[0])
    twilio.agent_leg(dial_of(live).find("Client").get("statusCallback"), LIVE_SID, "in-progress", "client:ana")
    complete_call(twilio, twilio.incoming(DONE_SID, from_=CALLERS[1]), DONE_SID, "cy")
    assert twilio.incoming(CALLBACK_SID, from_=CALLERS[2]).xml.find("Record") is not None
    admin.set_status(services, "tom", "available")  # takes the waiting callback at once
    flag(services, LIVE_SID, "ana", summary="charged twice")


@pytest.fixture(scope="module", name="online")
def online_fixture(database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Online]:
    """One furnished call center per database for a whole fuzz module: every endpoint's cases meet what the
    cases before them left, as a server meets its day."""
    clean_all(database_url, redis_url)
    config = make_config(database_url, redis_url, tmp_path_factory.mktemp("fuzz"))
    app = create_app(replace(config, fallback_number=FALLBACK))
    app.config.update(AGENT_EVENTS_SECONDS=0.2, SUPERVISOR_EVENTS_SECONDS=0.2)  # event streams end at once
    services = app.extensions["directo"]
    furnish(services, TwilioWebhooks(app.test_client()))
    try:
        with LiveServer(app) as server, requests.Session() as http:
            yield Online(app, services, server.url, http)
    finally:
        services.close()


def internal_detail(body: str) -> str | None:
    found = INTERNAL.search(body)
    return found.group(0) if found else None


# --- values ------------------------------------------------------------------------------------------------

def _bytes(values: st.SearchStrategy[str]) -> st.SearchStrategy[bytes]:
    return values.map(lambda text: text.encode("utf-8", "surrogatepass"))


JUNK = st.one_of(
    st.text(max_size=40),  # any Unicode, NULs and control characters included
    st.text(alphabet=st.characters(codec="ascii"), max_size=200),
    st.integers(0, 70_000).map(lambda n: "9" * n),  # huge: past the columns, and past the body limit
    st.sampled_from(["\x00", "CA\x00", "%00", "-1", "1e309", "NaN", "null", "[]", "{}", "<Response/>", "' OR 1=1--"]),
)
STATUSES = [*CallStatus, *RecordingStatus, "sent", "delivered", "undelivered", "accepted", "queued"]
PLAUSIBLE = {
    "Sid": st.sampled_from(SIDS),
    "From": st.sampled_from([*CALLERS, "anonymous", "client:ana", "client:tom", "sip:desk@pbx.example.com", ""]),
    "To": st.sampled_from(["+34910000000", "client:ana", "client:bea", AGENT_PHONE, *CALLERS]),
    "Status": st.sampled_from(STATUSES),
    "Duration": st.integers(0, 10_000).map(str),
    "RecordingUrl": st.just(f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/RE{'4' * 32}"),
}


def plausible(name: str) -> st.SearchStrategy[str]:
    for suffix, values in PLAUSIBLE.items():
        if name.endswith(suffix):
            return values
    return st.sampled_from(["", "1", "inbound", "outbound-dial", "2010-04-01", ACCOUNT_SID])


def value_for(name: str) -> st.SearchStrategy[bytes]:
    """Mostly what Twilio would send, often junk, sometimes bytes that are not UTF-8 at all."""
    return st.one_of(_bytes(plausible(name)), _bytes(plausible(name)), _bytes(JUNK), st.binary(max_size=12))


# Parameters each webhook reads (and Twilio's usual ones): each may be missing, odd or duplicated.
COMMON = ["CallSid", "AccountSid", "From", "To", "CallStatus", "Direction", "ApiVersion"]
FIELDS = {
    "voice.incoming": COMMON + ["CallerName", "StirVerstat"],
    "voice.dial_complete": COMMON + ["DialCallStatus", "DialCallSid", "DialCallDuration"],
    "voice.agent_leg": COMMON + ["ParentCallSid"],
    "voice.status": COMMON + ["CallDuration"],
    "rescue.dial_complete": COMMON + ["DialCallStatus", "DialCallSid", "DialCallDuration"],
    "rescue.agent_leg": COMMON + ["ParentCallSid"],
    "callbacks.reason": COMMON + ["RecordingUrl", "RecordingSid", "RecordingDuration"],
    "callbacks.reason_status": COMMON + ["RecordingUrl", "RecordingSid", "RecordingStatus", "RecordingDuration"],
    "callbacks.agent_answered": COMMON,
    "callbacks.agent_status": COMMON + ["CallDuration"],
    "callbacks.customer_leg": COMMON + ["ParentCallSid", "CallDuration"],
    "callbacks.customer_complete": COMMON + ["DialCallStatus", "DialCallSid", "DialCallDuration"],
    "complaints.twilio.acknowledge": COMMON,
    "complaints.twilio.spoken": COMMON,
    "complaints.twilio.recording_status": ["CallSid", "AccountSid", "RecordingSid", "RecordingUrl", "RecordingStatus",
                                           "RecordingDuration", "ErrorCode"],
    "complaints.twilio.sms_status": ["MessageSid", "AccountSid", "MessageStatus", "To", "ErrorCode", "SmsSid"],
}
QUERY_VALUES = st.one_of(st.integers(-3, 12).map(str), st.just("9" * 25), st.text(max_size=12))


@dataclass
class WebhookCase:
    """One request as it goes on the wire, and what the server will read from it."""

    query: list[tuple[str, str]]
    body: bytes
    signing: str  # "signed", or how it is not: "missing", "junk", "other-token", "tampered"
    read_back: MultiDict[str, str] = field(default_factory=MultiDict)

    @property
    def signed(self) -> bool:
        return self.signing == "signed"


@st.composite
def webhook_case(draw: st.DrawFn, endpoint: str) -> WebhookCase:
    pairs: list[tuple[bytes, bytes]] = []
    for name in FIELDS[endpoint]:
        for _ in range(draw(st.sampled_from([1, 1, 1, 0, 2]))):  # usually once; sometimes missing or twice
            pairs.append((name.encode(), draw(value_for(name))))
    pairs += draw(st.lists(st.tuples(_bytes(st.text(max_size=12)) | st.binary(max_size=6), _bytes(JUNK)),
                           max_size=3))  # parameters Twilio may add without notice, and junk
    body = b"&".join(quote_from_bytes(k).encode() + b"=" + quote_from_bytes(v).encode() for k, v in pairs)
    if draw(st.integers(0, 9)) == 0:
        body = b"&".join(k + b"=" + v for k, v in pairs)  # not even URL-encoded: raw bytes, maybe not UTF-8
    query = draw(st.lists(st.tuples(st.sampled_from(["attempt", "callback", "complaint", "x"]), QUERY_VALUES),
                          max_size=2))
    signing = draw(st.sampled_from(["signed", "signed", "missing", "junk", "other-token", "tampered"]))
    return WebhookCase(query, body, signing, _as_werkzeug_reads(body))


def _as_werkzeug_reads(body: bytes) -> MultiDict[str, str]:
    """The form the server will see: Twilio signs what it sends, so the test signs what the server parses."""
    try:
        text = body.decode()
    except UnicodeDecodeError:
        return MultiDict()
    return MultiDict(parse_qsl(text, keep_blank_values=True, errors="werkzeug.url_quote"))


def signature_for(case: WebhookCase, url: str) -> str | None:
    if case.signing == "missing":
        return None
    if case.signing == "junk":
        return "bm90IGEgc2lnbmF0dXJl"
    token = "not-the-account-token" if case.signing == "other-token" else AUTH_TOKEN
    params = MultiDict(case.read_back)
    if case.signing == "tampered":
        params.add("Tampered", "1")
    return RequestValidator(token).compute_signature(url, params)


def post_webhook(http: requests.Session, base: str, path: str, case: WebhookCase) -> requests.Response:
    url = base + path + ("?" + "&".join(f"{quote_from_bytes(k.encode())}={quote_from_bytes(v.encode())}"
                                        for k, v in case.query) if case.query else "")
    signature = signature_for(case, url)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if signature is not None:
        headers["X-Twilio-Signature"] = signature
    return http.post(url, data=case.body, headers=headers, timeout=30)


def cleaned_call_sid(case: WebhookCase) -> str:
    return clean(case.read_back).get("CallSid", "")


# --- state: what may not change, and what must stay true ---------------------------------------------------

def snapshot(svc: Any) -> tuple[dict[str, list[tuple[Any, ...]]], dict[bytes, Any]]:
    """Every row of every table and every Redis key's value: an unsigned request must leave both as they were."""
    with svc.db.session() as session:
        rows = {table.name: [tuple(row) for row in session.execute(table.select().order_by(*table.primary_key))]
                for table in Base.metadata.sorted_tables}
    return rows, _redis_values(svc.redis)


def _redis_values(redis: Redis) -> dict[bytes, Any]:
    read = {b"string": redis.get, b"hash": redis.hgetall, b"list": lambda k: redis.lrange(k, 0, -1),
            b"set": redis.smembers, b"zset": lambda k: redis.zrange(k, 0, -1, withscores=True),
            b"stream": lambda k: redis.xrange(k)}
    return {key: read.get(redis.type(key), lambda _k: None)(key) for key in redis.scan_iter(count=1000)}


def broken_invariants(svc: Any) -> list[str]:
    """The promises a signed request, however odd, must leave kept."""
    found = []
    with svc.db.session() as session:
        on_calls = session.execute(
            select(Call.agent_id, func.count()).where(Call.agent_id.is_not(None), Call.ended_at.is_(None),
                                                      Call.outcome.in_(LIVE)).group_by(Call.agent_id)).all()
        on_callbacks = session.execute(
            select(Callback.agent_id, func.count()).where(Callback.agent_id.is_not(None),
                                                          Callback.state.in_(HELD)).group_by(Callback.agent_id)).all()
        engaged: Counter[int] = Counter()
        for agent_id, count in [*on_calls, *on_callbacks]:
            engaged[agent_id] += count
        found += [f"agent {agent_id} holds {count} calls at once" for agent_id, count in engaged.items() if count > 1]
        for call in session.scalars(select(Call)):
            if call.outcome not in set(CallOutcome):
                found.append(f"call {call.call_sid!r} has an unknown outcome {call.outcome!r}")
            if call.outcome == CallOutcome.NO_AGENT and call.caller is not None:
                found.append(f"caller {call.caller} of {call.call_sid!r} left with nobody and no callback")
            if call.outcome == CallOutcome.CALLBACK and (
                    call.callback_id is None or session.get(Callback, call.callback_id) is None):
                found.append(f"call {call.call_sid!r} promised a callback that does not exist")
        for callback in session.scalars(select(Callback)):
            if callback.state not in set(CallbackState):
                found.append(f"callback {callback.id} has an unknown state {callback.state!r}")
        chain = verify(session)
        if chain.broken_at is not None:
            found.append(f"audit chain broken at entry {chain.broken_at}: {chain.problem}")
    return found


def call_recorded(svc: Any, sid: str) -> bool:
    with svc.db.session() as session:
        return session.scalar(select(func.count()).select_from(Call).where(Call.call_sid == sid)) == 1


def iter_rules(app: Any) -> Iterator[Any]:
    yield from sorted(app.url_map.iter_rules(), key=lambda rule: (rule.rule, rule.endpoint))
