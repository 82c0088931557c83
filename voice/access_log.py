"""The access log without secrets: a media link's token is as good as the recording to whoever reads the log."""

from __future__ import annotations

import logging
import re

# /media/recordings/<id>/<expires>/<token>: the log keeps which recording was fetched, and until when.
MEDIA_TOKEN = re.compile(r"(/media/recordings/\d+/\d+/)[^/?#\s\"]+")


def redact(text: str) -> str:
    return MEDIA_TOKEN.sub(r"\1[redacted]", text)


class RedactMediaTokens(logging.Filter):
    """On the web process's access log (uvicorn's, written through gunicorn's handlers): every line, and every
    value it is built from (the request's path among them), has its media tokens redacted before it is written."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(value) if isinstance(value, str) else value for value in record.args)
        return True
