"""REDIS_URL naming Sentinel: every kind of Redis client Directo builds follows the master through a failover."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from datetime import timedelta

import pytest
from conftest import wait_until_listening, worker_env
from failover_rig import sentinel_group, wait_for
from hypothesis import given
from hypothesis import strategies as st
from rq.job import JobStatus
from test_incoming import add

from directo.core.services import Services, parse_redis_url, redis_client
from routing import agents as agent_admin
from routing.events import agent_channel, publish
from routing.presence import presence

HOSTS = st.lists(st.tuples(st.from_regex(r"[a-z][a-z0-9.-]{0,20}", fullmatch=True), st.integers(1, 65535)),
                 min_size=1, max_size=5)


@given(hosts=HOSTS, master=st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,20}", fullmatch=True),
       db=st.integers(0, 15), password=st.none() | st.text("abc:@/%", min_size=1, max_size=8))
def test_the_sentinel_form_reads_back_what_it_names(hosts, master, db, password) -> None:
    quoted = "".join(c if c.isalnum() else f"%{ord(c):02X}" for c in password) if password else None
    url = (f"redis+sentinel://{':' + quoted + '@' if quoted else ''}"
           f"{','.join(f'{host}:{port}' for host, port in hosts)}/{master}/{db}")
    target = parse_redis_url(url)
    assert (target.sentinels, target.master, target.db, target.password) == (tuple(hosts), master, db, password)


@pytest.mark.parametrize("url", ["redis+sentinel://h1", "redis+sentinel:///directo/0", "redis+sentinel://h:x/m",
                                 "redis+sentinel://h/m/db", "redis+sentinel://h/m/0/1", "http://h/0"])
def test_a_malformed_redis_url_says_which_form_to_use(url) -> None:
    with pytest.raises(ValueError, match="redis"):
        parse_redis_url(url)


def test_plain_urls_and_the_default_port_of_sentinels() -> None:
    assert not parse_redis_url("redis://localhost:6379/2").sentinel
    assert not parse_redis_url("unix:///tmp/redis.sock?db=1").sentinel
    target = parse_redis_url("redis+sentinel://a,b:26380/directo")
    assert target.sentinels == (("a", 26379), ("b", 26380)) and target.db == 0


def test_a_connection_that_failed_mid_command_reconnects_to_the_new_master(tmp_path) -> None:
    """A command fails on the dead master and is retried: the connection must ask the sentinels again, not dial
    the dead master's address until its retries run out (RQ's worker then quit on its heartbeat)."""
    with sentinel_group(tmp_path) as group:
        client = redis_client(group.url, socket_connect_timeout=0.5, socket_timeout=2)
        connection = client.connection_pool.get_connection()
        connection.send_command("PING")
        assert connection.read_response() == b"PONG"
        old, _ = group.kill_master()
        group.wait_failover(old)
        connection.disconnect()  # what a failed command does before its retry
        connection.send_command("PING")
        assert connection.read_response() == b"PONG"
        assert connection.port == group.master_port() != old.port


def test_a_sentinel_that_hangs_does_not_hold_up_the_workers_client(tmp_path) -> None:
    """The worker's client has no read timeout (it blocks for minutes waiting for jobs); asking a stalled sentinel
    where the master is must still give up quickly and ask the next one."""
    with sentinel_group(tmp_path) as group:
        group.sentinels[0].process.send_signal(signal.SIGSTOP)
        try:
            client = redis_client(group.url, socket_connect_timeout=0.5)
            answered = threading.Thread(target=client.ping, daemon=True)
            answered.start()
            answered.join(timeout=10)
            assert not answered.is_alive(), "still waiting for the stalled sentinel"
        finally:
            group.sentinels[0].process.send_signal(signal.SIGCONT)


def test_webhooks_the_worker_its_scheduler_and_pubsub_follow_a_failover(config, clean, tmp_path) -> None:
    with sentinel_group(tmp_path) as group:
        sentinel_config = replace(config, redis_url=group.url)
        svc = Services.build(sentinel_config)
        log = tmp_path / "worker.log"
        worker = subprocess.Popen([sys.executable, "-m", "directo.cli", "worker"], env=worker_env(sentinel_config),
                                  stdout=log.open("ab"), stderr=subprocess.STDOUT)
        try:
            add(svc, "ana")
            agent_admin.restore_presence(svc)
            wait_until_listening(worker, group.url)
            events = svc.redis.pubsub(ignore_subscribe_messages=True)
            events.subscribe(agent_channel("ana"))
            old, died = group.kill_master()
            assert svc.redis.ping(), "a command waits for the new master"
            followed = time.time() - died
            assert group.master_port() not in (None, old.port)
            agent_admin.ensure_presence(svc)  # a new master: presence put back (here, or by the worker's sweep)
            assert presence(svc).loaded() and presence(svc).state("ana")["status"] == "available"
            message = _next_message(events, lambda: publish(svc.redis, "ana", "call-reserved", {"call_sid": "CA1"}))
            assert message is not None and b"CA1" in message["data"], "the subscription moved to the new master"
            now = svc.queue.enqueue("time.time")
            later = svc.queue.enqueue_in(timedelta(seconds=1), "time.time")
            for job in (now, later):
                wait_for(lambda job=job: job.get_status(refresh=True) == JobStatus.FINISHED, 60,
                         f"job {job.id} run by the worker (its scheduler for the delayed one); its log:\n"
                         + log.read_text()[-3000:])
            assert worker.poll() is None and "unhandled exception" not in log.read_text(), "the worker rode it out"
            assert followed < 10, f"clients waited {followed:.1f} s for the new master"
        finally:
            worker.terminate()
            worker.wait(timeout=30)
            svc.close()


def _next_message(events, send, timeout: float = 15.0):  # type: ignore[no-untyped-def]
    """The first message after the subscriber is back: what is published while it reconnects is lost (pub/sub
    keeps nothing), which the agent page can afford, as its stream also reads the live state."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        send()
        message = events.get_message(timeout=1.0)
        if message is not None:
            return message
    return None
