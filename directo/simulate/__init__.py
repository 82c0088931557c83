"""`directo simulate`: a call-center day against a running server, through the Twilio stand-in."""

from __future__ import annotations

from .run import Options, Simulation
from .summary import Summary

__all__ = ["Options", "Simulation", "Summary"]
