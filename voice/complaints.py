"""Complaint endpoints: flagging by the agent, and Twilio's SMS and recording callbacks for complaints."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("complaints", __name__)
