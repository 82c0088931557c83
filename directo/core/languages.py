"""The languages Directo serves callers in, and how Twilio's text-to-speech is asked to speak each."""

from __future__ import annotations

SUPPORTED_LANGUAGES = ("es", "en")
# The <Say language> for each language we serve.
SAY_LANGUAGE = {"es": "es-ES", "en": "en-GB"}


def say_language(language: str) -> str:
    return SAY_LANGUAGE.get(language, SAY_LANGUAGE["en"])
