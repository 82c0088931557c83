"""What callers hear, in their language. Short sentences: they are spoken by a text-to-speech voice."""

from __future__ import annotations

from directo.core.states import CallbackKind

# What the agent hears first when a callback rings them, by why we owe the call.
WHISPER = {
    CallbackKind.CALL_BACK: "whisper",
    CallbackKind.PROMISE: "whisper_promise",
    CallbackKind.COMPLAINT_TOLD: "whisper_complaint_told",
    CallbackKind.COMPLAINT_FOLLOWUP: "whisper_complaint_followup",
}

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
        "callback_promise": (
            "Gracias por llamar. Ahora mismo todas las personas de nuestro equipo están atendiendo otras llamadas, "
            "así que no le haremos esperar: una persona le llamará a este mismo número en menos de {minutes} "
            "minutos."
        ),
        "callback_reason": (
            "Si quiere, díganos después del tono de qué se trata, y cuelgue cuando termine. "
            "Así no tendrá que repetirlo."
        ),
        "callback_already": (
            "Gracias por llamar. Ya tenemos su petición: una persona le llamará a este número antes de "
            "{minutes} minutos. No tiene que hacer nada más."
        ),
        "callback_thanks": "Gracias. Le llamaremos muy pronto. Hasta luego.",
        "whisper": "Devolución de llamada a {who}.",
        "whisper_promise": "Llamada prometida a {who}, sobre: {about}.",
        "whisper_complaint_told": "Reclamación {reference} de {who}: explíquele la solución.",
        "whisper_complaint_followup": "Seguimiento de la reclamación {reference} de {who}: pregúntele si la "
                                      "solución ha funcionado.",
        "whisper_reason": "Nos dijo:",
        "whisper_no_reason": "No dejó mensaje.",
        "customer_missed": "El cliente no ha contestado.",
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
        "callback_promise": (
            "Thank you for calling. Everyone on our team is helping other callers right now, so we won't keep you "
            "waiting: a person will call you back at this number within {minutes} minutes."
        ),
        "callback_reason": (
            "If you like, tell us what it is about after the tone, and hang up when you're done. "
            "That way you won't have to repeat yourself."
        ),
        "callback_already": (
            "Thank you for calling. We already have your request: a person will call you back at this number "
            "within {minutes} minutes. There is nothing else you need to do."
        ),
        "callback_thanks": "Thank you. We'll call you back very soon. Goodbye.",
        "whisper": "Callback to {who}.",
        "whisper_promise": "Promised call to {who}, about: {about}.",
        "whisper_complaint_told": "Complaint {reference} from {who}: explain the resolution.",
        "whisper_complaint_followup": "Follow-up of complaint {reference} from {who}: ask whether the remedy worked.",
        "whisper_reason": "They said:",
        "whisper_no_reason": "They left no message.",
        "customer_missed": "The customer did not answer.",
    },
}


def text(language: str, key: str, **values: object) -> str:
    """The prompt in the caller's language; English when a language has no such prompt yet."""
    table = PROMPTS.get(language, PROMPTS["en"])
    return table.get(key, PROMPTS["en"][key]).format(**values)

