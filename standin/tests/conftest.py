"""Fixtures for the Twilio stand-in tests: the stand-in itself and a tiny real app it calls."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from standin import StandIn

from .helpers import AUTH_TOKEN, App


@pytest.fixture
def app() -> Iterator[App]:
    server = App(AUTH_TOKEN)
    yield server
    server.close()


@pytest.fixture
def tw() -> Iterator[StandIn]:
    with StandIn(auth_token=AUTH_TOKEN, time_scale=0.005, seed=7) as standin:
        yield standin
