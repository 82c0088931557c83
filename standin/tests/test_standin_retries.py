"""Twilio's connection retry: a webhook whose connection fails is tried again (once by default, `#rc=N`)."""

from __future__ import annotations

import socket
import threading

from standin import StandIn

TWIML = b'<?xml version="1.0" encoding="UTF-8"?><Response><Hangup/></Response>'


class FlakyServer:
    """Closes the first `drops` connections without answering (a keep-alive race), then answers TwiML."""

    def __init__(self, drops: int) -> None:
        self.drops = drops
        self.connections = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/voice"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                self.connections += 1
                conn.recv(65536)
                if self.connections > self.drops:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nConnection: close\r\n"
                                 b"Content-Length: " + str(len(TWIML)).encode() + b"\r\n\r\n" + TWIML)

    def close(self) -> None:
        self.sock.close()


def test_a_dropped_connection_is_tried_again_once_by_default() -> None:
    server = FlakyServer(drops=1)
    with StandIn(time_scale=0.01) as tw:
        call = tw.network.place_inbound_call("+34600111222", "+34910000000", server.url).wait(10)
    server.close()
    assert server.connections == 2 and not call.errors


def test_rc_zero_means_no_retry_and_twilio_error_11205() -> None:
    server = FlakyServer(drops=1)
    with StandIn(time_scale=0.01) as tw:
        call = tw.network.place_inbound_call("+34600111222", "+34910000000", server.url + "#rc=0").wait(10)
    server.close()
    assert server.connections == 1 and [e["code"] for e in call.errors] == [11205]
