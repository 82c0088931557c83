"""How a simulated phone or client behaves when it is called, and what it says and keys in."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class Behaviour:
    """What the party on a leg does: speech and keys it uses in <Record> and <Gather>."""

    speech_seconds: float = 3.0  # how long it talks when <Record> records it
    audio: bytes | None = None  # a WAV to use as its recorded voice instead of synthesised speech
    finish_key: str | None = None  # key pressed after speaking in <Record>, if any
    hangup_after_speech: bool = False  # hangs up after speaking in <Record> instead of waiting
    digits: tuple[str, ...] = ()  # keyed into successive <Gather>s, e.g. ("1", "1234#")
    speech: tuple[str, ...] = ()  # said into successive <Gather input="speech">s


@dataclass(frozen=True, kw_only=True)
class Answer(Behaviour):
    """Rings `after` seconds, answers, and hangs up `talk` seconds later (None: never hangs up first)."""

    after: float = 1.0
    talk: float | None = 30.0


@dataclass(frozen=True, kw_only=True)
class NoAnswer(Behaviour):
    """Rings until the caller gives up (Dial or Calls timeout)."""


@dataclass(frozen=True, kw_only=True)
class Busy(Behaviour):
    """Answers with a busy signal after `after` seconds (also what a client declining looks like)."""

    after: float = 0.5


@dataclass(frozen=True, kw_only=True)
class Fail(Behaviour):
    """The network cannot reach it (unknown number, offline client): the call fails after `after` seconds."""

    after: float = 0.0
