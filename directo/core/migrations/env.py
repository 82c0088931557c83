"""Alembic environment: runs on the connection Directo hands over, or on DATABASE_URL from the command line."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from directo.core.config import Config
from directo.core.models import Base

target_metadata = Base.metadata


def run() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(Config.from_env().database_url_sqlalchemy)
    with engine.begin() as own:
        context.configure(connection=own, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


run()
