"""Who calls: a seeded population where some customers call again and most speak the default language."""

from __future__ import annotations

import random
from dataclasses import dataclass

# The app guesses a first caller's language from their country: Spanish mobiles and British mobiles.
PREFIXES = {"es": "+346", "en": "+4477"}


@dataclass(frozen=True)
class Caller:
    number: str
    language: str


class Population:
    """New callers keep arriving; a share of calls come from people who called before (they have an agent)."""

    def __init__(self, rng: random.Random, *, repeat_share: float = 0.4, other_language_share: float = 0.25,
                 languages: tuple[str, str] = ("es", "en")) -> None:
        self.rng = rng
        self.repeat_share = repeat_share
        self.other_language_share = other_language_share
        self.languages = languages
        self.known: list[Caller] = []
        self._used: set[str] = set()

    def next_caller(self) -> Caller:
        if self.known and self.rng.random() < self.repeat_share:
            return self.rng.choice(self.known)
        language = self._language()
        caller = Caller(self._fresh_number(PREFIXES[language]), language)
        self.known.append(caller)
        return caller

    def _language(self) -> str:
        main, other = self.languages
        return other if self.rng.random() < self.other_language_share else main

    def _fresh_number(self, prefix: str) -> str:
        while True:
            number = f"{prefix}{self.rng.randrange(10**8):08d}"
            if number not in self._used:
                self._used.add(number)
                return number
