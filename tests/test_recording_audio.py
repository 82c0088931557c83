"""Recording normalisation on real audio: one format, one rate, one loudness; broken or silent audio refused."""

from __future__ import annotations

import io
import math
import struct
import wave

import pytest
from pydub import AudioSegment

from recordings.fetch import PEAK_CEILING_DBFS, TARGET_DBFS, BadMedia, normalise


def wav(seconds: float, *, rate: int = 8000, channels: int = 1, amplitude: float = 0.05) -> bytes:
    """A real WAV file: a 440 Hz tone at the given level (a quiet speaker, by default)."""
    frames = int(seconds * rate)
    samples = (int(32767 * amplitude * math.sin(2 * math.pi * 440 * i / rate)) for i in range(frames))
    pcm = b"".join(struct.pack("<" + "h" * channels, *([s] * channels)) for s in samples)
    out = io.BytesIO()
    with wave.open(out, "wb") as file:
        file.setnchannels(channels)
        file.setsampwidth(2)
        file.setframerate(rate)
        file.writeframes(pcm)
    return out.getvalue()


@pytest.mark.parametrize("fmt", ["mp3", "wav"])
def test_quiet_stereo_audio_becomes_mono_at_the_rate_and_loudness_asked(fmt) -> None:
    data, duration_ms = normalise(wav(3.0, rate=16000, channels=2, amplitude=0.02), fmt, 8000)
    audio = AudioSegment.from_file(io.BytesIO(data), format=fmt, codec="mp3" if fmt == "mp3" else None)
    assert (audio.channels, audio.frame_rate) == (1, 8000)
    assert duration_ms == 3000
    assert audio.dBFS == pytest.approx(TARGET_DBFS, abs=1.0)


def test_gain_never_clips_a_loud_peak() -> None:
    quiet_with_a_shout = AudioSegment.from_file(io.BytesIO(wav(2.0, amplitude=0.01)), format="wav").overlay(
        AudioSegment.from_file(io.BytesIO(wav(0.05, amplitude=0.9)), format="wav"))
    out = io.BytesIO()
    quiet_with_a_shout.export(out, format="wav")
    data, _ = normalise(out.getvalue(), "wav", 8000)
    assert AudioSegment.from_file(io.BytesIO(data), format="wav").max_dBFS <= PEAK_CEILING_DBFS + 0.1


@pytest.mark.parametrize(
    ("media", "why"),
    [
        (b"", "not a WAV"),
        (b"RIFF\x00\x00garbage" * 10, "not a WAV"),
        (wav(2.0)[:-4000], "truncated"),
        (wav(2.0, amplitude=0.0), "silent"),
    ],
)
def test_broken_empty_or_silent_audio_is_never_proof(media, why) -> None:
    with pytest.raises(BadMedia, match=why):
        normalise(media, "mp3", 8000)
