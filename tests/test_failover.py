"""Redis failover: a replica promoted to master may lack the master's last writes; nobody may pay for it."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest
from conftest import TwilioWebhooks
from failover_rig import Server, in_sync, redis_server, wait_for
from redis import Redis
from test_incoming import add, client_identity, dial_of

from directo.core import periodic
from directo.core.config import Config
from routing import agents as agent_admin
from routing.presence import presence
from voice import create_app


@pytest.fixture
def pair(tmp_path) -> Iterator[tuple[Server, Server]]:
    """A master and its replica, in sync."""
    master = redis_server(tmp_path)
    replica = redis_server(tmp_path, "--replicaof", "127.0.0.1", str(master.port))
    try:
        wait_for(lambda: in_sync(replica), 30, "the replica in sync")
        yield master, replica
    finally:
        replica.stop()
        master.stop()


def app_on(config: Config, server: Server):  # type: ignore[no-untyped-def]
    return create_app(replace(config, redis_url=f"redis://127.0.0.1:{server.port}/0"))


def test_a_reservation_the_new_master_lacks_never_gives_that_agent_a_second_call(config, clean, pair) -> None:
    """The replica is promoted (a failover) just before the old master reserves ana for a caller: the new master
    still shows her free, longest idle of all. She must not be handed the next caller, and nobody is left out."""
    master, replica = pair
    old = app_on(config, master)
    new = app_on(config, replica)
    try:
        services = old.extensions["directo"]
        add(services, "ana")
        add(services, "bea")
        agent_admin.restore_presence(services)  # the sweep's doing on a running server: presence loaded here
        wait_for(lambda: in_sync(replica), 30, "the replica in sync")
        Redis(port=replica.port).replicaof("NO", "ONE")  # the failover, as Sentinel performs it
        first = TwilioWebhooks(old.test_client()).incoming("CA1", from_="+34600000001")
        assert client_identity(first) == "ana", "the old master, cut off but alive, reserved ana"
        assert presence(new.extensions["directo"]).state("ana")["status"] == "available", "the new master lacks it"

        twilio = TwilioWebhooks(new.test_client())
        assert client_identity(twilio.incoming("CA2", from_="+34600000002")) == "bea"
        third = twilio.incoming("CA3", from_="+34600000003")
        assert third.xml.find("Dial") is None, "ana is still ringing for the first caller; bea has the second"
        state = presence(new.extensions["directo"]).state("ana")
        assert (state["status"], state["call"]) == ("reserved", "CA1")
        twilio.dial_complete(dial_of(first).get("action"), "CA1", "completed", duration=30)
        twilio.agent_leg(dial_of(first).find("Client").get("statusCallback"), "CA1", "completed", "client:ana")
        twilio.status("CA1", "completed", duration=32)
        assert presence(new.extensions["directo"]).state("ana")["status"] == "wrapup"
    finally:
        old.extensions["directo"].close()
        new.extensions["directo"].close()


def test_a_master_that_only_restarted_keeps_presence(config, clean, pair) -> None:
    """The check that catches a new master costs nothing on the one presence was loaded on."""
    master, _ = pair
    app = app_on(config, master)
    try:
        services = app.extensions["directo"]
        add(services, "ana")
        add(services, "bea")
        agent_admin.restore_presence(services)
        assert client_identity(TwilioWebhooks(app.test_client()).incoming("CA1")) == "ana"
        assert presence(services).loaded()
        assert presence(services).state("ana")["status"] == "reserved", "nothing was forgotten"
    finally:
        app.extensions["directo"].close()


def test_a_periodic_lock_is_queued_once_the_replica_holds_it(pair, caplog) -> None:
    """A lock the replica does not hold yet could be taken again after a failover: the job waits for it, briefly."""
    master, replica = pair
    redis = Redis(port=master.port)
    assert redis.set("directo:sweep-lock", "1", nx=True, ex=10)
    assert periodic.on_replicas(redis, "sweep")
    assert Redis(port=replica.port).get("directo:sweep-lock") == b"1"
    replica.process.send_signal(signal.SIGSTOP)  # a replica that does not answer
    try:
        assert redis.set("directo:complaints-lock", "1", nx=True, ex=10)
        started = time.monotonic()
        assert not periodic.on_replicas(redis, "complaints")
        assert periodic.REPLICA_ACK_MS / 1000 <= time.monotonic() - started < 2, "waited, but not for ever"
    finally:
        replica.process.send_signal(signal.SIGCONT)
    assert "periodic complaints: 0 of 1 replicas hold its lock" in caplog.text
