"""Complaint figures: flag-to-committed latency, and pydub processing of a 2-minute recording.

Flagging commits the complaint (gap-free reference, audit entry, pending SMS) before anything is said or sent;
this times `recordings.complaints.flag` from call to committed return, per complaint, on a real database and
Redis. Then a 2-minute telephone recording (8 kHz WAV, as Twilio serves it) is normalised to each format.

    .venv/bin/python bench/complaints.py [--complaints 200] [--database-url URL]
"""

from __future__ import annotations

import argparse
import io
import math
import os
import random
import statistics
import time
import wave

from harness import percentile, private_stack
from sqlalchemy import insert

from directo.core.models import Call, utcnow
from directo.core.states import CallOutcome, Direction
from recordings.complaints import flag
from recordings.fetch import normalise


def speechlike_wav(seconds: int, rate: int = 8000) -> bytes:
    """Bursts of a wavering tone with pauses: closer to a voice than a steady sine, and reproducible."""
    rng = random.Random(42)
    frames = bytearray()
    for i in range(seconds * rate):
        talking = (i // (rate // 2)) % 3 != 2
        value = math.sin(2 * math.pi * (180 + 40 * math.sin(i / 900)) * i / rate) * (0.3 if talking else 0.0)
        frames += int(32767 * (value + rng.uniform(-0.01, 0.01))).to_bytes(2, "little", signed=True)
    out = io.BytesIO()
    with wave.open(out, "wb") as file:
        file.setnchannels(1)
        file.setsampwidth(2)
        file.setframerate(rate)
        file.writeframes(bytes(frames))
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--complaints", type=int, default=200)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()

    with private_stack(args.database_url, TWILIO_AUTH_TOKEN="bench") as (svc, _):
        now = utcnow()
        with svc.db.session() as session:
            session.execute(insert(Call), [
                {"call_sid": f"CA{i:032d}", "direction": Direction.INBOUND, "caller": f"+3460{i:07d}", "language": "es",
                 "started_at": now, "answered_at": now, "outcome": CallOutcome.ANSWERED, "dial_attempts": 1}
                for i in range(args.complaints)
            ])
        latencies = []
        for i in range(args.complaints):
            started = time.perf_counter()
            flag(svc, f"CA{i:032d}", "bench", summary="Factura duplicada", supervisor=True)
            latencies.append((time.perf_counter() - started) * 1000)
    print(f"complaints: {args.complaints} flags, database {svc.db.engine.dialect.name}, {os.cpu_count()} cores")
    print(f"flag → committed: p50 {statistics.median(latencies):.1f} ms, p95 {percentile(latencies, 95):.1f} ms, "
          f"max {max(latencies):.1f} ms")

    media = speechlike_wav(120)
    for fmt in ("mp3", "wav"):
        timings = []
        for _ in range(3):
            started = time.perf_counter()
            normalise(media, fmt, 8000)
            timings.append(time.perf_counter() - started)
        print(f"normalising a 2-minute recording to {fmt}: best {min(timings):.2f} s, "
              f"median {statistics.median(timings):.2f} s (target: under 1 s)")


if __name__ == "__main__":
    main()
