"""Every normalization rule, with exact expected outputs, on DuckDB and (marked spark) on Spark."""

from __future__ import annotations

import datetime as dt

import ibis
import pyarrow as pa
import pytest

from tessera.config.models import NormalizationRule
from tessera.engine.dialects import dialect_for
from tessera.engine.functions import (
    regex_replacement,
    strftime_to_java,
    strftime_to_regex,
    try_parse_date,
)
from tessera.errors import ConfigError, EngineError
from tessera.normalize.rules import (
    GENDER_WORDS,
    NULL_LIKE_DEFAULT,
    _py_key,
    apply_rules,
    country_keys,
    email_is_valid,
    gender_keys,
)

DUCKDB = dialect_for("duckdb")

D = dt.date

# (id, rules, [(input, expected), ...])
CASES = [
    (
        "trim",
        ["trim"],
        [
            ("  abc  ", "abc"),
            ("\u00a0abc\u00a0", "abc"),
            ("\t a b \n", "a b"),
            ("\u202f\u2009x\ufeff", "x"),
            ("\x0bx\x0c", "x"),
            ("a\u00a0b", "a\u00a0b"),
            ("", ""),
            ("   ", ""),
            (None, None),
        ],
    ),
    ("lower", ["lower"], [("ÉLODIE Dupont", "élodie dupont"), ("abc", "abc"), (None, None)]),
    ("upper", ["upper"], [("élodie dupont", "ÉLODIE DUPONT"), ("ABC", "ABC"), (None, None)]),
    (
        "title",
        ["title"],
        [
            ("jean-pierre", "Jean-Pierre"),
            ("o'neil", "O'Neil"),
            ("o\u2019neil", "O\u2019Neil"),
            ("MARIE  CLAIRE", "Marie  Claire"),
            ("élodie", "Élodie"),
            ("d'artagnan-le grand", "D'Artagnan-Le Grand"),
            ("j.r.r. tolkien", "J.R.R. Tolkien"),
            (" leading space", " Leading Space"),
            ("x", "X"),
            ("", ""),
            (None, None),
        ],
    ),
    (
        "replace",
        [{"replace": {"find": ".", "with": "-"}}],
        [("a.b.c", "a-b-c"), ("abc", "abc"), ("..", "--"), (None, None)],
    ),
    (
        "replace_special_chars",
        [{"replace": {"find": "$1\\", "with": "'%'"}}],
        [("a$1\\b", "a'%'b"), ("a$1b", "a$1b")],
    ),
    (
        "regex_replace",
        [{"regex_replace": {"pattern": r"(\d+)", "with": r"<\1>"}}],
        [("a1b22c333", "a<1>b<22>c<333>"), ("none", "none"), (None, None)],
    ),
    (
        "regex_replace_literal_dollar",
        [{"regex_replace": {"pattern": r"\s+", "with": "$"}}],
        [("a b  c", "a$b$c")],
    ),
    (
        "regex_replace_swap_groups",
        [{"regex_replace": {"pattern": r"^(\w+) (\w+)$", "with": r"\2 \1"}}],
        [("dupont jean", "jean dupont"), ("one", "one")],
    ),
    (
        "null_like_default",
        ["null_like"],
        [
            (" n/a ", None),
            ("NULL", None),
            ("null", None),
            ("Null", None),
            ("none", None),
            ("-", None),
            ("0000-00-00", None),
            ("00/00/0000", None),
            ("", None),
            ("   ", None),
            ("\u00a0", None),
            ("NA", None),
            ("nan", "nan"),
            ("ok", "ok"),
            ("  keep spaces ", "  keep spaces "),
            (None, None),
        ],
    ),
    (
        "null_like_list",
        [{"null_like": ["unknown", "?"]}],
        [("UNKNOWN", None), (" ? ", None), ("n/a", "n/a"), ("known", "known")],
    ),
    (
        "email",
        ["email"],
        [
            (" Foo@Bar.COM ", "foo@bar.com"),
            ("mailto:X@Y.fr", "x@y.fr"),
            ("MAILTO:z@z.io", "z@z.io"),
            (" mailto: a@b.co", "a@b.co"),
            ("jean dupont@gmail.com", "jeandupont@gmail.com"),
            ("a\u00a0b@c.com", "ab@c.com"),
            ("not an email", "notanemail"),
            ("", None),
            ("   ", None),
            (None, None),
        ],
    ),
    (
        "phone_fr",
        [{"phone": {"country": "FR"}}],
        [
            ("06 12 34 56 78", "+33612345678"),
            ("06.12.34.56.78", "+33612345678"),
            ("06-12-34-56-78", "+33612345678"),
            ("0612345678", "+33612345678"),
            ("+33 6 12 34 56 78", "+33612345678"),
            ("+33612345678", "+33612345678"),
            ("0033612345678", "+33612345678"),
            ("0033 6 12 34 56 78", "+33612345678"),
            ("+33 (0)6 12 34 56 78", "+33612345678"),
            ("+33 06 12 34 56 78", "+33612345678"),
            ("33612345678", "+33612345678"),
            ("612345678", "+33612345678"),
            ("01 23 45 67 89", "+33123456789"),
            ("tel: +33 1 23 45 67 89", "+33123456789"),
            ("+44 20 7946 0958", "+442079460958"),
            ("+44 (0)20 7946 0958", "+442079460958"),
            ("0044 20 7946 0958", "+442079460958"),
            ("+1 (212) 555-0100", "+12125550100"),
            ("+49 30 1234567", "+49301234567"),
            ("+34 612 34 56 78", "+34612345678"),
            ("+32 470 12 34 56", "+32470123456"),
            ("+39 06 1234 5678", "+390612345678"),
            ("0000000000", None),
            ("12", None),
            ("06 12 34 56 7", None),
            ("06 12 34 56 789", None),
            ("+33 0 00 00 00 00", None),
            ("+999 123", None),
            ("abc", None),
            ("", None),
            (None, None),
        ],
    ),
    (
        "phone_default_country",
        ["phone"],
        [("06 12 34 56 78", "+33612345678")],
    ),
    (
        "phone_gb",
        [{"phone": {"country": "GB"}}],
        [("020 7946 0958", "+442079460958"), ("07911 123456", "+447911123456"), ("06 12 34 56 78", None)],
    ),
    (
        "phone_us",
        [{"phone": {"country": "US"}}],
        [("(212) 555-0100", "+12125550100"), ("1 212 555 0100", "+12125550100"), ("011 33 6 12 34 56 78", "+33612345678")],
    ),
    (
        "date_detect",
        ["date"],
        [
            ("2020-01-02", D(2020, 1, 2)),
            ("2020-1-2", D(2020, 1, 2)),
            ("2020/01/02", D(2020, 1, 2)),
            ("01/02/2020", D(2020, 1, 2)),  # month first by default
            ("1/2/2020", D(2020, 1, 2)),
            ("13/01/2020", None),
            ("02-01-2020", D(2020, 1, 2)),  # day first
            ("02.01.2020", D(2020, 1, 2)),
            ("20200102", D(2020, 1, 2)),
            ("2020-01-02T10:11:12Z", D(2020, 1, 2)),
            ("2020-01-02T23:59:59.123+05:30", D(2020, 1, 2)),
            ("2020-01-02 10:11:12", D(2020, 1, 2)),
            ("01/02/2020 10:11", D(2020, 1, 2)),
            (" 2020-12-31 ", D(2020, 12, 31)),
            ("2020-02-29", D(2020, 2, 29)),
            ("2021-02-29", None),
            ("2020-02-31", None),
            ("2020-13-01", None),
            ("0000-00-00", None),
            ("00/00/0000", None),
            ("2020-01-02junk", None),
            ("20201301", None),
            ("abc", None),
            ("", None),
            (None, None),
        ],
    ),
    (
        "date_dayfirst",
        [{"date": {"dayfirst": True}}],
        [
            ("01/02/2020", D(2020, 2, 1)),
            ("1/2/2020", D(2020, 2, 1)),
            ("31/12/1999", D(1999, 12, 31)),
            ("31/02/2020", None),
            ("12/31/2020", None),
            ("2020-01-02", D(2020, 1, 2)),
        ],
    ),
    (
        "date_format",
        [{"date": {"format": "%d/%m/%Y"}}],
        [
            ("01/02/2020", D(2020, 2, 1)),
            ("1/2/2020", D(2020, 2, 1)),
            ("31/02/2020", None),
            ("001/02/2020", None),
            ("01/02/20", None),
            ("2020-01-02", None),
            (" 01/02/2020 ", D(2020, 2, 1)),
            (None, None),
        ],
    ),
    (
        "date_format_two_digit_year",
        [{"date": {"format": "%d/%m/%y"}}],
        [("01/02/20", D(2020, 2, 1)), ("01/02/68", D(2068, 2, 1)), ("01/02/69", D(1969, 2, 1)), ("1/2/99", D(1999, 2, 1))],
    ),
    (
        "date_format_with_time_and_literal",
        [{"date": {"format": "%Y%m%dT%H%M%S"}}],
        [("20200102T101112", D(2020, 1, 2)), ("20200102T251112", None), ("20200102", None)],
    ),
    (
        "country",
        ["country"],
        [
            ("France", "FR"),
            ("FR", "FR"),
            ("fr", "FR"),
            ("FRA", "FR"),
            (" france ", "FR"),
            ("Allemagne", "DE"),
            ("Germany", "DE"),
            ("Alemania", "DE"),
            ("DEU", "DE"),
            ("España", "ES"),
            ("ESPANA", "ES"),
            ("Espagne", "ES"),
            ("Spain", "ES"),
            ("United Kingdom", "GB"),
            ("UK", "GB"),
            ("u.k.", "GB"),
            ("Royaume-Uni", "GB"),
            ("Reino Unido", "GB"),
            ("Great Britain", "GB"),
            ("GBR", "GB"),
            ("États-Unis", "US"),
            ("Estados Unidos", "US"),
            ("USA", "US"),
            ("Côte d'Ivoire", "CI"),
            ("cote divoire", "CI"),
            ("Pays-Bas", "NL"),
            ("Holland", "NL"),
            ("Belgique", "BE"),
            ("Suisse", "CH"),
            ("Italie", "IT"),
            ("Corée du Sud", "KR"),
            ("Bolivia", "BO"),
            ("Russie", "RU"),
            ("Nigeria", "NG"),
            ("Niger", "NE"),
            ("Atlantis", None),
            ("XX", None),
            ("", None),
            (None, None),
        ],
    ),
    (
        "gender",
        ["gender"],
        [
            ("Mme", "F"), ("MME.", "F"), ("Mlle", "F"), ("Madame", "F"), ("f", "F"), ("Female", "F"),
            ("Sra.", "F"), ("Señora", "F"), ("Frau", "F"), ("Mrs", "F"), ("Femme", "F"),
            ("M.", "M"), ("m", "M"), ("Monsieur", "M"), ("Mr.", "M"), ("Homme", "M"), ("H", "M"),
            ("señor", "M"), ("Sr", "M"), ("Herr", "M"), ("männlich", "M"), ("Male", "M"),
            ("X", "X"), ("non-binaire", "X"), ("Other", "X"), ("Divers", "X"),
            ("Dr", None), ("?", None), ("", None), (None, None),
        ],
    ),
    (
        "chain_trim_null_like_title",
        ["trim", "null_like", "title"],
        [("  jean-PIERRE ", "Jean-Pierre"), (" n/a ", None), (None, None)],
    ),
    (
        "chain_null_like_then_date",
        ["null_like", {"date": {"dayfirst": True}}],
        [("00/00/0000", None), ("25/12/2021", D(2021, 12, 25))],
    ),
]


def _build(rules):
    parsed = [NormalizationRule.model_validate(r) for r in rules]
    return lambda col, dialect: apply_rules(col, parsed, dialect)


@pytest.mark.parametrize("rules,pairs", [pytest.param(r, p, id=i) for i, r, p in CASES])
def test_rules(engine_eval, rules, pairs):
    values = [p[0] for p in pairs]
    expected = [p[1] for p in pairs]
    assert engine_eval(values, _build(rules)) == expected


EMAILS = [
    ("foo@bar.com", True),
    ("jean.dupont+promo@mail.example.fr", True),
    ("o'neil@example.co.uk", True),
    ("a@b.c", False),
    ("a@b", False),
    ("@b.com", False),
    ("a@.com", False),
    ("a..b@c.com", False),
    (".a@c.com", False),
    ("a@c..com", False),
    ("a@-c.com", False),
    ("a b@c.com", False),
    ("a@b.com\n", False),
    ("notanemail", False),
    ("a@b@c.com", False),
    ("user@xn--bcher-kva.com", True),
    ("", False),
    (None, False),
]


def test_email_is_valid(engine_eval):
    out = engine_eval([e for e, _ in EMAILS], lambda col, dialect: email_is_valid(col))
    assert out == [v for _, v in EMAILS]


# --------------------------------------------------------------------------- helpers and errors


def test_null_like_default_is_reexported():
    from tessera.config import models

    assert NULL_LIKE_DEFAULT is models.NULL_LIKE_DEFAULT


def test_strftime_translation():
    assert strftime_to_java("%d/%m/%Y") == "d'/'M'/'yyyy"
    assert strftime_to_java("%Y-%m-%dT%H:%M:%S") == "yyyy'-'M'-'d'T'H':'m':'s"
    assert strftime_to_java("%y%m%d") == "yyMMdd"
    assert strftime_to_java("%d'%m") == "d''''M"
    assert strftime_to_regex("%d.%m.%Y") == r"^\d{1,2}\.\d{1,2}\.[1-9]\d{3}\z"


@pytest.mark.parametrize("fmt", ["%b %d %Y", "%Y-%m-%", "no directive"])
def test_unsupported_date_format(fmt):
    t = ibis.table({"s": "string"}, name="t")
    with pytest.raises(ConfigError):
        try_parse_date(t.s, fmt, "duckdb")


def test_unknown_backend():
    t = ibis.table({"s": "string"}, name="t")
    with pytest.raises(EngineError, match="mssql"):
        try_parse_date(t.s, "%Y", "mssql")
    with pytest.raises(EngineError, match="sqlite"):
        apply_rules(t.s, [NormalizationRule.model_validate("trim")], dialect_for("sqlite"))


def test_regex_replacement_per_engine():
    assert regex_replacement(r"<\1>$", "duckdb") == r"<\1>$"
    assert regex_replacement(r"<\1>$", "pyspark") == r"<$1>\$"
    assert regex_replacement("a\\\\b", "pyspark") == "a\\\\b"
    with pytest.raises(ConfigError):
        regex_replacement(r"\n", "duckdb")


def test_rule_errors():
    t = ibis.table({"s": "string"}, name="t")
    with pytest.raises(ConfigError, match="last"):
        apply_rules(t.s, [NormalizationRule.model_validate(r) for r in ["date", "trim"]], DUCKDB)
    with pytest.raises(ConfigError, match="ZZ"):
        apply_rules(t.s, [NormalizationRule.model_validate({"phone": {"country": "ZZ"}})], DUCKDB)
    with pytest.raises(ConfigError, match="option"):
        apply_rules(t.s, [NormalizationRule.model_validate({"date": {"fmt": "%Y"}})], DUCKDB)
    with pytest.raises(ConfigError):
        apply_rules(t.s, [NormalizationRule.model_validate({"replace": {"find": "", "with": "x"}})], DUCKDB)


def test_non_text_columns(duckdb_con):
    t = ibis.memtable(
        pa.table(
            {
                "n": pa.array([612345678, None], pa.int64()),
                "f": pa.array([612345678.0, None], pa.float64()),
                "d": pa.array([dt.date(2020, 1, 2), None], pa.date32()),
            }
        )
    )
    rule = [NormalizationRule.model_validate({"phone": {"country": "FR"}})]
    phone = apply_rules(t.n, rule, DUCKDB)
    phone_f = apply_rules(t.f, rule, DUCKDB)
    day = apply_rules(t.d, [NormalizationRule.model_validate("date")], DUCKDB)
    out = duckdb_con.to_pyarrow(t.select(p=phone, f=phone_f, d=day)).to_pydict()
    assert out == {"p": ["+33612345678", None], "f": ["+33612345678", None], "d": [dt.date(2020, 1, 2), None]}
    assert apply_rules(t.n, [], DUCKDB).equals(t.n)


def test_country_keys_cover_every_iso_code():
    import pycountry

    keys = country_keys()
    for c in pycountry.countries:
        assert keys[c.alpha_2] == c.alpha_2
        assert keys[c.alpha_3] == c.alpha_2
    assert all(k.isascii() and k.isalnum() and k.isupper() or k.isdigit() for k in keys)


def test_every_country_and_gender_key_finds_its_code_on_every_engine(engine_eval):
    # each engine's lookup (nested CASEs; a map on Spark) over every key, and a key of none
    countries = list(country_keys().items()) + [("NOWHERE", None)]
    assert engine_eval([k for k, _ in countries], _build(["country"])) == [c for _, c in countries]
    genders = list(gender_keys().items()) + [("NOBODY", None)]
    assert engine_eval([k for k, _ in genders], _build(["gender"])) == [c for _, c in genders]


def test_every_gender_word_has_one_code():
    seen: dict[str, str] = {}
    for code, words in GENDER_WORDS.items():
        for word in words:
            key = gender_keys()[_py_key(word)]
            assert seen.setdefault(_py_key(word), code) == code == key, word


def test_accent_table_matches_duckdb_strip_accents():
    import duckdb

    from tessera.engine.functions import accent_table

    src, dst = accent_table()
    assert len(src) == len(dst) > 400
    got = duckdb.connect().execute("select strip_accents(?)", [src]).fetchone()[0]
    assert got == dst
