"""Why a complaint request cannot be honoured, in words for the person who asked."""

from __future__ import annotations


class ComplaintError(ValueError):
    """A complaint request that cannot be honoured; the message says why."""

    status = 400


class NotFound(ComplaintError):
    status = 404


class NotAllowed(ComplaintError):
    status = 403


class TooEarly(ComplaintError):
    """The call has not reached a person yet, so there is nothing to complain about on it."""

    status = 409


class WrongState(ComplaintError):
    """The step does not apply to the complaint as it is now: it is in another state, or someone acted first."""

    status = 409
