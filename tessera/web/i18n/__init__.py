"""The web app's words in English and French: one JSON catalog per language (``en.json``, ``fr.json``).

A page's language is the ``tessera_lang`` cookie (the switch in the header), else the browser's
``Accept-Language``, else English. Keys are short dotted names; a text may hold ``{name}``
placeholders. ``tests/web/test_i18n.py`` checks that both catalogs have the same keys and
placeholders and that every key used by a template exists.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

LANGUAGES = ("en", "fr")
DEFAULT = "en"
COOKIE = "tessera_lang"
HERE = Path(__file__).resolve().parent


@lru_cache(maxsize=None)
def catalog(lang: str) -> dict[str, str]:
    return json.loads((HERE / f"{lang}.json").read_text(encoding="utf-8"))


def choose(cookie: str | None, accept_language: str | None) -> str:
    """The language of a page: the cookie's, else the first of Accept-Language we speak, else English."""
    if cookie in LANGUAGES:
        return cookie
    weighted = []
    for i, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        weighted.append((-q, i, tag.strip().lower().split("-")[0]))
    for _, _, tag in sorted(weighted):
        if tag in LANGUAGES:
            return tag
    return DEFAULT


class Translator:
    """``t("key", name=value)``: the text of ``key`` in one language (English when missing)."""

    def __init__(self, lang: str):
        self.lang = lang if lang in LANGUAGES else DEFAULT
        self._words = catalog(self.lang)
        self._fallback = catalog(DEFAULT)

    def has(self, key: str) -> bool:
        return key in self._words or key in self._fallback

    def __call__(self, key: str, /, **values) -> str:
        text = self._words.get(key) or self._fallback.get(key) or key
        return text.format(**values) if values else text
