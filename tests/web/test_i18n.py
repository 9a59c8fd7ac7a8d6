"""English and French: both catalogs have the same keys and placeholders, and every key a template
or a page uses exists."""

from __future__ import annotations

import re
import string
from pathlib import Path

from tessera.web import i18n

WEB = Path(i18n.__file__).resolve().parent.parent


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_both_languages_have_the_same_keys_and_placeholders():
    en, fr = i18n.catalog("en"), i18n.catalog("fr")
    assert set(en) == set(fr), f"only in en: {sorted(set(en) - set(fr))}; only in fr: {sorted(set(fr) - set(en))}"
    for key in en:
        assert placeholders(en[key]) == placeholders(fr[key]), key
        assert fr[key].strip(), key


def test_every_key_used_exists():
    en = i18n.catalog("en")
    used = set()
    for path in list((WEB / "templates").glob("*.html")) + list((WEB / "routes").glob("*.py")):
        used |= set(re.findall(r"""\bt\(\s*["']([a-z_0-9]+\.[a-z_0-9.=!<>]+)["']\s*[,)]""", path.read_text()))
    assert len(used) > 100
    missing = sorted(k for k in used if k not in en)
    assert not missing, f"keys used but missing from the catalogs: {missing}"


def test_language_choice():
    assert i18n.choose(None, "fr-CA,fr;q=0.9,en;q=0.8") == "fr"
    assert i18n.choose(None, "de-DE,de;q=0.9,en;q=0.5,fr;q=0.4") == "en"
    assert i18n.choose(None, "de") == "en"
    assert i18n.choose("fr", "en") == "fr"
    assert i18n.choose("xx", None) == "en"
