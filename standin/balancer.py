"""A load balancer in front of several web processes: requests for a public base URL go to each backend in turn,
and one that cannot be reached (a dead host) is skipped, as a balancer's health checks would skip it."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Mapping, Sequence


class Balancer:
    """Public base URL -> backend base URLs; URLs under no public base go where they say."""

    def __init__(self, upstreams: Mapping[str, Sequence[str]] | None = None) -> None:
        self._upstreams = {public.rstrip("/"): [b.rstrip("/") for b in backends]
                           for public, backends in (upstreams or {}).items() if backends}
        self._turns = {public: itertools.count() for public in self._upstreams}
        self._lock = threading.Lock()

    def targets(self, url: str) -> list[str]:
        """Where to send a request for `url`, in the order to try them: the next backend in turn first."""
        for public, backends in self._upstreams.items():
            if url == public or url.startswith(public + "/") or url.startswith(public + "?"):
                with self._lock:
                    first = next(self._turns[public]) % len(backends)
                rest = url[len(public):]
                return [backend + rest for backend in backends[first:] + backends[:first]]
        return [url]
