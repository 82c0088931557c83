"""What the calls a complaint is owed tell it: the customer was reached (told by phone), could not be reached
(another day's try, then the resolution by SMS), or the due date came with the customer still not told (SMS).

The callback webhooks call `kept` and `missed` in their own unit of work, after the callback's transition; the
worker runs `deadlines` every minute. Each step is a guarded transition: run twice, it changes nothing twice.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import exists, func, select

from directo.core.jobs import current_services
from directo.core.models import Callback, Complaint, utcnow
from directo.core.services import Services
from directo.core.states import HELD, CallbackKind, CallbackState, ComplaintState, SmsTopic, ToldVia
from directo.core.unit_of_work import Work, work
from recordings import complaints, sms
from recordings.resolution import sms_body
from routing import complaint_life
from routing.complaint_life import CALL_WINDOW, DIRECTO

logger = logging.getLogger(__name__)

# The owner tries to reach the customer on this many days (each with CALLBACK_MAX_ATTEMPTS tries) before the
# resolution goes by SMS; never past the due date.
CALL_DAYS = 3
NEXT_DAY = timedelta(days=1)
# Each call's step, and the state the complaint waits in meanwhile: only that step's calls count as its tries.
_WAITING = {CallbackKind.COMPLAINT_TOLD: ComplaintState.RESOLVED, CallbackKind.COMPLAINT_FOLLOWUP: ComplaintState.TOLD}


def kept(unit: Work, svc: Services, callback: Callback) -> None:
    """The customer answered the owner's explanation call: they have been told, and a follow-up is owed."""
    if callback.kind != CallbackKind.COMPLAINT_TOLD or callback.complaint_id is None or callback.agent is None:
        return
    complaint = unit.session.get(Complaint, callback.complaint_id)
    if complaints.told(unit.session, complaint, via=ToldVia.CALL, by=callback.agent.identity, now=unit.now):
        complaint_life.owe_followup(unit, svc, complaint, callback.agent.identity)


def missed(unit: Work, svc: Services, callback: Callback) -> None:
    """A day's tries did not reach the customer: try another day while the due date allows, then text them."""
    kind = CallbackKind(callback.kind)
    if kind not in _WAITING or callback.complaint_id is None:
        return
    session = unit.session
    complaint = session.get(Complaint, callback.complaint_id)
    if complaint.state != _WAITING[kind]:
        return
    since = complaint.resolved_at if kind == CallbackKind.COMPLAINT_TOLD else complaint.told_at
    days = session.scalar(select(func.count()).select_from(Callback).where(
        Callback.complaint_id == complaint.id, Callback.kind == kind, Callback.state == CallbackState.MISSED,
        Callback.queued_at >= since)) or 0
    tomorrow = unit.now + NEXT_DAY
    if days < CALL_DAYS and (kind == CallbackKind.COMPLAINT_FOLLOWUP or tomorrow + CALL_WINDOW <= complaint.due_at):
        complaint_life.owe_call(unit, svc, complaint, kind, due=tomorrow, by=DIRECTO)
    elif kind == CallbackKind.COMPLAINT_TOLD:
        tell_by_sms(unit, svc, complaint)


def tell_by_sms(unit: Work, svc: Services, complaint: Complaint) -> bool:
    """The customer could not be told on the phone inside the deadline: the reference and the resolution by SMS,
    in their language, and the complaint says so. A follow-up call is still owed."""
    if complaint.phone is None or not complaints.told(unit.session, complaint, via=ToldVia.SMS, by=DIRECTO,
                                                      now=unit.now):
        return False
    text = sms.compose(unit.session, SmsTopic.COMPLAINT_RESOLUTION, complaint.id, complaint.phone,
                       sms_body(complaint.language, complaint.reference, complaint.explanation or "",
                                complaint.remedy or ""), complaint.id)
    text_id = text.id
    unit.after_commit.append(lambda: sms.enqueue_send(svc, text_id, sms.status_url(svc)))
    complaint_life.owe_followup(unit, svc, complaint, DIRECTO)
    return True


class _Moved(Exception):
    """Someone told the customer between the look and the step: nothing of this unit is kept."""


def deadlines(svc: Services) -> list[str]:
    """Resolved complaints whose due date came with the customer still not told (no call of theirs under way):
    the explanation calls still queued are withdrawn and the resolution goes by SMS. The references texted."""
    now = utcnow()
    calling = exists().where(Callback.complaint_id == Complaint.id, Callback.state.in_(HELD))
    with svc.db.reading() as connection:
        due = connection.execute(select(Complaint.id).where(
            Complaint.state == ComplaintState.RESOLVED, Complaint.due_at <= now, Complaint.phone.is_not(None),
            ~calling).order_by(Complaint.due_at)).scalars().all()
    texted = []
    for complaint_id in due:
        try:
            with work(svc.db) as unit:
                complaint = unit.session.get(Complaint, complaint_id)
                complaint_life.withdraw(unit.session, complaint, {CallbackKind.COMPLAINT_TOLD}, DIRECTO,
                                        "due date reached: told by SMS", unit.now)
                if not tell_by_sms(unit, svc, complaint):
                    raise _Moved
                texted.append(complaint.reference)
        except _Moved:
            continue
        logger.warning("complaint %s: due with the customer not reached; resolution sent by SMS", texted[-1])
    return texted


def deadlines_job() -> list[str]:
    """The periodic job (see `directo.core.periodic`)."""
    return deadlines(current_services())
