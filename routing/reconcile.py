"""Agents still held by calls that are over, because the webhook that should have freed them never came.

Twilio retries a webhook whose connection failed only briefly (its connection override, once by default), so a
status callback or `<Dial>` action sent while the app was down or redeploying is lost; a number may have been set
up without its status callback; and a web process may die between reserving an agent and recording the call.
Each leaves an agent reserved or busy for good: invisible to callers while their page says they are on a
call. A job the sweeper runs every minute looks at agents held for longer than a ring, and compares with the
record and, where the record still says the call is live, with Twilio itself.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from requests import RequestException
from sqlalchemy import Row, select
from twilio.base.exceptions import TwilioException, TwilioRestException

from directo.core.jobs import current_services
from directo.core.models import Agent, Call, Callback
from directo.core.services import Services
from directo.core.states import FINAL_CALL_STATUSES, HELD, LIVE, ON_A_CALL, CallStatus
from directo.core.twilio_client import twilio_client
from directo.core.unit_of_work import run_once
from routing import agents, callbacks
from routing.callback_calls import CallbackCall
from routing.inbound import InboundCall
from routing.presence import presence
from routing.webhook import Webhook

logger = logging.getLogger(__name__)

# A reservation younger than the ring timeout plus this is simply a call in progress.
GRACE_SECONDS = 60
# Twilio is asked about one call at most this often, so long conversations cost one request per interval.
ASK_EVERY_SECONDS = 300


def reconcile_agents() -> list[str]:
    """Free the agents held by calls that are over; returns their identities."""
    svc = current_services()
    now = time.time()
    held_longer = svc.config.ring_timeout_seconds + GRACE_SECONDS
    freed = []
    for identity, state in presence(svc).states().items():
        held = state.get("call", "")
        if state.get("status") not in ON_A_CALL or not held:
            continue
        if now - float(state.get("reserved_at") or 0) < held_longer:
            continue
        callback_id = callbacks.held_callback(held)
        over = _call_over(svc, identity, held) if callback_id is None else _callback_over(svc, identity, callback_id)
        if over:
            freed.append(identity)
    return freed


def _call_over(svc: Services, identity: str, call_sid: str) -> bool:
    record = _with_agent(svc, Call, Call.call_sid == call_sid, Call.ended_at, Call.outcome)
    if record is None or record.ended_at is not None or record.outcome not in LIVE or record.identity != identity:
        # Never recorded (its web process died), or over or handed on by the record's account.
        return _release(svc, identity, call_sid)
    status, duration = _ask_twilio(svc, call_sid)
    if status not in FINAL_CALL_STATUSES:
        return False
    # Twilio's word for the status callback that never arrived, handled exactly as that webhook would have been;
    # if it does arrive later, it is a redelivery and changes nothing.
    form = {"CallSid": call_sid, "CallStatus": status, "CallDuration": duration}
    run_once(svc.db, call_sid, f"status:{status}", lambda unit: InboundCall(Webhook(svc, unit, svc.urls)).status(form))
    # The caller's call is over, so is the agent's leg of it: its lost status callback, for their wrap-up.
    leg = {"ParentCallSid": call_sid, "CallStatus": CallStatus.COMPLETED, "To": f"client:{identity}"}
    run_once(svc.db, call_sid, f"agent-leg:{CallStatus.COMPLETED}",
             lambda unit: InboundCall(Webhook(svc, unit, svc.urls)).agent_leg(leg))
    logger.warning("call %s ended (%s) without its status callback; agent %s released", call_sid, status, identity)
    return True


def _callback_over(svc: Services, identity: str, callback_id: int) -> bool:
    """The same for an agent held by a callback: its record, then Twilio's word on the agent's call and its child.

    A callback the customer's outcome already closed or sent back in line still holds its agent while the agent's
    own leg is up (they hear that the customer was not reached): only that leg's end frees them, so Twilio is asked
    about it, as for a callback still held."""
    key = callbacks.reservation_key(callback_id)
    record = _with_agent(svc, Callback, Callback.id == callback_id, Callback.state, Callback.current_call_sid)
    held = record is not None and record.state in HELD and record.identity == identity
    agent_leg = record.current_call_sid if held else _last_attempt(svc, callback_id, identity)
    if agent_leg is None:  # held: its job was lost before it dialled, and the sweep places it again
        return False if held else _release(svc, identity, key)
    status, _ = _ask_twilio(svc, agent_leg)
    if status not in FINAL_CALL_STATUSES:
        return False
    customer = _customer_leg(svc, agent_leg) if held else None
    if customer is not None:  # the customer was dialled: their outcome decides, as the <Dial> action would have
        form = {"CallSid": agent_leg, "DialCallStatus": customer[0], "DialCallDuration": customer[1]}
        run_once(svc.db, agent_leg, f"callback:{callback_id}:customer-complete",
                 lambda unit: CallbackCall(Webhook(svc, unit, svc.urls), callback_id).customer_complete(form))
    # The agent's leg is over: what its status callback would have done (their wrap-up), then, should that have been
    # heard already with Redis unreachable, the agent let go all the same.
    leg = {"CallSid": agent_leg, "CallStatus": status}
    run_once(svc.db, agent_leg, f"callback:{callback_id}:agent-status:{status}",
             lambda unit: CallbackCall(Webhook(svc, unit, svc.urls), callback_id).agent_status(leg))
    _release(svc, identity, key)
    logger.warning("callback %s: call %s ended (%s) unheard; agent %s released", callback_id, agent_leg, status,
                   identity)
    return True


def _last_attempt(svc: Services, callback_id: int, identity: str) -> str | None:
    """The agent's own call of this callback's last attempt on record, if they were rung for it."""
    with svc.db.reading() as connection:
        return connection.execute(
            select(Call.call_sid).join(Agent, Agent.id == Call.agent_id)
            .where(Call.callback_id == callback_id, Agent.identity == identity)
            .order_by(Call.id.desc()).limit(1)
        ).scalar()


def _with_agent(svc: Services, model: type[Call] | type[Callback], where: Any, *columns: Any) -> Row[Any] | None:
    """The record's columns and the identity of the agent it names (None if the record is not there)."""
    with svc.db.reading() as connection:
        return connection.execute(
            select(*columns, Agent.identity).outerjoin(Agent, Agent.id == model.agent_id).where(where)
        ).first()


def _release(svc: Services, identity: str, held: str) -> bool:
    """The record says it is over; only the live state was not told (Redis failed then). Idle time is kept."""
    if agents.release(svc, identity, held):
        logger.warning("agent %s was still held by %s, which is over: freed", identity, held)
        return True
    return False


def _ask_twilio(svc: Services, call_sid: str) -> tuple[str, str]:
    """Twilio's status and duration for a call, at most once per ASK_EVERY_SECONDS each; ("", "") otherwise."""
    if not svc.redis.set(f"{presence(svc).prefix}asked:{call_sid}", "1", nx=True, ex=ASK_EVERY_SECONDS):
        return "", ""
    return _twilio_status(svc, call_sid)


def _customer_leg(svc: Services, agent_leg: str) -> tuple[str, str] | None:
    """The status and duration of the leg the agent's call dialled to the customer, if it dialled one."""
    try:
        children = twilio_client(svc.config).calls.list(parent_call_sid=agent_leg, limit=1)
    except (TwilioException, RequestException) as error:
        logger.warning("could not ask Twilio about the legs of %s: %s", agent_leg, error)
        return None
    return (children[0].status, children[0].duration or "0") if children else None


def _twilio_status(svc: Services, call_sid: str) -> tuple[str, str]:
    """The call's status and duration as Twilio has them; a call Twilio does not know is over."""
    try:
        call = twilio_client(svc.config).calls(call_sid).fetch()
    except TwilioRestException as error:
        if error.status == 404:
            return CallStatus.CANCELED, "0"
        logger.warning("could not ask Twilio about call %s: %s", call_sid, error)
        return "", ""
    except (TwilioException, RequestException) as error:  # Twilio unreachable: ask again next time
        logger.warning("could not ask Twilio about call %s: %s", call_sid, error)
        return "", ""
    return call.status, call.duration or "0"
