"""Why a request about agents or callbacks cannot be honoured, in words for the person who asked."""

from __future__ import annotations


class Refused(ValueError):
    """A request the rules refuse; the message says why."""

    status = 400


class Conflict(Refused):
    """The change no longer applies to the thing as it is now (e.g. the callback is already dialing)."""

    status = 409
