"""What every step of a call's life works with, whichever call it is: shared by composition, not inheritance."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from directo.core.config import Config
from directo.core.services import Services
from directo.core.unit_of_work import Unit
from directo.core.urls import UrlFor


@dataclass(frozen=True)
class Webhook:
    """One Twilio event being handled: the services, the unit of work it commits in, and where Twilio calls back."""

    svc: Services
    unit: Unit
    urls: UrlFor

    @property
    def session(self) -> Session:
        return self.unit.session

    @property
    def now(self) -> datetime:
        return self.unit.now

    @property
    def config(self) -> Config:
        return self.svc.config
