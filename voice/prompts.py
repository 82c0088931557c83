"""What callers hear, in their language. Short sentences: they are spoken by a text-to-speech voice."""

from __future__ import annotations

# The <Say language> for each language we serve.
SAY_LANGUAGE = {"es": "es-ES", "en": "en-GB"}

PROMPTS: dict[str, dict[str, str]] = {
    "es": {
        "nobody_free": (
            "Gracias por llamar. En este momento todas las personas de nuestro equipo están atendiendo "
            "otras llamadas y no queremos tenerle esperando. Por favor, llámenos de nuevo en unos minutos. "
            "Disculpe las molestias."
        ),
        "trouble": (
            "Lo sentimos, tenemos un problema técnico y no podemos atender su llamada ahora mismo. "
            "Por favor, llámenos de nuevo en unos minutos."
        ),
        "nobody_answered": (
            "Lo sentimos, no hemos podido ponerle con una persona ahora mismo. "
            "Por favor, llámenos de nuevo en unos minutos."
        ),
    },
    "en": {
        "nobody_free": (
            "Thank you for calling. Everyone on our team is helping other callers right now, and we "
            "don't want to keep you waiting. Please call us again in a few minutes. We're sorry for the trouble."
        ),
        "trouble": (
            "We're sorry, we have a technical problem and cannot take your call right now. "
            "Please call us again in a few minutes."
        ),
        "nobody_answered": (
            "We're sorry, we could not connect you with a person just now. Please call us again in a few minutes."
        ),
    },
}


def text(language: str, key: str, **values: object) -> str:
    """The prompt in the caller's language; English when a language has no such prompt yet."""
    table = PROMPTS.get(language, PROMPTS["en"])
    return table.get(key, PROMPTS["en"][key]).format(**values)


def say_language(language: str) -> str:
    return SAY_LANGUAGE.get(language, SAY_LANGUAGE["en"])
