"""Outbound SMS: queued → sending → sent → delivered (or failed/undelivered), in virtual time."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from .model import Callback, Message

if TYPE_CHECKING:
    from .network import Network

MESSAGING_SERVICE_NUMBER = "+15005550006"  # the sender a Messaging Service picks in the stand-in
DELIVERED = [("sending", 0.2), ("sent", 0.8), ("delivered", 2.0)]  # status, virtual seconds after the previous
CARRIER_ERRORS = {
    30003: "Unreachable destination handset",
    30005: "Unknown destination handset",
    30006: "Landline or unreachable carrier",
    30007: "Message filtered",
    30008: "Unknown error",
}
CALLBACK_STATUSES = ("sent", "delivered", "undelivered", "failed")


class SmsCenter:
    """The messages sent through the REST API and their delivery."""

    def __init__(self, network: Network) -> None:
        self.network = network
        self._messages: dict[str, Message] = {}
        self._lock = threading.Lock()

    @property
    def messages(self) -> list[Message]:
        with self._lock:
            return list(self._messages.values())

    def message(self, sid: str) -> Message | None:
        with self._lock:
            return self._messages.get(sid)

    def send(
        self,
        *,
        to: str,
        from_: str | None,
        body: str,
        messaging_service_sid: str | None,
        callback: Callback | None,
        num_media: int = 0,
    ) -> Message:
        """Accept a message; its later statuses happen on the virtual clock, each reported to `callback`."""
        network = self.network
        now = network.scheduler.now
        message = Message(
            sid=network.sids.new("SM"),
            account_sid=network.account_sid,
            to=to,
            from_=from_,
            body=body,
            messaging_service_sid=messaging_service_sid,
            callback=callback,
            created_at=now,
            updated_at=now,
            num_media=num_media,
        )
        # a Messaging Service first accepts the message, then picks a sender
        message.status = "accepted" if messaging_service_sid and not from_ else "queued"
        message.history.append((now, message.status))
        with self._lock:
            self._messages[message.sid] = message
        network.record(message, "message.status", status=message.status)
        undelivery = network.faults.take_undelivery()
        steps = DELIVERED
        if undelivery is not None:
            steps = (
                [DELIVERED[0], ("failed", 0.8)]
                if undelivery.status == "failed"
                else [*DELIVERED[:2], ("undelivered", 2.0)]
            )
        delay = 0.0
        for status, step in steps:
            delay += step
            error_code = undelivery.error_code if undelivery and status in ("failed", "undelivered") else None
            network.scheduler.at(delay, lambda s=status, e=error_code: self._advance(message, s, e))
        return message

    def _advance(self, message: Message, status: str, error_code: int | None) -> None:
        network = self.network
        now = network.scheduler.now
        with network.changed:
            message.from_ = message.from_ or MESSAGING_SERVICE_NUMBER
            message.status = status
            message.updated_at = now
            message.history.append((now, status))
            if status == "sent":
                message.sent_at = now
            if error_code is not None:
                message.error_code = error_code
                message.error_message = CARRIER_ERRORS.get(error_code, "Message delivery failed")
        network.record(message, "message.status", status=status)
        if message.callback is None or status not in CALLBACK_STATUSES:
            return
        params = {
            "AccountSid": message.account_sid,
            "ApiVersion": "2010-04-01",
            "From": message.from_ or "",
            "MessageSid": message.sid,
            "MessageStatus": status,
            "SmsSid": message.sid,
            "SmsStatus": status,
            "To": message.to,
        }
        if message.messaging_service_sid:
            params["MessagingServiceSid"] = message.messaging_service_sid
        if error_code is not None:
            params["ErrorCode"] = str(error_code)
        network.callback(message, "message_status_callback", message.callback, params)
