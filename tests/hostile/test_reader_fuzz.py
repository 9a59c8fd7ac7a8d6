"""The CSV and JSON readers on generated garbage: every outcome is rows (with rejected lines kept
with a reason) or a SourceError with a message naming the file, never another exception."""

from __future__ import annotations

import duckdb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tessera.engine.filereader import read_file
from tessera.errors import SourceError

HEADER = b"id,email,name\n"
_csv_bytes = st.lists(st.one_of(
    st.binary(max_size=40),
    st.sampled_from([b",", b'"', b"\n", b"\r\n", b"\r", b";", b"\t", b"\x00", b"\xe9", b"\xff\xfe", b"1,a@x.io,Ann\n",
                     b'"a\nb"', b",,,,,,,,\n", b"id,id\n", b"\xef\xbb\xbf"])), max_size=30).map(b"".join)
_json_bytes = st.one_of(
    st.binary(max_size=200),
    st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=10)),
                 lambda inner: st.one_of(st.lists(inner, max_size=4),
                                         st.dictionaries(st.text(max_size=6), inner, max_size=4)),
                 max_leaves=20).map(lambda v: __import__("json").dumps(v).encode()),
)


def _read(tmp_path_factory, name: str, data: bytes) -> None:
    path = tmp_path_factory.mktemp("fuzz") / name
    path.write_bytes(data)
    con = duckdb.connect()
    try:
        read = read_file(con, str(path), table="t")
        assert read.rows >= 0 and read.rejected >= 0
    except SourceError as exc:
        assert str(path) in str(exc) or name in str(exc), str(exc)
    finally:
        con.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(body=_csv_bytes, with_header=st.booleans())
def test_fuzz_csv(tmp_path_factory, body, with_header):
    _read(tmp_path_factory, "garbage.csv", (HEADER if with_header else b"") + body)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(body=_json_bytes, lines=st.booleans())
def test_fuzz_json(tmp_path_factory, body, lines):
    _read(tmp_path_factory, "garbage.ndjson" if lines else "garbage.json", body)


def test_a_nul_character_in_a_json_key_is_refused(tmp_path_factory):
    """Found by the fuzzing: a key "\\u0000" broke the reader's SQL."""
    _read(tmp_path_factory, "nul.json", b'[{"\\u0000": 1, "id": "2"}]')
    _read(tmp_path_factory, "nul.ndjson", b'{"a\\u0000b": 1}\n')
