"""Opening hours on the center's clock: what BUSINESS_HOURS says is what a promise is checked against, for any
rules, any instant and any time zone (daylight saving included); what cannot be read stops the start."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from directo.core.config import Config
from directo.core.hours import DAYS, BusinessHours

ZONES = ["Europe/Madrid", "Atlantic/Canary", "America/Mexico_City", "Europe/London", "Australia/Sydney", "UTC"]
SPANS = st.tuples(st.integers(0, 95), st.integers(1, 96)).filter(lambda s: s[0] < s[1]).map(
    lambda s: (s[0] * 15, s[1] * 15))
RULES = st.lists(st.tuples(st.sets(st.integers(0, 6), min_size=1), SPANS), min_size=1, max_size=4)
INSTANTS = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC))


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _text(rules: list[tuple[set[int], tuple[int, int]]]) -> str:
    return "; ".join(f"{','.join(DAYS[d].title() for d in sorted(days))} {_clock(a)}-{_clock(b)}"
                     for days, (a, b) in rules)


def _open_by_hand(rules, zone: ZoneInfo, at: datetime) -> bool:
    local = at.astimezone(zone)
    minute = local.hour * 60 + local.minute + local.second / 60 + local.microsecond / 6e7
    return any(local.weekday() in days and a <= minute < b for days, (a, b) in rules)


@settings(max_examples=200, deadline=None)
@given(rules=RULES, zone=st.sampled_from(ZONES), at=INSTANTS)
def test_open_exactly_when_a_rule_says_so_on_the_local_clock(rules, zone, at) -> None:
    hours = BusinessHours.parse(_text(rules), zone)
    assert hours.is_open(at) == _open_by_hand(rules, ZoneInfo(zone), at)


@settings(max_examples=40, deadline=None)
@given(rules=RULES, zone=st.sampled_from(ZONES), at=INSTANTS)
def test_the_next_opening_is_open_and_nothing_before_it_is(rules, zone, at) -> None:
    hours = BusinessHours.parse(_text(rules), zone)
    at = at.replace(second=0, microsecond=0)
    opens = hours.next_open(at)
    assert opens >= at and hours.is_open(opens)
    step = at
    while step < opens:
        assert not hours.is_open(step), f"{step} is open, before {opens}"
        step += timedelta(minutes=15 - step.minute % 15 if step.minute % 15 else 15)


def test_ranges_lists_and_split_days_read_as_people_write_them() -> None:
    hours = BusinessHours.parse("Mon-Fri 09:00-14:00,16:00-19:00; Sat 10:00-13:00; sun 11:00-24:00", "Europe/Madrid")
    madrid = ZoneInfo("Europe/Madrid")
    tuesday = datetime(2026, 3, 10, tzinfo=madrid)
    assert [hours.is_open(tuesday.replace(hour=h)) for h in (8, 9, 13, 14, 15, 16, 18, 19)] == [
        False, True, True, False, False, True, True, False]
    assert hours.is_open(datetime(2026, 3, 14, 12, tzinfo=madrid))
    assert hours.is_open(datetime(2026, 3, 15, 23, 59, tzinfo=madrid))
    assert hours.describe() == "Mon-Fri 09:00-14:00,16:00-19:00; Sat 10:00-13:00; sun 11:00-24:00 (Europe/Madrid)"
    friday_night = datetime(2026, 3, 13, 20, tzinfo=madrid)
    assert hours.next_open(friday_night) == datetime(2026, 3, 14, 10, tzinfo=madrid)
    assert BusinessHours.parse("Sat-Mon 10:00-11:00", "UTC").spans[0].days == frozenset({5, 6, 0})


@pytest.mark.parametrize(("text", "message"), [
    ("", "BUSINESS_HOURS is empty"),
    ("Mon-Fri", "give days and hours"),
    ("Mon-Fri 9-17", "'9' is not a time"),
    ("Funday 09:00-10:00", "'Funday' is not a day"),
    ("Mon 19:00-09:00", "closes before it opens"),
    ("Mon 09:00-25:00", "is not a time of day"),
    ("Mon 09:60-10:00", "is not a time of day"),
])
def test_hours_that_cannot_be_read_stop_the_start_with_the_reason(text, message) -> None:
    with pytest.raises(ValueError, match=message):
        Config.from_env(env={"BUSINESS_HOURS": text, "TWILIO_AUTH_TOKEN": "x", "SECRET_KEY": "x"})


def test_an_unknown_time_zone_stops_the_start() -> None:
    with pytest.raises(ValueError, match="TIME_ZONE='Mars/Olympus' is not a time zone"):
        Config.from_env(env={"TIME_ZONE": "Mars/Olympus", "TWILIO_AUTH_TOKEN": "x", "SECRET_KEY": "x"})
