"""Migration 0007 on a database that already has complaints: each gets its flagging agent as owner and the law's
due date, and the way back and forth works. On SQLite and PostgreSQL (their date arithmetic differs)."""

from __future__ import annotations

from datetime import datetime, timedelta

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import MetaData, create_engine, insert, select

from directo.core.db import MIGRATIONS, fresh_database

FLAGGED = datetime(2026, 11, 20, 9, 30, 15)


def _migrate(engine, revision: str, down: bool = False) -> None:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, revision)


def test_complaints_flagged_before_0007_are_owned_by_their_agent_and_due_in_15_days(database_url, tmp_path) -> None:
    with fresh_database(database_url, tmp_path) as url:
        engine = create_engine(url)
        try:
            _migrate(engine, "0006")
            tables = MetaData()
            tables.reflect(engine)
            with engine.begin() as connection:
                agent = connection.execute(insert(tables.tables["agents"]).values(
                    identity="ana", name="Ana", languages="es", role="agent", active=True, status="offline",
                    created_at=FLAGGED)).inserted_primary_key[0]
                call = connection.execute(insert(tables.tables["calls"]).values(
                    call_sid="CA1", direction="inbound", language="es", agent_id=agent, dial_attempts=1,
                    started_at=FLAGGED, outcome="answered")).inserted_primary_key[0]
                connection.execute(insert(tables.tables["complaints"]).values(
                    reference="R-2026-000001", call_id=call, agent_id=agent, language="es", summary="s",
                    flagged_by="ana", flagged_at=FLAGGED))
            _migrate(engine, "head")
            tables = MetaData()
            tables.reflect(engine)
            complaints = tables.tables["complaints"]
            with engine.connect() as connection:
                row = connection.execute(select(complaints)).one()
            assert (row.state, row.owner_id, row.reopened_count) == ("received", agent, 0)
            assert row.due_at == row.first_due_at == FLAGGED + timedelta(days=15)
            _migrate(engine, "0006", down=True)
            _migrate(engine, "head")
        finally:
            engine.dispose()
