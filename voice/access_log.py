"""gunicorn's access log without secrets: a media link's token is as good as the recording to whoever reads it."""

from __future__ import annotations

import re
from typing import Any

from gunicorn.glogging import Logger

# /media/recordings/<id>/<expires>/<token>: the log keeps which recording was fetched, and until when.
MEDIA_TOKEN = re.compile(r"(/media/recordings/\d+/\d+/)[^/?#\s\"]+")


class RedactingLogger(Logger):
    """Every value the access log format can name (request line, path, raw URI, headers) is redacted."""

    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> dict[str, Any]:
        atoms = super().atoms(resp, req, environ, request_time)
        return {key: MEDIA_TOKEN.sub(r"\1[redacted]", value) if isinstance(value, str) else value
                for key, value in atoms.items()}
