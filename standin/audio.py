"""Small real audio for the stand-in, so recordings are WAV files a real decoder can open."""

from __future__ import annotations

import io
import logging
import math
import random
import shutil
import struct
import subprocess
import wave
from array import array
from dataclasses import dataclass

log = logging.getLogger(__name__)

SAMPLE_RATE = 8000  # Twilio records telephone audio: 8 kHz, 16-bit PCM
SAY_SECONDS_PER_CHAR = 0.07  # about 150 words a minute, a typical text-to-speech pace
_SYLLABLE = 0.2


def say_seconds(text: str) -> float:
    """How long text-to-speech takes to speak `text`."""
    return max(0.5, len(text.strip()) * SAY_SECONDS_PER_CHAR)


def _tone(seconds: float, freq: float, amplitude: float) -> array:
    count = round(seconds * SAMPLE_RATE)
    step = 2 * math.pi * freq / SAMPLE_RATE
    # a raised-cosine envelope keeps syllables from clicking
    return array(
        "h",
        (
            int(amplitude * math.sin(step * i) * (0.5 - 0.5 * math.cos(2 * math.pi * i / max(count, 1))))
            for i in range(count)
        ),
    )


_SYLLABLES = [_tone(_SYLLABLE, freq, 9000) for freq in (140, 180, 220, 260, 310, 370)]
_VOWELS = [_tone(_SYLLABLE, freq, 7000) for freq in (400, 520, 640, 760)]


def silence(seconds: float) -> array:
    """PCM samples of silence."""
    return array("h", bytes(2 * max(0, round(seconds * SAMPLE_RATE))))


def speech(seconds: float, seed: int) -> array:
    """Speech-like PCM: syllable bursts with short gaps, deterministic for a seed."""
    rng = random.Random(seed)
    out = array("h")
    target = round(seconds * SAMPLE_RATE)
    while len(out) < target:
        out.extend(rng.choice(_SYLLABLES))
        if rng.random() < 0.25:
            out.extend(silence(rng.choice((0.05, 0.1, 0.15))))
    del out[target:]
    return out


def say(text: str) -> array:
    """PCM standing in for text-to-speech of `text`: one vowel-like tone per character group."""
    out = array("h")
    target = round(say_seconds(text) * SAMPLE_RATE)
    codes = [ord(c) for c in text] or [0]
    index = 0
    while len(out) < target:
        out.extend(_VOWELS[codes[index % len(codes)] % len(_VOWELS)])
        index += 1
    del out[target:]
    return out


def beep() -> array:
    """The beep <Record> plays before recording."""
    return _tone(0.5, 1000, 8000)


@dataclass(frozen=True)
class Segment:
    """A stretch of sound on a call: when it starts (virtual s), its samples, and who produced it."""

    start: float
    samples: array
    side: int  # 0: the party on this leg (and what Twilio plays to it), 1: the party bridged to it


def conversation(start: float, end: float, seed: int) -> list[Segment]:
    """Two bridged parties taking turns to talk between `start` and `end`."""
    rng = random.Random(seed)
    segments, at, side = [], start, 0
    while at < end:
        turn = min(rng.uniform(1.5, 4.0), end - at)
        segments.append(Segment(at, speech(turn, rng.getrandbits(32)), side))
        at += turn + 0.3
        side = 1 - side
    return segments


def samples_of(data: bytes) -> array | None:
    """The samples of a WAV that is 8 kHz 16-bit mono (what a call carries), else None."""
    try:
        with wave.open(io.BytesIO(data), "rb") as source:
            if (source.getframerate(), source.getsampwidth(), source.getnchannels()) != (SAMPLE_RATE, 2, 1):
                return None
            return array("h", source.readframes(source.getnframes()))
    except (wave.Error, EOFError, struct.error):
        return None


def render(segments: list[Segment], start: float, end: float, channels: int) -> bytes:
    """A WAV of the window [start, end]: mono mixes both sides, dual puts each side in its own channel."""
    length = max(0, round((end - start) * SAMPLE_RATE))
    tracks = [array("h", bytes(2 * length)) for _ in range(channels)]
    for segment in segments:
        offset = round((segment.start - start) * SAMPLE_RATE)
        samples = segment.samples
        if offset < 0:
            samples, offset = samples[-offset:], 0
        samples = samples[: max(0, length - offset)]
        if samples:
            track = tracks[min(segment.side, channels - 1)]
            track[offset : offset + len(samples)] = samples
    if channels == 1:
        return wav(tracks[0], 1)
    interleaved = array("h", bytes(2 * length * channels))
    for index, track in enumerate(tracks):
        interleaved[index::channels] = track
    return wav(interleaved, channels)


def wav(samples: array, channels: int = 1) -> bytes:
    """Wrap 16-bit PCM samples in a WAV container."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(samples.tobytes())
    return buffer.getvalue()


def wav_seconds(data: bytes) -> float | None:
    """Duration of a WAV file, or None if it is not one."""
    try:
        with wave.open(io.BytesIO(data), "rb") as source:
            return source.getnframes() / float(source.getframerate())
    except (wave.Error, EOFError, struct.error):
        return None


def media_seconds(data: bytes, content_type: str) -> float:
    """Playing time of fetched media: exact for WAV, estimated at 128 kbit/s for compressed audio."""
    seconds = wav_seconds(data)
    if seconds is not None:
        return seconds
    if content_type.startswith("audio/"):
        return len(data) / 16000
    return 1.0


def ffmpeg_executable() -> str | None:
    """The static ffmpeg of imageio-ffmpeg if installed, else one on PATH."""
    try:
        import imageio_ffmpeg
    except ImportError:
        return shutil.which("ffmpeg")
    return imageio_ffmpeg.get_ffmpeg_exe()


def to_mp3(data: bytes) -> bytes | None:
    """Encode a WAV as MP3 with ffmpeg; None when ffmpeg is unavailable or fails."""
    executable = ffmpeg_executable()
    if executable is None:
        return None
    try:
        result = subprocess.run(
            [executable, "-loglevel", "error", "-f", "wav", "-i", "pipe:0", "-f", "mp3", "pipe:1"],
            input=data,
            capture_output=True,
            timeout=30,
            check=True,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("mp3 encoding failed: %s", exc)
        return None
    return result.stdout
