"""What RQ jobs run with: the services of this worker process, built from the environment on first use.

Jobs are module-level functions taking primitive ids; they reload state through `current_services()`, so
they are safe to run twice and in any worker. Tests running jobs in-process hand their services over with
`use_services()`.
"""

from __future__ import annotations

from directo.core.config import Config
from directo.core.services import Services

_services: Services | None = None


def use_services(services: Services | None) -> None:
    global _services
    _services = services


def current_services() -> Services:
    global _services
    if _services is None:
        _services = Services.build(Config.from_env())
    return _services
