"""Phone numbers: the SQL built from phonenumbers' metadata agrees with phonenumbers itself."""

from __future__ import annotations

import os
import random

import duckdb
import phonenumbers
import pytest
from phonenumbers import PhoneNumberFormat, PhoneNumberType
from phonenumbers.phonenumberutil import SUPPORTED_REGIONS

from tessera.errors import ConfigError
from tessera.normalize.phone import (
    calling_code_patterns,
    e164_python,
    international_regex,
    international_trunk_regex,
    phone_e164,
)


def fr_variants(n: int = 2000, seed: int = 7) -> list[str]:
    """Mixed ways of writing French numbers, valid and not."""
    rng = random.Random(seed)

    def nsn() -> str:  # a national significant number: 9 digits, not starting with 0
        return str(rng.choice("1234567896677")) + "".join(rng.choice("0123456789") for _ in range(8))

    def pairs(d: str, sep: str) -> str:
        return sep.join(d[i : i + 2] for i in range(0, len(d), 2))

    writers = [
        lambda d: pairs("0" + d, " "),
        lambda d: pairs("0" + d, "."),
        lambda d: pairs("0" + d, "-"),
        lambda d: "0" + d,
        lambda d: f"+33 {d[0]} {pairs(d[1:], ' ')}",
        lambda d: "+33" + d,
        lambda d: "0033" + d,
        lambda d: f"00 33 {d[0]} {pairs(d[1:], ' ')}",
        lambda d: f"+33 (0){d[0]} {pairs(d[1:], ' ')}",
        lambda d: f"+33 0{d[0]} {pairs(d[1:], ' ')}",
        lambda d: "33" + d,
        lambda d: d,
        lambda d: f"(0{d[0]}) {pairs(d[1:], ' ')}",
        lambda d: f"  {pairs('0' + d, ' ')}\u00a0",
        lambda d: f"tel: +33 {d[0]} {pairs(d[1:], ' ')}",
        lambda d: "0" + d[:-1],  # too short
        lambda d: "0" + d + rng.choice("0123456789"),  # too long
        lambda d: "+33" + d[:-2],
        lambda d: "00" + d,  # international prefix then a bogus calling code
        lambda d: "0" * rng.randint(1, 12),
        lambda d: "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 15))),
        lambda d: "+" + "".join(rng.choice("0123456789") for _ in range(rng.randint(4, 15))),
        lambda d: rng.choice(["+44 20 7946 0958", "+1 212 555 0100", "+49 30 1234567", "+32 470 12 34 56",
                              "+41 44 668 18 00", "+34 612 34 56 78", "+39 06 1234 5678", "+212 6 12 34 56 78",
                              "0044 7911 123456", "+44 (0)7911 123456"]),
        lambda d: "",
    ]
    return [rng.choice(writers)(nsn()) for _ in range(n)]


def _sql(con_eval, values: list[str], country: str) -> list[str | None]:
    return con_eval(values, lambda col, dialect: phone_e164(col, country))


def test_fr_sql_agrees_with_phonenumbers(engine_eval):
    values = fr_variants()
    sql = _sql(engine_eval, values, "FR")
    expected = e164_python(values, "FR")
    diffs = [(v, s, e) for v, s, e in zip(values, sql, expected) if s != e]
    assert not diffs, diffs[:20]
    # the sample is not trivially all-valid or all-invalid
    valid = sum(e is not None for e in expected)
    assert 0.5 * len(values) < valid < 0.95 * len(values)


def _example_numbers(region: str) -> list[str]:
    out = []
    for kind in (PhoneNumberType.FIXED_LINE, PhoneNumberType.MOBILE, PhoneNumberType.TOLL_FREE,
                 PhoneNumberType.VOIP, PhoneNumberType.PERSONAL_NUMBER, PhoneNumberType.UAN):
        number = phonenumbers.example_number_for_type(region, kind)
        if number is None:
            continue
        for fmt in (PhoneNumberFormat.NATIONAL, PhoneNumberFormat.INTERNATIONAL, PhoneNumberFormat.E164):
            out.append(phonenumbers.format_number(number, fmt))
        out.append("00" + phonenumbers.format_number(number, PhoneNumberFormat.E164)[1:])
    return out


def _check_region(duckdb_eval, region: str) -> None:
    md = phonenumbers.PhoneMetadata.metadata_for_region(region)
    values = _example_numbers(region)
    if md.national_prefix_transform_rule:  # national formats rewritten by a rule (AR mobiles): skip them
        values = [v for v in values if v.startswith(("+", "00"))]
    sql = _sql(duckdb_eval, values, region)
    assert sql == e164_python(values, region), region
    e164 = [v for v in values if v.startswith("+")]
    assert all(s is not None for v, s in zip(values, sql) if v in e164), region


MAIN_REGIONS = ["FR", "BE", "CH", "LU", "MC", "DE", "AT", "NL", "ES", "PT", "IT", "GB", "IE", "DK", "SE", "NO",
                "FI", "PL", "CZ", "GR", "US", "CA", "MA", "RE", "GP", "AU", "JP", "BR", "IN", "RU"]


def test_example_numbers_main_regions(engine_eval):
    for region in MAIN_REGIONS:
        _check_region(engine_eval, region)


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("TESSERA_TEST_SLOW") != "1", reason="every region: TESSERA_TEST_SLOW=1 (~10 s)")
def test_example_numbers_every_region(duckdb_eval):
    for region in sorted(SUPPORTED_REGIONS):
        _check_region(duckdb_eval, region)


def test_patterns_compile_in_re2():
    con = duckdb.connect()
    patterns = [f"^(?:{p})$" for p in calling_code_patterns().values()]
    patterns += [international_regex(), international_trunk_regex()]
    assert len(patterns) > 200
    for pattern in patterns:  # raises if RE2 refuses one
        con.execute("select regexp_matches('123', ?)", [pattern]).fetchall()


def test_e164_python_examples():
    values = ["06 12 34 56 78", "+33 (0)6 12 34 56 78", "0000000000", "12", None, "not a phone", "+44 20 7946 0958"]
    assert e164_python(values, "FR") == ["+33612345678", "+33612345678", None, None, None, None, "+442079460958"]
    assert e164_python(["(212) 555-0100"], "US") == ["+12125550100"]


def test_unknown_country():
    import ibis

    t = ibis.table({"s": "string"}, name="t")
    with pytest.raises(ConfigError, match="XX"):
        phone_e164(t.s, "XX")
    with pytest.raises(ConfigError):
        e164_python(["1"], "XX")
