"""PostgreSQL behind PgBouncer in transaction pooling mode: each transaction may run on another server connection,
so nothing may rely on a session (prepared statements, session locks); migrations take the direct connection."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest
from conftest import LiveServer, incoming_over_http, run_together, schema_versions
from failover_rig import pgbouncer, pgbouncer_executable
from sqlalchemy import func, select
from test_incoming import add

from directo.core.db import fresh_database
from directo.core.models import Call
from recordings import audit
from voice import create_app

AGENTS = 6
CALLERS = 40


@pytest.fixture
def bounced(database_url: str, tmp_path) -> Iterator[tuple[str, str]]:
    """(through PgBouncer, direct) URLs of a database of this test's own, PgBouncer with few server connections
    so that transactions keep landing on different ones."""
    if not database_url.startswith("postgresql"):
        pytest.skip("PgBouncer stands in front of PostgreSQL")
    if pgbouncer_executable() is None:
        pytest.skip("pgbouncer is not installed (./run-tests installs Debian's when run as root)")
    with fresh_database(database_url, tmp_path) as direct, pgbouncer(direct, pool_size=3) as pooled:
        yield pooled, direct


def test_processes_starting_together_migrate_on_the_direct_connection(bounced) -> None:
    pooled, direct = bounced
    run_together("import sys\nfrom directo.core.db import Database", "Database(*sys.argv[1:3]).migrate()",
                 pooled, direct)
    assert schema_versions(pooled) == 1


def test_calls_and_audit_appends_through_transaction_pooling(config, clean, bounced) -> None:
    """Many webhooks at once repeat the same statements far past psycopg's prepare threshold, on whichever server
    connection PgBouncer hands out; audit appends serialise on a transaction-scoped advisory lock."""
    pooled, direct = bounced
    app = create_app(replace(config, database_url=pooled, database_direct_url=direct))
    services = app.extensions["directo"]
    services.redis.flushdb()
    try:
        for i in range(AGENTS):
            add(services, f"agent{i:02d}")
        with LiveServer(app) as server:
            url = server.url + "/voice/incoming"

            def append(i: int) -> None:
                with services.db.session() as session:
                    audit.append(session, "test-entry", {"n": i})

            with ThreadPoolExecutor(max_workers=16) as pool:
                chosen = list(pool.map(lambda i: incoming_over_http(url, i, "+346002"), range(CALLERS)))
                list(pool.map(append, range(CALLERS)))
        connected = [c for c in chosen if c is not None]
        assert len(connected) == len(set(connected)) == AGENTS, Counter(chosen)
        with services.db.session() as session:
            outcomes = Counter(session.scalars(select(Call.outcome)).all())
            assert session.scalar(select(func.count()).select_from(Call)) == CALLERS
            assert audit.verify(session).intact
        assert outcomes == {"ringing": AGENTS, "callback": CALLERS - AGENTS}, "every call recorded, none failed"
    finally:
        services.close()
