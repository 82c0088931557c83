"""The text a customer gets when their complaint's resolution could not be told on the phone inside the deadline:
the reference and the resolution in one or two sentences, in their language."""

from __future__ import annotations

TEXT = {
    "es": "Reclamación {reference}: {explanation} Le ofrecemos: {remedy} Si quiere hablarlo, llámenos con su "
          "referencia.",
    "en": "Complaint {reference}: {explanation} Our remedy: {remedy} To talk it over, call us and quote your "
          "reference.",
}


def _sentence(words: str) -> str:
    """The agent's words as one sentence: collapsed spaces, a full stop if they gave none."""
    words = " ".join(words.split())
    return words if words.endswith((".", "!", "?")) else words + "."


def sms_body(language: str, reference: str, explanation: str, remedy: str) -> str:
    return TEXT.get(language, TEXT["en"]).format(reference=reference, explanation=_sentence(explanation),
                                                 remedy=_sentence(remedy))
