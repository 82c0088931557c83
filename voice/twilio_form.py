"""Twilio's webhook fields cleaned and bounded at the edge, once, so nothing below the web meets a NUL (which
PostgreSQL refuses in text), a SID longer than its column, a 100 KB caller number or a duration that is no number.

The signature is checked over the form exactly as received (`voice.signature`); only then does the view get this
cleaned copy. Twilio's own values pass unchanged: its SIDs are 34 characters, its numbers E.164 or short
`client:`/`sip:` addresses, its statuses single words and its durations whole seconds.
"""

from __future__ import annotations

import hashlib
import re

from werkzeug.datastructures import ImmutableMultiDict, MultiDict

from voice.input_guard import MAX_ID

SID_LENGTH = 64  # the database's SID columns
NUMBER_LENGTH = 128  # E.164 needs 16; client: and sip: addresses a little more
# Twilio's statuses are single words ("in-progress", "partially_delivered"); bounded so that the exactly-once keys
# built from a SID and a status ("callback:<id>:customer-leg:<CallSid>:<CallStatus>") fit their 120 characters.
STATUS_LENGTH = 20
FIELD_LENGTH = 1024  # anything else: URLs, tokens, names, error messages
NAME_LENGTH = 64
NUMBERS = frozenset({"From", "To", "Caller", "Called", "ForwardedFrom"})
# Control characters other than tab and line breaks: NUL breaks PostgreSQL, the rest only logs and terminals.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SECONDS = re.compile("[0-9]{1,9}")


def bounded_sid(value: str) -> str:
    """A SID that fits its column and stays unique: an over-long one keeps its start plus a digest of the whole,
    so a redelivery of the same odd SID is still recognised as the same call."""
    if len(value) <= SID_LENGTH:
        return value
    digest = hashlib.sha256(value.encode()).hexdigest()[:16]
    return f"{value[:SID_LENGTH - len(digest) - 1]}~{digest}"


def clean_value(name: str, value: str) -> str | None:
    """The value the app may use, or None when a field that must be a number is not one."""
    value = _CONTROL.sub("", value)
    if name.endswith("Sid"):
        return bounded_sid(value)
    if name.endswith("Duration"):
        seconds = value.strip()
        return seconds if _SECONDS.fullmatch(seconds) else None
    if name in NUMBERS:
        return value[:NUMBER_LENGTH]
    if name.endswith("Status"):
        return value[:STATUS_LENGTH]
    return value[:FIELD_LENGTH]


def clean(form: MultiDict[str, str]) -> ImmutableMultiDict[str, str]:
    """Every field cleaned; fields with unusable names or non-numeric durations left out."""
    kept = []
    for name, value in form.items(multi=True):
        if len(name) > NAME_LENGTH or _CONTROL.search(name):
            continue
        cleaned = clean_value(name, value)
        if cleaned is not None:
            kept.append((name, cleaned))
    return ImmutableMultiDict(kept)


def clean_query(args: MultiDict[str, str]) -> ImmutableMultiDict[str, str]:
    """The query string Directo wrote into the URL (attempt, callback, complaint): an id beyond the database's
    integers is left out, as if absent, so the view's default applies instead of an overflow in the database."""
    kept = [(name, _CONTROL.sub("", value)[:FIELD_LENGTH]) for name, value in args.items(multi=True)
            if _within_integers(value)]
    return ImmutableMultiDict(kept)


def _within_integers(value: str) -> bool:
    """False for a number (as the view's int() would read it) beyond the database's integers."""
    try:
        return abs(int(value)) <= MAX_ID
    except ValueError:
        return True
