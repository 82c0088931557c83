"""Several web processes behind a load balancer: webhooks are spread over them, signed over the public URL, and a
dead one is skipped."""

from __future__ import annotations

from standin import StandIn
from standin.balancer import Balancer

from .helpers import AUTH_TOKEN, CUSTOMER, OUR_NUMBER, App

PUBLIC = "http://127.0.0.1:1"  # where Twilio is told the app is; nothing listens there


def test_the_balancer_takes_backends_in_turn_and_leaves_other_urls_alone() -> None:
    balancer = Balancer({PUBLIC + "/": ["http://a:1", "http://b:2/"]})
    assert balancer.targets(PUBLIC + "/voice?x=1") == ["http://a:1/voice?x=1", "http://b:2/voice?x=1"]
    assert balancer.targets(PUBLIC + "/voice") == ["http://b:2/voice", "http://a:1/voice"]
    assert balancer.targets(PUBLIC + "0/voice") == [PUBLIC + "0/voice"], "another port is another host"
    assert balancer.targets("http://elsewhere/x") == ["http://elsewhere/x"]


def test_webhooks_are_spread_over_the_web_processes_and_a_dead_one_is_skipped() -> None:
    backends = [App(AUTH_TOKEN, public_base=PUBLIC) for _ in range(2)]
    with StandIn(auth_token=AUTH_TOKEN, time_scale=0.005, seed=7,
                 upstreams={PUBLIC: [b.base_url for b in backends]}) as tw:
        try:
            for backend in backends:
                backend.on("/voice", "<Response><Hangup/></Response>")
            calls = [tw.network.place_inbound_call(CUSTOMER, OUR_NUMBER, PUBLIC + "/voice").wait() for _ in range(6)]
            assert [len(backend.received("/voice")) for backend in backends] == [3, 3]
            assert all(r.signature_ok for backend in backends for r in backend.requests)
            backends[0].close()  # the host died
            late = [tw.network.place_inbound_call(CUSTOMER, OUR_NUMBER, PUBLIC + "/voice").wait() for _ in range(4)]
            assert len(backends[1].received("/voice")) == 3 + 4
            served = [event["served_by"] for call in calls + late for event in call.webhooks("voice")]
            assert all(event["status"] == 200 for call in late for event in call.webhooks("voice"))
            assert {url.rsplit("/", 1)[0] for url in served} == {b.base_url for b in backends}
        finally:
            backends[1].close()
