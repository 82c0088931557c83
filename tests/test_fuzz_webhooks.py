"""Every URL Twilio calls, fuzzed on a real server with real Redis on both databases (hypothesis): random, huge,
duplicated, non-UTF-8 and missing parameters and query values, signed and not. An unsigned request gets a 403 or
413 that reveals nothing and changes nothing (every row and every Redis key compared); a signed one never gets a
500, and leaves the call center's promises kept. `--hypothesis-profile=long` for a long local run."""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET

import pytest
from fuzzing import (
    AGENT_PHONE,
    CASES,
    FALLBACK,
    FIELDS,
    broken_invariants,
    call_recorded,
    cleaned_call_sid,
    internal_detail,
    online_fixture,  # noqa: F401  (the fixture `online`)
    post_webhook,
    snapshot,
    webhook_case,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from directo.core.urls import path

# What a rescue would reveal to whoever could trigger it without a signature.
SECRETS = ("ana", "tom", "cy", AGENT_PHONE, FALLBACK, "<Response", "<Dial")


@pytest.mark.parametrize("endpoint", sorted(FIELDS))
@pytest.mark.timeout(max(300, 2 * settings().max_examples))  # the long profile runs for a while
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(data=st.data())
def test_every_twilio_webhook_fuzzed(online, caplog, endpoint, data) -> None:
    services, base, http = online.services, online.url, online.http
    case = data.draw(webhook_case(endpoint), label="request")
    caplog.clear()
    before = None if case.signed else snapshot(services)
    response = post_webhook(http, base, path(endpoint), case)
    database = services.db.engine.dialect.name
    CASES[(database, path(endpoint), "signed" if case.signed else "unsigned")] += 1
    body = response.text
    assert response.status_code != 500, body
    assert internal_detail(body) is None, f"{internal_detail(body)!r} in {body[:500]}"
    if not case.signed:
        assert response.status_code in (403, 413), (response.status_code, body)
        assert not [secret for secret in SECRETS if secret in body], body
        assert snapshot(services) == before, "an unsigned request changed the database or Redis"
        return
    assert response.status_code in (200, 400, 413), (response.status_code, body)
    if response.status_code == 200:
        assert ET.fromstring(body).tag == "Response", body
    assert broken_invariants(services) == []
    failures = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert not failures, f"a signed request failed inside: {failures[0].getMessage()}\n{failures[0].exc_text}"
    sid = cleaned_call_sid(case)
    if endpoint == "voice.incoming" and response.status_code == 200 and sid:
        assert call_recorded(services, sid), f"incoming call {sid!r} answered but not on record"
