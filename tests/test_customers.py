"""The customer's profile and the memory every agent reads: names kept exactly, every change kept, corrections that
cannot overwrite each other unseen, the language driving routing and prompts, the screen pop and the customer
page, and `directo customers show/set`."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from test_agent_page import CALLER, AgentPage, agent_with_password
from test_incoming import client_identity, complete_call, dial_of

from directo.cli import main
from directo.core.models import Agent, Call, Customer, CustomerChange, name_key
from directo.core.unit_of_work import work
from routing import agents as admin
from routing import customers
from routing.errors import Conflict, Refused
from routing.memory import search

NAMES = ["Lucía Núñez", "Ibáñez", "O'Brien", "김민준", "Zoë Çelik-Øster", "محمد"]
# What people type as names: letters of any script, marks, spaces, apostrophes, hyphens; no control characters.
PRINTED = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1, max_size=200).filter(
    lambda text: text.strip() == text and text != "")


@pytest.fixture
def desk(app) -> AgentPage:
    """One agent's browser session on the agent page."""
    return AgentPage(app.test_client())


@pytest.fixture
def next_desk(app) -> AgentPage:
    """Another agent's, at the next desk."""
    return AgentPage(app.test_client())


def _customer(services, phone: str = CALLER, language: str = "es") -> int:
    with services.db.session() as session:
        customer = Customer(phone=phone, language=language, answered_calls=0)
        session.add(customer)
        session.flush()
        return customer.id


def _change(services, customer_id: int, by: str = "ana", seen: int | None = None, **fields) -> customers.Changed:
    with work(services.db) as unit:
        return customers.change(unit.session, customer_id, fields, by, unit.now, seen=seen)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.one_of(st.sampled_from(NAMES), PRINTED))
def test_a_name_is_kept_exactly_as_given_and_found_by_search(services, name) -> None:
    customer_id = _customer(services, phone=f"+346{abs(hash(name)) % 10**8:08d}")
    _change(services, customer_id, name=name)
    with services.db.session() as session:
        assert session.get(Customer, customer_id).name == name
        if name_key(name):
            assert customer_id in [c.id for c in search(session, name, None)]
        session.query(CustomerChange).filter_by(customer_id=customer_id).delete()
        session.delete(session.get(Customer, customer_id))


def test_accents_and_case_aside_search_finds_the_name(services) -> None:
    ids = {name: _customer(services, phone=f"+3460011122{n}") for n, name in enumerate(NAMES)}
    for name, customer_id in ids.items():
        _change(services, customer_id, name=name)
    with services.db.session() as session:
        assert [c.name for c in search(session, "nunez", None)] == ["Lucía Núñez"]
        assert [c.name for c in search(session, "IBANEZ", None)] == ["Ibáñez"]
        assert [c.name for c in search(session, "o'brien", None)] == ["O'Brien"]
        assert [c.name for c in search(session, "민준", None)] == ["김민준"]
        assert [c.name for c in search(session, "00111221", None)] == ["Ibáñez"], "digits within the number"


def test_every_change_is_kept_with_who_and_when_and_unchanged_fields_are_not(services) -> None:
    customer_id = _customer(services)
    first = _change(services, customer_id, by="ana", name="Lucia Nunez", notes="Prefers mornings.")
    assert first.fields == ["name", "notes"] and first.revision == 1
    second = _change(services, customer_id, by="bea", name="Lucía Núñez", notes="Prefers mornings.",
                     say_as="loo-THEE-a NOO-nyeth")
    assert second.fields == ["name", "say_as"] and second.revision == 2
    with services.db.session() as session:
        kept = [(c.by, c.field, c.old, c.new) for c in session.scalars(
            select(CustomerChange).where(CustomerChange.customer_id == customer_id).order_by(CustomerChange.id))]
        assert all(c.at is not None for c in session.scalars(select(CustomerChange)))
    assert kept == [("ana", "name", None, "Lucia Nunez"), ("ana", "notes", None, "Prefers mornings."),
                    ("bea", "name", "Lucia Nunez", "Lucía Núñez"), ("bea", "say_as", None, "loo-THEE-a NOO-nyeth")]


def test_two_agents_correcting_at_once_cannot_overwrite_each_other_unseen(services) -> None:
    customer_id = _customer(services)
    _change(services, customer_id, by="ana", seen=0, notes="Asked us not to call after 18:00.")
    with pytest.raises(Conflict, match="changed meanwhile by ana"):
        _change(services, customer_id, by="bea", seen=0, notes="Wants a call at 19:00.")
    with services.db.session() as session:
        assert session.get(Customer, customer_id).notes == "Asked us not to call after 18:00."


@pytest.mark.parametrize(("fields", "message"), [
    ({"language": "fr"}, "language 'fr' not served"),
    ({"name": "x" * 201}, "name: at most 200 characters"),
    ({"name": "Ana\x00"}, "control characters"),
    ({"notes": "n" * 4001}, "notes: at most 4000"),
    ({"shoe_size": "42"}, "not part of a customer's profile"),
    ({"name": 42}, "give text"),
])
def test_bad_profile_input_is_refused_clearly_and_changes_nothing(services, fields, message) -> None:
    customer_id = _customer(services)
    with pytest.raises(Refused, match=message):
        _change(services, customer_id, **fields)
    with services.db.session() as session:
        assert session.get(Customer, customer_id).revision == 0


def test_a_corrected_language_routes_the_next_call_and_speaks_its_prompts(services, twilio) -> None:
    agent_with_password(services, "ana", "es", status="available")
    agent_with_password(services, "tom", "en", status="available")
    customer_id = _customer(services, language="es")
    _change(services, customer_id, language="en")
    ringing = twilio.incoming("CA01", from_=CALLER)
    assert client_identity(ringing) == "tom", "an English speaker takes them now"
    complete_call(twilio, ringing, "CA01", "tom")
    admin.set_status(services, "tom", "away")
    admin.set_status(services, "ana", "away")
    nobody = twilio.incoming("CA02", from_=CALLER)
    assert nobody.xml.find("Say").get("language") == "en-GB"


def test_a_language_corrected_during_a_call_is_what_is_said_after_it(services, twilio) -> None:
    agent_with_password(services, "ana", "es", "en", status="available")
    customer_id = _customer(services, language="es")
    twilio.incoming("CA01", from_=CALLER)
    _change(services, customer_id, language="en")
    with services.db.session() as session:
        assert session.scalar(select(Call.language).where(Call.call_sid == "CA01")) == "en"


# --- the screen pop and the customer page ---------------------------------------------------------------


def _first_call_with_notes(services, twilio, page: AgentPage) -> int:
    """Ana takes Lucía's first call, corrects her name, writes standing notes and the call's notes."""
    agent_with_password(services, "ana", status="available")
    first = twilio.incoming("CA01", from_=CALLER)
    page.login("ana")
    context = page.get("/agent/calls/CA01/context").json
    customer_id = context["customer"]["id"]
    saved = page.post(f"/customers/{customer_id}/profile", {
        "name": "Lucía Núñez", "say_as": "loo-THEE-a NOO-nyeth", "notes": "Widow; asked us never to call on Sundays.",
        "revision": context["customer"]["revision"]})
    assert saved.status_code == 200, saved.json
    # Only the agent who took the call writes its notes: ana answers first.
    twilio.agent_leg(dial_of(first).find("Client").get("statusCallback"), "CA01", "in-progress", "client:ana")
    assert page.post("/agent/calls/CA01/notes", {"notes": "Refund of the March invoice promised."}).status_code == 200
    complete_call(twilio, first, "CA01", "ana")
    return customer_id


def test_the_next_agent_sees_the_corrected_name_the_notes_and_the_last_calls_notes(services, twilio, desk,
                                                                                   next_desk) -> None:
    customer_id = _first_call_with_notes(services, twilio, desk)
    agent_with_password(services, "bob", status="available")  # Ana is in wrap-up: Bob takes the next call
    ringing = twilio.incoming("CA02", from_=CALLER)
    assert client_identity(ringing) == "bob"
    assert dict((p.get("name"), p.get("value")) for p in dial_of(ringing).iter("Parameter"))["callerName"] \
        == "Lucía Núñez"
    next_desk.login("bob")
    context = next_desk.get("/agent/calls/CA02/context").json
    assert context["customer"] | {"changed": None} == context["customer"] | {
        "id": customer_id, "name": "Lucía Núñez", "say_as": "loo-THEE-a NOO-nyeth", "language": "es",
        "notes": "Widow; asked us never to call on Sundays.", "number": CALLER, "changed": None}
    assert context["customer"]["changed"]["by"] == "ana"
    last = context["contacts"][0]
    assert (last["call_sid"], last["agent"], last["kind"], last["outcome"], last["notes"]) == (
        "CA01", "Ana", "call", "answered", "Refund of the March invoice promised.")
    assert all(c["call_sid"] != "CA02" for c in context["contacts"]), "the call itself is not its own history"
    assert context["customer_page"] == f"/customers/{customer_id}"


def test_the_screen_pop_shows_the_last_five_contacts_newest_first(services, twilio, desk) -> None:
    agent_with_password(services, "ana", status="available")
    for n in range(7):
        answer = twilio.incoming(f"CA0{n}", from_=CALLER)
        with services.db.session() as session:
            session.scalar(select(Call).where(Call.call_sid == f"CA0{n}")).notes = f"call {n}"
        complete_call(twilio, answer, f"CA0{n}", "ana")
        admin.set_status(services, "ana", "available")
    twilio.incoming("CA99", from_=CALLER)
    desk.login("ana")
    contacts = desk.get("/agent/calls/CA99/context").json["contacts"]
    assert [c["notes"] for c in contacts] == ["call 6", "call 5", "call 4", "call 3", "call 2"]


def test_the_customer_page_finds_them_by_number_or_name_and_shows_the_whole_history(services, twilio, desk,
                                                                                    app) -> None:
    page = desk
    customer_id = _first_call_with_notes(services, twilio, page)
    by_name = page.get("/customers/?q=nunez").get_data(as_text=True)
    by_number = page.get("/customers/?q=600 111 222").get_data(as_text=True)
    assert f"/customers/{customer_id}" in by_name and f"/customers/{customer_id}" in by_number
    assert "Ningún cliente coincide" in page.get("/customers/?q=Smith").get_data(as_text=True)
    shown = page.get(f"/customers/{customer_id}").get_data(as_text=True)
    for seen in ("Lucía Núñez", "loo-THEE-a NOO-nyeth", "Widow; asked us never to call on Sundays.",
                 "Refund of the March invoice promised.", "Cambios en la ficha"):
        assert seen in shown
    agent_with_password(services, "sue", role="supervisor")
    supervisor = AgentPage(app.test_client())
    supervisor.login("sue")
    assert "Lucía Núñez" in supervisor.get(f"/customers/{customer_id}").get_data(as_text=True)
    assert app.test_client().get(f"/customers/{customer_id}").status_code == 401
    with services.db.session() as session:
        session.scalar(select(Agent).where(Agent.identity == "sue")).active = False
    assert supervisor.get(f"/customers/{customer_id}").status_code == 401, "a deactivated account sees nothing"
    assert page.get("/customers/999999").status_code == 404
    stale = page.post(f"/customers/{customer_id}/profile", {"name": "Lucia", "revision": 0})
    assert stale.status_code == 409 and "reload" in stale.json["error"]


def test_cli_sets_and_shows_a_customer(services, config) -> None:
    env = {"DATABASE_URL": config.database_url, "REDIS_URL": config.redis_url, "DIRECTO_DATA_DIR": config.data_dir,
           "TWILIO_AUTH_TOKEN": config.twilio_auth_token}
    runner = CliRunner()
    done = runner.invoke(main, ["customers", "set", "600 111 222", "--name", "Seán O'Brien", "--language", "en",
                                "--note", "Deaf in one ear: speak up.", "--by", "sue"], env=env)
    assert done.exit_code == 0 and "name, language, notes changed by sue" in done.output, done.output
    again = runner.invoke(main, ["customers", "set", CALLER, "--name", "Seán O'Brien"], env=env)
    assert "nothing changed" in again.output
    shown = json.loads(runner.invoke(main, ["customers", "show", CALLER, "--json"], env=env).output)
    assert shown["profile"] | {"changed": None, "id": 0} == {
        "id": 0, "number": CALLER, "name": "Seán O'Brien", "say_as": None, "language": "en",
        "notes": "Deaf in one ear: speak up.", "revision": 1, "forgotten_at": None, "changed": None}
    assert {c["field"] for c in shown["changes"]} == {"name", "language", "notes"}
    table = runner.invoke(main, ["customers", "show", CALLER], env=env).output
    assert "Seán O'Brien" in table and "Deaf in one ear" in table
    bad = runner.invoke(main, ["customers", "set", CALLER, "--name", "x" * 201], env=env)
    assert bad.exit_code == 1 and "at most 200 characters" in bad.output
    assert "no customer" in runner.invoke(main, ["customers", "show", "+34699999999"], env=env).output
