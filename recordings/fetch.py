"""Complaint acknowledgement recordings: Twilio's status callback, then an RQ job that fetches, checks,
normalises (pydub) and stores the audio by content, retried until stored."""

from __future__ import annotations

import io
import logging
import struct
import warnings
import wave
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

import imageio_ffmpeg
import requests
from rq import Retry
from sqlalchemy import select
from twilio.twiml.voice_response import VoiceResponse

from directo.core.config import Config
from directo.core.jobs import current_services
from directo.core.models import Complaint, Recording, utcnow
from directo.core.services import Services
from directo.core.states import RecordingState, RecordingStatus
from directo.core.unit_of_work import Unit
from recordings import audit
from recordings.attempts import describe, enqueue_once, last_attempt
from recordings.storage import LocalStorage

with warnings.catch_warnings():  # pydub warns at import about ffmpeg and audioop; WAV in memory needs neither
    warnings.simplefilter("ignore", RuntimeWarning)
    warnings.simplefilter("ignore", DeprecationWarning)
    from pydub import AudioSegment

logger = logging.getLogger(__name__)

KIND = "acknowledgement"
# Every stored recording becomes mono 16-bit at the configured rate, at one loudness, so they compare and play alike.
SAMPLE_WIDTH, CHANNELS = 2, 1
# Speech loudness to aim for, and the peak it must never pass (no clipping added by the gain).
TARGET_DBFS, PEAK_CEILING_DBFS = -20.0, -1.0
MP3_BITRATE = "48k"
AudioSegment.converter = imageio_ffmpeg.get_ffmpeg_exe()  # a static ffmpeg from PyPI: no system package needed
FETCH_TIMEOUT = 30
FETCH_RETRY = Retry(max=6, interval=[10, 30, 60, 300, 900, 3600])
# What Twilio says of a recording -> our copy's state: a completed one is ours to fetch.
TERMINAL = {RecordingStatus.COMPLETED: RecordingState.PENDING, RecordingStatus.ABSENT: RecordingState.ABSENT,
            RecordingStatus.FAILED: RecordingState.FAILED}
TWILIO_API = "https://api.twilio.com"


class BadMedia(ValueError):
    """What Twilio served is not a whole WAV file; fetching again may get the whole one."""


class UntrustedMediaUrl(ValueError):
    """A recording URL outside the configured Twilio API host: the account's credentials are never sent there."""


def recording_status(unit: Unit, svc: Services, complaint_id: int, form: Mapping[str, str]) -> VoiceResponse:
    """A recording of an acknowledgement changed state: keep its record, and fetch it once it is complete."""
    status = form.get("RecordingStatus", "")
    session = unit.session
    complaint = session.get(Complaint, complaint_id)
    if complaint is None or status not in TERMINAL:
        return VoiceResponse()
    sid = form.get("RecordingSid", "")
    recording = session.scalar(select(Recording).where(Recording.twilio_sid == sid))
    if recording is None:
        recording = Recording(twilio_sid=sid, call_sid=form.get("CallSid"), kind=KIND,
                              source_url=form.get("RecordingUrl", ""), attempts=0)
        session.add(recording)
    recording.state = TERMINAL[status]
    recording.last_error = form.get("ErrorCode") if status != RecordingStatus.COMPLETED else None
    session.flush()
    complaint.recording_id = recording.id
    audit.append(session, f"recording-{status}", {"reference": complaint.reference, "recording_sid": sid,
                                                   "duration": form.get("RecordingDuration")}, complaint.id)
    if status == RecordingStatus.COMPLETED:
        recording_id = recording.id
        unit.after_commit.append(lambda: enqueue_fetch(svc, recording_id))
    return VoiceResponse()


def enqueue_fetch(svc: Services, recording_id: int) -> bool:
    """Any recording (acknowledgements, callback reasons); a fetch already queued for it is not doubled."""
    return enqueue_once(svc.queue, f"fetch-recording-{recording_id}", fetch_recording, recording_id,
                        retry=FETCH_RETRY, job_timeout=120)


def fetch_recording(recording_id: int) -> str | None:
    """RQ job: download, check, normalise and store one recording; a stored one is left alone (safe to rerun)."""
    svc = current_services()
    with svc.db.session() as session:
        recording = session.get(Recording, recording_id)
        if recording is None or recording.state == RecordingState.STORED:
            return None
        url, sid = recording.source_url, recording.twilio_sid
        recording.attempts += 1
    try:
        media = download(svc, url)
        fmt = svc.config.recording_format
        normalised, duration_ms = normalise(media, fmt, svc.config.recording_sample_rate)
        stored = LocalStorage(svc.config.recordings_dir).put(normalised, fmt)
    except UntrustedMediaUrl as refused:
        logger.error("recording %s: %s", sid, refused)
        _refused(svc, recording_id, str(refused))
        return None  # fetching again would never be allowed: no retry
    except Exception as error:
        logger.exception("recording %s: fetch failed", sid)
        _failed(svc, recording_id, error)
        raise
    with svc.db.session() as session:
        recording = session.get(Recording, recording_id)
        recording.state, recording.sha256, recording.path = RecordingState.STORED, stored.sha256, stored.path
        recording.format, recording.size_bytes, recording.duration_ms = fmt, stored.size, duration_ms
        recording.stored_at, recording.last_error = utcnow(), None
        complaint_id = session.scalar(select(Complaint.id).where(Complaint.recording_id == recording_id))
        if complaint_id is not None:  # the audit log is the complaints' record; callback reasons are not in it
            audit.append(session, "recording-stored", {"recording_sid": sid, "sha256": stored.sha256,
                                                       "duration_ms": duration_ms}, complaint_id)
    logger.info("recording %s stored as %s", sid, stored.path)
    return stored.sha256


def _failed(svc: Services, recording_id: int, error: Exception) -> None:
    """Note why; on the last attempt the recording is marked failed, in the register and the audit log."""
    with svc.db.session() as session:
        recording = session.get(Recording, recording_id)
        recording.last_error = describe(error)
        if last_attempt():
            recording.state = RecordingState.FAILED
            complaint_id = session.scalar(select(Complaint.id).where(Complaint.recording_id == recording_id))
            if complaint_id is not None:
                audit.append(session, "recording-fetch-failed", {"recording_sid": recording.twilio_sid,
                                                                 "error": recording.last_error}, complaint_id)


def _refused(svc: Services, recording_id: int, why: str) -> None:
    with svc.db.session() as session:
        recording = session.get(Recording, recording_id)
        recording.state, recording.last_error = RecordingState.FAILED, why[:500]
        complaint_id = session.scalar(select(Complaint.id).where(Complaint.recording_id == recording_id))
        if complaint_id is not None:
            audit.append(session, "recording-fetch-refused", {"recording_sid": recording.twilio_sid, "error": why},
                         complaint_id)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    default_port = {"https": 443, "http": 80}.get(parts.scheme)
    try:
        port = parts.port or default_port
    except ValueError:  # a port that is not a number
        port = None
    return parts.scheme, (parts.hostname or "").lower(), port


def twilio_media_url(config: Config, url: str) -> str:
    """The URL of a recording's WAV, if it is on the Twilio API host Directo is configured for (api.twilio.com, or
    TWILIO_API_BASE_URL); anything else a callback named is refused, so the credentials never go there."""
    allowed = _origin(config.twilio_api_base_url or TWILIO_API)
    parts = urlsplit(url)
    if _origin(url) != allowed or parts.username is not None or parts.password is not None:
        raise UntrustedMediaUrl(f"recording URL {url[:200]!r} is not on {allowed[0]}://{allowed[1]}: not fetched")
    return url if parts.path.endswith(".wav") else urlunsplit(parts._replace(path=parts.path + ".wav"))


def download(svc: Services, url: str) -> bytes:
    """The WAV media (Twilio serves WAV at the bare URL and at .wav), with the account's credentials."""
    config = svc.config
    response = requests.get(twilio_media_url(config, url), auth=(config.twilio_account_sid, config.twilio_auth_token),
                            timeout=FETCH_TIMEOUT)
    response.raise_for_status()
    return response.content


def normalise(media: bytes, fmt: str = "mp3", sample_rate: int = 8000) -> tuple[bytes, int]:
    """Whole WAV in; mono, `sample_rate`, loudness-normalised `fmt` out (and its length in ms).

    Anything broken, empty or silent raises BadMedia: it must never be stored as proof.
    """
    try:
        with wave.open(io.BytesIO(media), "rb") as source:
            width, rate, channels, frames = (source.getsampwidth(), source.getframerate(), source.getnchannels(),
                                             source.getnframes())
            pcm = source.readframes(frames)
    except (wave.Error, EOFError, struct.error) as error:
        raise BadMedia(f"not a WAV file: {error}") from error
    if len(pcm) != frames * width * channels or not frames:
        raise BadMedia(f"truncated or empty: {len(pcm)} of {frames * width * channels} bytes of audio")
    segment = AudioSegment(data=pcm, sample_width=width, frame_rate=rate, channels=channels)
    segment = segment.set_channels(CHANNELS).set_frame_rate(sample_rate).set_sample_width(SAMPLE_WIDTH)
    if segment.max == 0:
        raise BadMedia("silent: the recording holds no sound")
    gain = min(TARGET_DBFS - segment.dBFS, PEAK_CEILING_DBFS - segment.max_dBFS)
    segment = segment.apply_gain(gain)
    out = io.BytesIO()
    if fmt == "mp3":
        segment.export(out, format="mp3", bitrate=MP3_BITRATE)
    else:
        segment.export(out, format="wav")
    return out.getvalue(), len(segment)
