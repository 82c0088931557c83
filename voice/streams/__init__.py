"""The live pages' event streams, served on the event loop (voice.web), so that no open page holds a thread."""

AGENT_EVENTS = "/agent/events"
BOARD_EVENTS = "/supervisor/board/events"
