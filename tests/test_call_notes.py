"""A call's notes are written only by the agent who took it, and every earlier version is kept with who and when."""

from __future__ import annotations

from sqlalchemy import select
from test_agent_page import CALLER, AgentPage, agent_with_password
from test_incoming import client_identity, dial_of
from test_supervisor import console, sup  # noqa: F401  (fixtures, reused as they are)

from directo.core.models import Call, CallNote


def rang_bob_then_ana_took_it(services, twilio) -> None:
    """Bob's phone rang and he missed it; the call went on to Ana, who answered."""
    agent_with_password(services, "bob", status="available")
    agent_with_password(services, "ana", status="available")
    first = twilio.incoming("CA01", from_=CALLER)
    assert client_identity(first) == "bob"
    second = twilio.dial_complete(dial_of(first).get("action"), "CA01", "no-answer")
    assert client_identity(second) == "ana"
    twilio.agent_leg(dial_of(second).find("Client").get("statusCallback"), "CA01", "in-progress", "client:ana")


def test_an_agent_who_only_rang_cannot_write_or_overwrite_the_notes(app, services, twilio) -> None:
    rang_bob_then_ana_took_it(services, twilio)
    ana, bob = AgentPage(app.test_client()), AgentPage(app.test_client())
    ana.login("ana")
    bob.login("bob")
    assert bob.get("/agent/calls/CA01/context").status_code == 200, "Bob still sees who called him"
    assert ana.post("/agent/calls/CA01/notes", {"notes": "wants a refund"}).status_code == 200
    refused = bob.post("/agent/calls/CA01/notes", {"notes": "nothing to see here"})
    assert refused.status_code == 403 and refused.json["error"] == "only the agent who took this call writes its notes"
    with services.db.session() as session:
        assert session.scalar(select(Call.notes).where(Call.call_sid == "CA01")) == "wants a refund"


def test_every_version_is_kept_with_who_and_when_and_the_console_shows_them(app, services, twilio, sup) -> None:  # noqa: F811
    rang_bob_then_ana_took_it(services, twilio)
    ana = AgentPage(app.test_client())
    ana.login("ana")
    for text in ("wants a refund", "wants a refund", "refund agreed: 30 EUR"):  # saving the same text twice: one
        assert ana.post("/agent/calls/CA01/notes", {"notes": text}).status_code == 200
    with services.db.session() as session:
        call = session.scalar(select(Call).where(Call.call_sid == "CA01"))
        versions = session.scalars(select(CallNote).where(CallNote.call_id == call.id).order_by(CallNote.id)).all()
        assert [(v.notes, v.agent.identity) for v in versions] == [("wants a refund", "ana"),
                                                                   ("refund agreed: 30 EUR", "ana")]
        assert versions[0].written_at <= versions[1].written_at
        assert call.notes == "refund agreed: 30 EUR"
    html = sup.get(f"/supervisor/calls/{call.id}").get_data(as_text=True)
    assert html.index("refund agreed: 30 EUR") < html.index("wants a refund") and "(ana)" in html


def test_notes_written_before_the_upgrade_become_each_calls_first_version(database_url, tmp_path) -> None:
    from alembic import command
    from alembic.config import Config as AlembicConfig
    from sqlalchemy import create_engine, text

    from directo.core.db import MIGRATIONS, fresh_database

    with fresh_database(database_url, tmp_path) as url:
        engine = create_engine(url)
        try:
            alembic = AlembicConfig()
            alembic.set_main_option("script_location", str(MIGRATIONS))
            with engine.begin() as connection:
                alembic.attributes["connection"] = connection
                command.upgrade(alembic, "0004")
                connection.execute(text("INSERT INTO agents (identity, name, languages, role, active, status, "
                                        "created_at) VALUES ('ana', 'Ana', 'es', 'agent', true, 'offline', "
                                        "'2026-01-05 09:00:00')"))
                connection.execute(text("INSERT INTO calls (call_sid, direction, language, agent_id, dial_attempts, "
                                        "started_at, ended_at, outcome, notes) VALUES ('CA01', 'inbound', 'es', 1, "
                                        "1, '2026-01-05 10:00:00', '2026-01-05 10:05:00', 'answered', 'old note')"))
                command.upgrade(alembic, "head")
                notes = connection.execute(text("SELECT call_id, agent_id, notes, written_at FROM call_notes")).all()
                version = connection.execute(text("SELECT session_version FROM agents")).scalar()
        finally:
            engine.dispose()
    assert [(call_id, agent_id, note) for call_id, agent_id, note, _ in notes] == [(1, 1, "old note")]
    assert str(notes[0][3]).startswith("2026-01-05 10:05:00") and version == 0
