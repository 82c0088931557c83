"""The complaint work the periodic sweep resumes: SMS not yet on their way, recordings not yet stored."""

from __future__ import annotations

from sqlalchemy import select

from directo.core.jobs import current_services
from directo.core.models import Recording
from directo.core.services import Services
from directo.core.states import RecordingState
from recordings import sms
from recordings.fetch import enqueue_fetch

__all__ = ["enqueue_fetch", "resume_pending", "resume_pending_job"]


def resume_pending(svc: Services) -> int:
    """Re-queue what a lost job (Redis outage, worker killed) left undone; jobs already queued are not doubled."""
    queued = sum(sms.resume(svc, message_id, attempts) for message_id, attempts in sms.unsent(svc))
    with svc.db.session() as session:
        pending = session.scalars(select(Recording.id).where(Recording.state == RecordingState.PENDING,
                                                             Recording.source_url != "")).all()
    return queued + sum(enqueue_fetch(svc, recording_id) for recording_id in pending)


def resume_pending_job() -> int:
    """The periodic job (see `directo.core.periodic`): SMS and recordings of complaints are promises too."""
    return resume_pending(current_services())
