"""The agent's softphone page: login, presence, screen pop, complaint button, wrap-up."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("agent", __name__, url_prefix="/agent")
