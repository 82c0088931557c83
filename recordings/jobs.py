"""The complaint work the periodic sweep resumes: SMS not yet on their way, recordings not yet stored."""

from __future__ import annotations

from sqlalchemy import select

from directo.models import Recording
from directo.services import Services
from recordings import sms
from recordings.fetch import enqueue_fetch

__all__ = ["enqueue_fetch", "resume_pending"]


def resume_pending(svc: Services) -> int:
    """Re-queue what a lost job (Redis outage, worker killed) left undone; jobs already queued are not doubled."""
    base = svc.config.public_base_url
    status_url = f"{base}/voice/complaints/sms-status" if base else None
    queued = sum(sms.enqueue_send(svc, complaint_id, status_url, attempt=attempt)
                 for complaint_id, attempt in sms.unsent(svc))
    with svc.db.session() as session:
        pending = session.scalars(select(Recording.id).where(Recording.state == "pending",
                                                             Recording.source_url != "")).all()
    return queued + sum(enqueue_fetch(svc, recording_id) for recording_id in pending)
