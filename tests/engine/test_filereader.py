"""Reading data files into VARCHAR tables with physical line numbers and rejects."""

from __future__ import annotations

import datetime
import json

import duckdb
import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import tessera.engine.filereader as filereader
from tessera.engine.filereader import detect_format, infer_types, read_file
from tessera.errors import SourceError


@pytest.fixture
def con():
    c = duckdb.connect()
    yield c
    c.close()


def write(tmp_path, name: str, data: str | bytes, newline: str = "\n"):
    path = tmp_path / name
    if isinstance(data, str):
        data = data.replace("\n", newline).encode("utf-8")
    path.write_bytes(data)
    return str(path)


def rows(con, table: str = "t"):
    return con.execute(f'SELECT * FROM "{table}" ORDER BY _tessera_line').fetchall()


def rejects(con, table: str = "t_rejects"):
    return con.execute(f'SELECT line, column_name, reason, raw FROM "{table}" ORDER BY line').fetchall()


def assert_lines_point_at_rows(path: str, con, table: str = "t"):
    """Every good row's line is the physical line that starts with its first value."""
    lines = open(path, encoding="utf-8", newline="").read().replace("\r\n", "\n").split("\n")
    for row in rows(con, table):
        assert lines[row[-1] - 1].split(",")[0] == row[0], (row, lines[row[-1] - 1])


# ---------------------------------------------------------------- CSV


def test_csv_semicolon_bom_crlf_quoted_newline_and_separator(tmp_path, con):
    path = write(tmp_path, "contacts.csv",
                 b"\xef\xbb\xbf" + 'id;name;city\n1;"Dupont; Jean";Paris\n2;"two\nlines";Lyon\n3;"say ""hi""";Nice\n'
                 .replace("\n", "\r\n").encode())
    res = read_file(con, path, table="t")
    assert res.columns == ["id", "name", "city"]
    assert (res.rows, res.rejected) == (3, 0)
    assert rows(con) == [("1", "Dupont; Jean", "Paris", 2), ("2", "two\r\nlines", "Lyon", 3),
                         ("3", 'say "hi"', "Nice", 5)]
    assert [d[1] for d in con.execute("DESCRIBE t").fetchall()] == ["VARCHAR"] * 3 + ["BIGINT"]


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_csv_too_many_columns_in_second_record(tmp_path, con, newline):
    path = write(tmp_path, "c.csv", "id,name,city\n1,Ann,Paris\n2,Bob,Lyon,extra\n3,Cy,Nice\n4,Di,Caen\n", newline)
    res = read_file(con, path, table="t")
    assert res.columns == ["id", "name", "city"]
    assert rows(con) == [("1", "Ann", "Paris", 2), ("3", "Cy", "Nice", 4), ("4", "Di", "Caen", 5)]
    assert rejects(con) == [(3, None, "line has 4 columns, header has 3", "2,Bob,Lyon,extra")]
    assert (res.rows, res.rejected) == (3, 1)


def test_csv_too_few_columns(tmp_path, con):
    path = write(tmp_path, "c.csv", "a|b|c\n1|2|3\n4|5\n6|7|8\nfree text\n")
    read_file(con, path, table="t")
    assert rows(con) == [("1", "2", "3", 2), ("6", "7", "8", 4)]
    assert rejects(con) == [(3, None, "line has 2 columns, header has 3", "4|5"),
                            (5, None, "line has 1 column, header has 3", "free text")]


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_csv_unterminated_quote_at_end(tmp_path, con, newline):
    path = write(tmp_path, "c.csv", 'id,note\n1,ok\n2,"never closed\n3,lost\n', newline)
    res = read_file(con, path, table="t")
    assert rows(con) == [("1", "ok", 2)]
    [(line, column, reason, raw)] = rejects(con)
    assert (line, column) == (3, None)
    assert reason.startswith("quote never closed: lines 3 to 4")
    assert raw == f'2,"never closed{newline}3,lost'
    assert (res.rows, res.rejected) == (1, 1)


@pytest.mark.parametrize("sep", ["\t", "|"])
def test_csv_tab_and_pipe(tmp_path, con, sep):
    path = write(tmp_path, "c.txt", f"id{sep}name\n1{sep}Ann, Lee\n2{sep}Bob\n")
    res = read_file(con, path, table="t")
    assert res.columns == ["id", "name"]
    assert rows(con) == [("1", "Ann, Lee", 2), ("2", "Bob", 3)]


def test_csv_quoted_newlines_and_bad_rows_give_physical_lines(tmp_path, con):
    text = ('id,a,b\n'                 # 1
            '1,"x\n\ny",z\n'           # 2-4
            '2,p,q,r\n'                # 5  too many
            '3,"m\nn",o\n'             # 6-7
            '"4\n",bad\n'              # 8-9  too few
            '5,s,t\n'                  # 10
            '6,"u\nv",w,extra\n'       # 11-12  too many
            '7,e,f\n')                 # 13
    path = write(tmp_path, "c.csv", text)
    read_file(con, path, table="t")
    assert [(r[0], r[-1]) for r in rows(con)] == [("1", 2), ("3", 6), ("5", 10), ("7", 13)]
    assert [(r[0], r[3]) for r in rejects(con)] == [(5, "2,p,q,r"), (8, '"4\n",bad'), (11, '6,"u\nv",w,extra')]


def test_csv_blank_lines_between_records(tmp_path, con):
    path = write(tmp_path, "c.csv", 'a,b\n\n1,2\n\n"3\n\n",4\n5,6,7\n\n8,9\n\n\n')
    res = read_file(con, path, table="t")
    assert rows(con) == [("1", "2", 3), ("3\n\n", "4", 5), ("8", "9", 10)]
    assert rejects(con) == [(8, None, "line has 3 columns, header has 2", "5,6,7")]
    assert (res.rows, res.rejected) == (3, 1)


def test_csv_long_bad_record_keeps_later_lines_exact(tmp_path, con):
    # A quote opened by mistake runs over many lines (beyond what DuckDB keeps of a rejected line).
    body = "".join(f"{i},name{i},city{i}\n" for i in range(3, 800))
    path = write(tmp_path, "c.csv", 'id,name,city\n1,a,b\n2,"open,x\n' + body + 'end"x,c\n900,z,z\n901,y,y\n')
    read_file(con, path, table="t")
    assert rows(con)[0] == ("1", "a", "b", 2)
    assert rows(con)[-2:] == [("900", "z", "z", 802), ("901", "y", "y", 803)]
    assert [(line, column) for line, column, _, _ in rejects(con)] == [(3, "name")]


def test_csv_single_column_with_commas_in_values(tmp_path, con):
    path = write(tmp_path, "c.csv", "full name\nDoe, John\n\nSmith, Ann\n")
    res = read_file(con, path, table="t")
    assert res.columns == ["full name"]
    assert rows(con) == [("Doe, John", 2), ("Smith, Ann", 4)]


def test_csv_latin1_data_lines_are_rejected(tmp_path, con):
    path = write(tmp_path, "c.csv", "id;name\n1;Zo\xe9\n2;Bob\n".encode("latin-1"))
    res = read_file(con, path, table="t")
    assert rows(con) == [("2", "Bob", 3)]
    [(line, column, reason, _)] = rejects(con)
    assert (line, column) == (2, "name")
    assert "UTF-8" in reason and "re-save" in reason
    assert res.rejected == 1


def test_csv_latin1_header_is_refused(tmp_path, con):
    path = write(tmp_path, "c.csv", "id;pr\xe9nom\n1;Zo\xe9\n".encode("latin-1"))
    with pytest.raises(SourceError, match=r"not valid UTF-8: byte 0xE9 at offset 5 \(line 1\).*re-save"):
        read_file(con, path, table="t")


def test_csv_header_problems(tmp_path, con):
    with pytest.raises(SourceError, match="duplicate column names 'Email', 'email'"):
        read_file(con, write(tmp_path, "a.csv", "id,Email,email\n1,a,b\n"), table="t")
    with pytest.raises(SourceError, match=r"no name for column\(s\) 2"):
        read_file(con, write(tmp_path, "b.csv", "id,,city\n1,a,b\n"), table="t")
    with pytest.raises(SourceError, match="looks like data, not a header"):
        read_file(con, write(tmp_path, "c.csv", "1,jean@example.com,Paris\n"), table="t")
    with pytest.raises(SourceError, match="empty"):
        read_file(con, write(tmp_path, "d.csv", ""), table="t")
    with pytest.raises(SourceError, match="not found"):
        read_file(con, str(tmp_path / "missing.csv"), table="t")


def test_csv_header_only_and_mixed_line_endings(tmp_path, con):
    res = read_file(con, write(tmp_path, "a.csv", "id,name\n\n"), table="t")
    assert (res.columns, res.rows, res.rejected) == (["id", "name"], 0, 0)
    with pytest.raises(SourceError, match="mixes line endings"):
        read_file(con, write(tmp_path, "b.csv", b"id,name\n1,a\r\n2,b\n"), table="t")


def test_csv_header_names_are_trimmed_and_quoted(tmp_path, con):
    path = write(tmp_path, "c.csv", ' id ,"e-mail; pro",  "City"\n1,a@b.fr,Paris\n')
    assert read_file(con, path, table="t").columns == ["id", "e-mail; pro", "City"]


def test_csv_without_header_and_explicit_delimiter(tmp_path, con):
    path = write(tmp_path, "c.csv", "1;a,b\n2;c\n")
    res = read_file(con, path, table="t", delimiter=";", header=False)
    assert res.columns == ["column1", "column2"]
    assert rows(con) == [("1", "a,b", 1), ("2", "c", 2)]


def test_two_reads_on_one_connection(tmp_path, con):
    a = write(tmp_path, "a.csv", "x,y\n1,2\n1,2,3\n")
    b = write(tmp_path, "b.csv", "x;y\n3;4\n5\n")
    ra, rb = read_file(con, a, table="a"), read_file(con, b, table="b")
    assert (ra.rejected, rb.rejected) == (1, 1)
    assert rejects(con, "a_rejects")[0][3] == "1,2,3" and rejects(con, "b_rejects")[0][3] == "5"
    assert not [t for (t,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()
                if t.startswith("_tessera")]


def test_large_csv(tmp_path, con):
    multi = '"a\nb"'
    lines = ["id,email,note"] + [f"{i},u{i}@x.fr,{multi if i % 1000 == 0 else 'ok'}" for i in range(50_000)]
    lines[20] += ",extra"
    path = write(tmp_path, "big.csv", "\n".join(lines) + "\n")
    res = read_file(con, path, table="t")
    assert (res.rows, res.rejected) == (49_999, 1)
    assert con.execute("SELECT _tessera_line FROM t WHERE id = '49999'").fetchone()[0] == 50_001 + 50
    assert_lines_point_at_rows(path, con)


# ---------------------------------------------------------------- JSON / NDJSON


def test_json_array(tmp_path, con):
    path = write(tmp_path, "c.json", json.dumps(
        [{"id": 1, "name": "Ann", "tags": {"vip": True}}, 5, {"id": 2, "email": "b@x.fr", "name": ""}, ["x"]]))
    res = read_file(con, path, table="t")
    assert res.columns == ["id", "name", "tags", "email"]
    assert rows(con) == [("1", "Ann", '{"vip":true}', None, 1), ("2", "", None, "b@x.fr", 3)]
    assert rejects(con) == [(2, None, "JSON number where an object {...} was expected", "5"),
                            (4, None, "JSON array where an object {...} was expected", '["x"]')]


def test_json_invalid_document(tmp_path, con):
    path = write(tmp_path, "c.json", '[{"a": 1},\n{"a" 2}]')
    with pytest.raises(SourceError, match=r"not valid JSON: .* at line 2"):
        read_file(con, path, table="t")


def test_ndjson_with_invalid_and_blank_lines(tmp_path, con):
    path = write(tmp_path, "c.ndjson", '{"id": 1, "a.b": "x"}\n\n{"id": 2, "c": [1, 2]}\n{"id": 3,\n"text"\n{"id": 4}\n')
    res = read_file(con, path, table="t")
    assert res.columns == ["id", "a.b", "c"]
    assert rows(con) == [("1", "x", None, 1), ("2", None, "[1,2]", 3), ("4", None, None, 6)]
    assert rejects(con) == [(4, None, "invalid JSON: syntax error (check quotes, commas and braces)", '{"id": 3,'),
                            (5, None, "JSON string where an object {...} was expected", '"text"')]


def test_detect_format(tmp_path):
    assert detect_format(write(tmp_path, "a.json", ' \n[{"a": 1}]')) == "json"
    assert detect_format(write(tmp_path, "b.json", '{"a": 1}\n{"a": 2}\n')) == "ndjson"
    assert detect_format("x.TSV") == "csv" and detect_format("x.pq") == "parquet" and detect_format("x.jsonl") == "ndjson"
    with pytest.raises(SourceError, match="unsupported extension '.xls'"):
        detect_format("x.xls")


# ---------------------------------------------------------------- Parquet / XLSX


def test_parquet_timestamps_as_iso_text(tmp_path, con):
    path = str(tmp_path / "c.parquet")
    pq.write_table(pa.table({"id": [1, 2], "seen": [datetime.datetime(2024, 1, 2, 3, 4, 5), None],
                             "score": [1.5, None], "tags": [["a"], []]}), path)
    res = read_file(con, path, table="t")
    assert res.columns == ["id", "seen", "score", "tags"]
    assert rows(con) == [("1", "2024-01-02 03:04:05", "1.5", '["a"]', 1), ("2", None, None, "[]", 2)]


def _workbook(path, sheets: int = 1):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Contacts"
    ws.append(["id", "name ", "phone", "born", "vip"])
    ws.append([1, "Ann", "0612345678", datetime.date(1980, 12, 31), True])
    ws.append([])
    ws.append([3, None, "+33612345678", datetime.datetime(2020, 1, 2, 3, 4, 5), False])
    for i in range(1, sheets):
        wb.create_sheet(f"Sheet{i + 1}")
    wb.save(path)
    return str(path)


EXPECTED_XLSX = [("1", "Ann", "0612345678", "1980-12-31", "true", 2),
                 ("3", None, "+33612345678", "2020-01-02 03:04:05", "false", 4)]


def test_xlsx_one_sheet(tmp_path, con):
    res = read_file(con, _workbook(tmp_path / "c.xlsx"), table="t")
    assert res.columns == ["id", "name", "phone", "born", "vip"]
    assert rows(con) == EXPECTED_XLSX


def test_xlsx_openpyxl_fallback(tmp_path, con, monkeypatch):
    def unavailable(*args):
        raise duckdb.IOException("read_xlsx unavailable")

    monkeypatch.setattr(filereader, "_xlsx_duckdb", unavailable)
    read_file(con, _workbook(tmp_path / "c.xlsx"), table="t")
    assert rows(con) == EXPECTED_XLSX


def test_xlsx_several_sheets_refused(tmp_path, con):
    with pytest.raises(SourceError) as err:
        read_file(con, _workbook(tmp_path / "c.xlsx", sheets=3), table="t")
    assert "has 3 sheets (Contacts, Sheet2, Sheet3); Tessera reads workbooks with exactly one sheet" in str(err.value)


# ---------------------------------------------------------------- type inference


def test_infer_types(con):
    con.execute("""CREATE TABLE v AS SELECT * FROM (VALUES
        ('1', '0612345678', '12.5', 'Oui', '1980-12-31', '2024-01-02T03:04:05Z', '31/12/1980', '1', NULL, '+33612345678', '12,5'),
        ('-20', '0699999999', '3', 'non', '2000-02-29', '2024-01-02 03:04', '01/01/2000', '0', '', '42', '3'),
        (NULL, NULL, '', 'TRUE', NULL, '2024-01-03', NULL, '', '  ', '7', '-0,25')
    ) AS v(i, phone, f, b, d, ts, dmy, bit, empty, plus, comma)""")
    cols = ["i", "phone", "f", "b", "d", "ts", "dmy", "bit", "empty", "plus", "comma"]
    assert infer_types(con, "v", cols) == {
        "i": "integer", "phone": "string", "f": "float", "b": "boolean", "d": "date", "ts": "timestamp",
        "dmy": "string", "bit": "integer", "empty": "string", "plus": "string", "comma": "string"}
    with_comma = infer_types(con, "v", cols, decimal_comma=True)
    assert (with_comma["comma"], with_comma["f"], with_comma["i"]) == ("float", "string", "integer")


def test_infer_types_reads_a_small_table_once_and_a_large_one_whole(con, monkeypatch):
    from tessera.engine import filereader

    class Counting:  # the connection, counting the queries
        def __init__(self, con):
            self.con, self.queries = con, 0

        def execute(self, *args):
            self.queries += 1
            return self.con.execute(*args)

    monkeypatch.setattr(filereader, "INFER_SAMPLE_ROWS", 3)
    con.execute("CREATE TABLE small AS SELECT * FROM (VALUES ('1', 'a', '2024-01-02'), ('2', NULL, NULL), "
                "('3', 'b', '2024-01-03')) AS t(n, s, d)")
    counting = Counting(con)
    assert infer_types(counting, "small", ["n", "s", "d"]) == {"n": "integer", "s": "string", "d": "date"}
    assert counting.queries == 1  # the sample was the whole table
    # a value after the first rows that breaks a type: the whole table is read for what passed
    con.execute("CREATE TABLE large AS SELECT * FROM (VALUES ('1', '2024-01-02'), ('2', '2024-01-02'), "
                "('3', NULL), ('4', '2024-01-04'), ('x', '2024-01-05')) AS t(n, d)")
    counting = Counting(con)
    assert infer_types(counting, "large", ["n", "d"]) == {"n": "string", "d": "date"}
    assert counting.queries == 2


def test_infer_types_leading_zero_decimal_and_overflow(con):
    con.execute("CREATE TABLE w AS SELECT * FROM (VALUES ('0', '0.5', '99999999999999999999', '00.5')) AS w(a, b, c, d)")
    assert infer_types(con, "w", ["a", "b", "c", "d"]) == {"a": "integer", "b": "float", "c": "float", "d": "string"}


def test_decimal_comma_numbers_with_thousands_separators_are_read_and_profiled():
    import re

    import ibis
    import pyarrow as pa

    from tessera.engine.types import cast_text
    from tessera.setup.profile import DEC_COMMA_RE

    values = ["1234,50", "1.234,50", "1 234,50", "1\u00a0234,50", "1\u202f234,50", "-3,5", "abc"]
    con = ibis.duckdb.connect()
    t = ibis.memtable(pa.table({"s": values}))
    got = con.to_pyarrow(t.select(x=cast_text(t.s, "float", decimal_comma=True))).column("x").to_pylist()
    assert got == [1234.5, 1234.5, 1234.5, 1234.5, 1234.5, -3.5, None]
    assert [bool(re.search(DEC_COMMA_RE, v)) for v in values] == [True] * 6 + [False]


@pytest.mark.parametrize("long_line", [1, 2, 37, 120, 199, 200])
def test_the_first_line_past_the_limit_is_named_wherever_chunks_end(tmp_path, monkeypatch, long_line):
    monkeypatch.setattr(filereader, "_CHUNK", 64)  # many chunks: lines across and within them
    lines = [f"row {i:03d}," + "x" * (i % 13) for i in range(1, 201)]
    lines[long_line - 1] = "y" * 41
    lines[min(long_line + 3, 199)] = "z" * 45  # a later long line is not the one named
    path = write(tmp_path, "c.txt", "\n".join(lines) + "\n")
    with pytest.raises(SourceError, match=rf"line {long_line} is too long \(more than 40 bytes"):
        filereader._scan_lines(str(path), 40)
    assert filereader._scan_lines(str(path), 60) == 200
    assert not filereader._has_empty_line(str(path))
    blank = write(tmp_path, "b.txt", "\n".join(lines[:100]) + "\n\r\n" + "\n".join(lines[100:]) + "\n\n\n")
    assert filereader._scan_lines(str(blank), 60) == 201 and filereader._has_empty_line(str(blank))
