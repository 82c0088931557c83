"""The stand-in against Twilio's own OpenAPI description: same fields, same parameters, same status codes."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import requests

from standin import Answer, StandIn
from standin.api import ACCEPTED_PARAMS

from .helpers import AUTH_TOKEN, CUSTOMER, OUR_NUMBER, App

SHARED = Path(os.environ.get("DIRECTO_SHARED_DIR", Path(__file__).resolve().parents[2].parent / "shared"))
SPEC_PATH = SHARED / "twilio" / "twilio_api_v2010.json"
PREFIX = "/2010-04-01/Accounts/{AccountSid}"

pytestmark = pytest.mark.skipif(not SPEC_PATH.exists(), reason=f"Twilio's OpenAPI spec not found at {SPEC_PATH}")


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return json.loads(SPEC_PATH.read_text())


def schema(spec: dict[str, Any], name: str) -> dict[str, Any]:
    return spec["components"]["schemas"][name]


def operation(spec: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    return spec["paths"][PREFIX + path][method.lower()]


def defined_params(spec: dict[str, Any], method: str, path: str) -> set[str]:
    op = operation(spec, method, path)
    names = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
    body = op.get("requestBody", {}).get("content", {}).get("application/x-www-form-urlencoded", {})
    return names | set(body.get("schema", {}).get("properties", {}))


@pytest.mark.parametrize(("method", "path"), sorted(ACCEPTED_PARAMS))
def test_every_parameter_the_stand_in_reads_is_in_the_spec(spec, method: str, path: str):
    assert ACCEPTED_PARAMS[method, path] <= defined_params(spec, method, path)


def test_json_objects_have_exactly_the_spec_fields(spec, tw: StandIn, app: App):
    tw.network.set_behaviour(CUSTOMER, Answer(after=1.0, talk=None, speech_seconds=2.0, finish_key="#"))
    app.on("/answer", '<Response><Record action="/recorded"/></Response>')
    app.on("/recorded", '<Response><Pause length="600"/></Response>')
    auth = (tw.account_sid, AUTH_TOKEN)
    base = f"{tw.base_url}/2010-04-01/Accounts/{tw.account_sid}"

    def call_api(method: str, path: str, spec_path: str, **data: str) -> dict[str, Any]:
        """Call the stand-in; its status code must be one the spec gives for that operation."""
        response = requests.request(method, base + path, data=data or None, auth=auth, timeout=5)
        assert str(response.status_code) in operation(spec, method, spec_path)["responses"], response.text
        return response.json()

    created = call_api("POST", "/Calls.json", "/Calls.json", To=CUSTOMER, From=OUR_NUMBER, Url=app.url("/answer"))
    sid = created["sid"]
    tw.network.wait_until(lambda net: len(app.received("/recorded")) == 1)
    recording_sid = app.received("/recorded")[0]["RecordingSid"]
    call_recording = call_api("POST", f"/Calls/{sid}/Recordings.json", "/Calls/{CallSid}/Recordings.json")
    message = call_api("POST", "/Messages.json", "/Messages.json", To=CUSTOMER, From=OUR_NUMBER, Body="hi")
    objects = {
        "api.v2010.account.call": [
            created,
            call_api("GET", f"/Calls/{sid}.json", "/Calls/{Sid}.json"),
            call_api("POST", f"/Calls/{sid}.json", "/Calls/{Sid}.json", Status="completed"),
            *call_api("GET", "/Calls.json", "/Calls.json")["calls"],
        ],
        "api.v2010.account.call.call_recording": [
            call_recording,
            *call_api("GET", f"/Calls/{sid}/Recordings.json", "/Calls/{CallSid}/Recordings.json")["recordings"],
        ],
        "api.v2010.account.message": [
            message,
            call_api("GET", f"/Messages/{message['sid']}.json", "/Messages/{Sid}.json"),
            *call_api("GET", "/Messages.json", "/Messages.json")["messages"],
        ],
        "api.v2010.account.recording": [
            call_api("GET", f"/Recordings/{recording_sid}.json", "/Recordings/{Sid}.json"),
            *call_api("GET", "/Recordings.json", "/Recordings.json")["recordings"],
        ],
    }
    assert created["status"] == "queued" and len(objects["api.v2010.account.recording"]) == 3
    for name, found in objects.items():
        properties = schema(spec, name)["properties"]
        for obj in found:
            assert set(obj) == set(properties), name
            for field, value in obj.items():
                enum = properties[field].get("$ref", "").rsplit("/", 1)[-1]
                if enum and value is not None:
                    assert value in schema(spec, enum)["enum"], (name, field, value)


def test_list_envelopes_have_the_spec_fields(spec, tw: StandIn):
    auth = (tw.account_sid, AUTH_TOKEN)
    for path, key in (("/Calls.json", "calls"), ("/Messages.json", "messages"), ("/Recordings.json", "recordings")):
        envelope = requests.get(f"{tw.base_url}/2010-04-01/Accounts/{tw.account_sid}{path}", auth=auth, timeout=5)
        described = operation(spec, "GET", path)["responses"]["200"]["content"]["application/json"]["schema"]
        assert set(envelope.json()) <= set(described["properties"]) and key in envelope.json()
