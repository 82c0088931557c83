"""The center's opening hours in its own time zone: when an agent may promise to call a customer.

`BUSINESS_HOURS` reads as people write it: rules separated by ";", each a set of days and one or more spans,
e.g. "Mon-Fri 09:00-14:00,16:00-19:00; Sat 10:00-14:00". Days are Mon..Sun (ranges and lists), spans run within
one day ("24:00" closes at midnight); every time is on the clock of `TIME_ZONE`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MINUTES_A_DAY = 24 * 60
_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})$")


@dataclass(frozen=True)
class Span:
    """Open on these weekdays (0 = Monday) from `opens` to `closes`, in minutes after local midnight."""

    days: frozenset[int]
    opens: int
    closes: int


def zone(name: str) -> ZoneInfo:
    """The IANA time zone named, or a clear error naming what was given."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"TIME_ZONE={name!r} is not a time zone (use an IANA name such as Europe/Madrid)") \
            from error


def _minutes(clock: str, rule: str) -> int:
    match = _CLOCK.match(clock.strip())
    if match is None:
        raise ValueError(f"BUSINESS_HOURS rule {rule!r}: {clock.strip()!r} is not a time (HH:MM)")
    hours, minutes = int(match[1]), int(match[2])
    if minutes > 59 or hours > 24 or (hours == 24 and minutes):
        raise ValueError(f"BUSINESS_HOURS rule {rule!r}: {clock.strip()!r} is not a time of day")
    return hours * 60 + minutes


def _day(name: str, rule: str) -> int:
    key = name.strip().lower()[:3]
    if key not in DAYS or len(name.strip()) < 3:
        raise ValueError(f"BUSINESS_HOURS rule {rule!r}: {name.strip()!r} is not a day (Mon, Tue, ... Sun)")
    return DAYS.index(key)


def _days(text: str, rule: str) -> frozenset[int]:
    chosen: set[int] = set()
    for part in text.split(","):
        first, _, last = part.partition("-")
        start = _day(first, rule)
        end = _day(last, rule) if last else start
        chosen.update((start + step) % 7 for step in range((end - start) % 7 + 1))
    return frozenset(chosen)


def _rule(rule: str) -> list[Span]:
    days, _, times = rule.strip().partition(" ")
    if not times.strip():
        raise ValueError(f"BUSINESS_HOURS rule {rule.strip()!r}: give days and hours, e.g. 'Mon-Fri 09:00-19:00'")
    weekdays = _days(days, rule.strip())
    spans = []
    for span in times.split(","):
        opens, dash, closes = span.partition("-")
        if not dash:
            raise ValueError(f"BUSINESS_HOURS rule {rule.strip()!r}: {span.strip()!r} is not a span (HH:MM-HH:MM)")
        start, end = _minutes(opens, rule.strip()), _minutes(closes, rule.strip())
        if start >= end:
            raise ValueError(f"BUSINESS_HOURS rule {rule.strip()!r}: {span.strip()!r} closes before it opens "
                             "(a span past midnight is two spans, one on each day)")
        spans.append(Span(weekdays, start, end))
    return spans


@dataclass(frozen=True)
class BusinessHours:
    """When the center is open, and the questions a promise asks of it."""

    text: str
    zone: ZoneInfo
    spans: tuple[Span, ...]

    @classmethod
    def parse(cls, text: str, time_zone: str) -> BusinessHours:
        spans = [span for rule in text.split(";") if rule.strip() for span in _rule(rule)]
        if not spans:
            raise ValueError("BUSINESS_HOURS is empty: give at least one rule, e.g. 'Mon-Fri 09:00-19:00'")
        return cls(" ".join(text.split()), zone(time_zone), tuple(spans))

    def local(self, at: datetime) -> datetime:
        """An instant on the center's clock."""
        return at.astimezone(self.zone)

    def is_open(self, at: datetime) -> bool:
        local = self.local(at)
        minute = local.hour * 60 + local.minute + (local.second + local.microsecond / 1e6) / 60
        return any(local.weekday() in span.days and span.opens <= minute < span.closes for span in self.spans)

    def next_open(self, at: datetime) -> datetime:
        """The first instant at or after `at` when the center is open (within a week, as every rule repeats)."""
        if self.is_open(at):
            return at
        start = self.local(at).date()
        for offset in range(8):
            day = start + timedelta(days=offset)
            for opens in sorted(span.opens for span in self.spans if day.weekday() in span.days):
                candidate = self._at(day, opens)
                if candidate >= at and self.is_open(candidate):
                    return candidate
        raise ValueError(f"BUSINESS_HOURS {self.text!r} never opens")

    def _at(self, day: date, minute: int) -> datetime:
        midnight = datetime(day.year, day.month, day.day, tzinfo=self.zone)
        return midnight + timedelta(minutes=minute)

    def describe(self) -> str:
        return f"{self.text} ({self.zone.key})"
