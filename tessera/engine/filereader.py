"""Parse one data file with DuckDB into a temporary all-VARCHAR table plus a rejects table.

Every good record keeps ``_tessera_line``, the physical 1-based line of the file where it starts
(JSON array: 1-based element index; Parquet: row number; XLSX: sheet row, header = row 1), so that
any later error can send the user to the exact place in the file. Records that cannot be parsed are
never dropped: they go to the rejects table with their line, a reason and the raw text.

Empty values: DuckDB reads an empty CSV field, quoted or not, as NULL and we keep that; JSON keeps
``""`` as ``''`` (the file says "empty string") while ``null`` and missing keys are NULL; empty cells
are NULL. Rows whose values are all NULL (blank lines of a one-column CSV, ``;;;`` lines, empty sheet
rows, ``{}``) carry no data and are skipped. DuckDB accepts a CSV line whose only extra fields are
empty (a trailing separator): no value is lost, so it is kept as a good row.

CSV line numbers come from counting in one pass; blank lines between records, or a rejected record
longer than the 10000 bytes DuckDB keeps of it, need a second pass (exact, a few times slower). A file
mixing LF and CR LF line endings cannot be read by DuckDB's strict parser and is refused as a whole.
"""

from __future__ import annotations

import codecs
import csv
import datetime
import io
import json
import os
import re
import uuid
from collections import Counter
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa

from tessera.errors import SourceError

LINE = "_tessera_line"
_FORMATS = {".csv": "csv", ".txt": "csv", ".tsv": "csv", ".json": "json", ".ndjson": "ndjson",
            ".jsonl": "ndjson", ".parquet": "parquet", ".pq": "parquet", ".xlsx": "xlsx"}
_SEPARATORS = (",", ";", "\t", "|")
_HEAD = 1 << 20             # bytes read to find the header line and the separator
_CHUNK = 1 << 22
_RAW_MAX = 2000             # raw text kept for the end of a file swallowed by an open quote
_DUCKDB_RAW_CAP = 10000     # DuckDB keeps at most this many bytes of a rejected line
_UTF8_FIX = "re-save the file as UTF-8 (Excel: 'CSV UTF-8'; text editors: encoding UTF-8)"
_EMPTY = "is empty: export the data again, or remove the file from the source"
MAX_COLUMNS = 1_000  # wider files are refused (a file of 5,000 columns took minutes and gigabytes)
#: longest line of a CSV or NDJSON file, in bytes (the source's ``max_line_bytes``); DuckDB's own default
MAX_LINE_BYTES = 2_000_000


#: the engine out of memory or interrupted (a job's limits): not the file's fault, never a refused file
_NOT_THE_FILE = (duckdb.OutOfMemoryException, duckdb.InterruptException)


@dataclass
class FileRead:
    table: str
    rejects_table: str
    columns: list[str]
    rows: int
    rejected: int


def qi(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def ql(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def detect_format(path: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    if ext not in _FORMATS:
        raise SourceError(f"File '{path}' has an unsupported extension '{ext or '(none)'}': Tessera reads .csv, "
                          ".txt, .tsv, .json, .ndjson, .jsonl, .parquet, .pq and .xlsx files, also compressed (.gz, .zip); "
                          "export it to one of these.")
    if _FORMATS[ext] == "json":
        try:
            with open(path, "rb") as f:
                start = f.read(_HEAD).lstrip(codecs.BOM_UTF8).lstrip()
        except FileNotFoundError:
            raise SourceError(f"File '{path}' not found: check the path.") from None
        if start and not start.startswith(b"["):
            # One object per line is NDJSON; a .json file that is one whole object (often the
            # records wrapped in {"data": [...]}) is reported, not read as a single row.
            if start.startswith(b"{") and os.path.getsize(path) <= _WHOLE_JSON_CHECK and _one_json_object(path):
                return "json"
            return "ndjson"
    return _FORMATS[ext]


_WHOLE_JSON_CHECK = 16 * 1024 * 1024  # .json files up to this size are checked for being one object


def _one_json_object(path: str) -> bool:
    """Whether the whole file is a single JSON object (not one object per line)."""
    try:
        with open(path, "rb") as f:
            return isinstance(json.loads(f.read()), dict)
    except (ValueError, RecursionError):  # several values (NDJSON), invalid, or absurdly deep
        return False


def read_file(con: duckdb.DuckDBPyConnection, path: str, fmt: str = "auto", *, table: str,
              delimiter: str | None = None, header: bool = True, quote: str = '"',
              max_line_bytes: int = MAX_LINE_BYTES, keep_as: tuple[str, str] | None = None) -> FileRead:
    """Parse the file at ``path`` into the temporary table ``table``. With ``keep_as`` (a table and
    a select list of constant columns), a Parquet file is read straight into that table of the
    warehouse with the constants after its columns (no temporary copy; in no particular order: the
    line of each row is in its column): the returned ``table`` says which table holds the rows."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise SourceError(f"File '{path}' not found: check the path (relative paths start from {os.getcwd()}).")
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt not in _FORMATS.values():
        raise SourceError(f"File '{path}': unknown format '{fmt}'; use one of csv, json, ndjson, parquet, xlsx.")
    if os.path.getsize(path) == 0:
        raise SourceError(f"File '{path}' {_EMPTY}.")
    rejects = f"{table}_rejects"
    con.execute(f"CREATE OR REPLACE TEMP TABLE {qi(rejects)} "
                "(line BIGINT, column_name VARCHAR, reason VARCHAR, raw VARCHAR)")
    if fmt == "csv":
        columns = _read_csv(con, path, table, rejects, delimiter, header, quote, max_line_bytes)
    elif fmt in ("json", "ndjson"):
        if fmt == "ndjson":
            _scan_lines(path, max_line_bytes)   # before DuckDB reads the whole text
        columns = _read_json(con, path, table, rejects, array=fmt == "json")
    elif fmt == "parquet" and keep_as:
        table = keep_as[0]
        columns = _read_parquet(con, path, table, constants=keep_as[1])
    elif fmt == "parquet":
        columns = _read_parquet(con, path, table)
    else:
        columns = _read_xlsx(con, path, table)
    con.execute(f"DELETE FROM {qi(table)} WHERE " + (" AND ".join(f"{qi(c)} IS NULL" for c in columns) or "true"))
    rows = con.execute(f"SELECT count(*) FROM {qi(table)}").fetchone()[0]
    rejected = con.execute(f"SELECT count(*) FROM {qi(rejects)}").fetchone()[0]
    return FileRead(table, rejects, columns, rows, rejected)


def peek_columns(path: str, fmt: str, options: dict) -> list[str] | None:
    """The column names of a file as an import would read them, or None when it cannot be read."""
    con = duckdb.connect()
    try:
        return read_file(con, path, fmt, table="peek", **options).columns
    except (SourceError, duckdb.Error):
        return None
    finally:
        con.close()


def _check_width(path: str, n: int) -> None:
    """Refuse a file wider than MAX_COLUMNS before reading it (every column costs work in each run)."""
    if n > MAX_COLUMNS:
        raise SourceError(f"File '{path}' has {n:,} columns, more than the {MAX_COLUMNS:,} Tessera reads from one "
                          "file: export only the columns the source needs, or split the file.")


def _check_names(path: str, names: list, where: str) -> list[str]:
    _check_width(path, len(names))
    names = ["" if n is None else str(n).replace("\ufeff", "").strip() for n in names]
    unnamed = [str(i + 1) for i, n in enumerate(names) if not n]
    if unnamed:
        shown = ", ".join(unnamed[:10]) + (f" and {len(unnamed) - 10} more" if len(unnamed) > 10 else "")
        raise SourceError(f"File '{path}': the {where} has no name for column(s) {shown}: "
                          f"name every column in the {where}, or delete the empty columns.")
    counts = Counter(n.lower() for n in names)
    dups = sorted({n for n in names if counts[n.lower()] > 1})
    if dups:   # DuckDB column names ignore case, so 'Email' and 'email' clash too
        raise SourceError(f"File '{path}': the {where} has duplicate column names {', '.join(map(repr, dups))} "
                          "(case is ignored): rename them so that every column has its own name.")
    nul = [str(i + 1) for i, n in enumerate(names) if "\x00" in n]
    if nul:   # no engine takes a NUL character in a column name
        raise SourceError(f"File '{path}': a column name of the {where} holds a NUL character (column(s) "
                          f"{', '.join(nul[:10])}): rename it.")
    reserved = [n for n in names if n.lower().startswith("_tessera_")]
    if reserved:
        raise SourceError(f"File '{path}': column names starting with '_tessera_' are reserved by Tessera "
                          f"({', '.join(reserved)}): rename those columns.")
    return names


def _utf8_error(path: str, data: bytes | None = None) -> SourceError:
    if data is None:
        with open(path, "rb") as f:
            data = f.read()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        return SourceError(f"File '{path}' is not valid UTF-8: byte 0x{data[e.start]:02X} at offset {e.start} "
                           f"(line {line}) cannot be decoded; {_UTF8_FIX}.")
    return SourceError(f"File '{path}' is not valid UTF-8; {_UTF8_FIX}.")


# ---------------------------------------------------------------- CSV


def _read_csv(con, path, table, rejects, delimiter, header, quote, max_line_bytes) -> list[str]:
    with open(path, "rb") as f:
        head = f.read(_HEAD)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise SourceError(f"File '{path}' is encoded in UTF-16; Tessera reads UTF-8: {_UTF8_FIX}.")
    if b"\x00" in head:
        raise SourceError(f"File '{path}' is binary (it holds NUL bytes), not CSV text: export the data again "
                          "as CSV, or remove the file from the source.")
    try:
        text, bad = head.decode("utf-8"), None
    except UnicodeDecodeError as e:   # only the header must decode here; DuckDB rejects bad data lines
        text, bad = head[:e.start].decode("utf-8"), e.start
    text = text.removeprefix("\ufeff")
    # One pass over the file, in chunks: a line past the limit refuses the file before anything else
    # reads it (a 200 MB line is not a record; DuckDB would report it as a line of the wrong width).
    last = _scan_lines(path, max_line_bytes)
    if not text.strip() and bad is None:
        raise SourceError(f"File '{path}' {_EMPTY}.")
    first, end, counts = _split_header(text, quote)
    if end is None and bad is not None:
        raise _utf8_error(path, head)
    if end is None and len(head) < os.path.getsize(path):
        raise SourceError(f"File '{path}': the first line never ends (over {_HEAD} bytes, or a quote never "
                          "closed): check that it is a CSV file and that the quotes of the header are closed.")
    if not first.strip():
        raise SourceError(f"File '{path}' starts with an empty line: the first line must be the header "
                          "with the column names; delete the empty lines at the top.")
    if delimiter:
        delim = {"tab": "\t", "\\t": "\t"}.get(delimiter, delimiter)
    else:   # most frequent in the header; ties (one column above all) go to the steadiest on the next lines
        best, sample = max(counts.values()), text[end or len(text):].split("\n")[:50]
        delim = max((s for s in _SEPARATORS if counts[s] == best), key=lambda s: sum(x.count(s) == best for x in sample))
    if len(delim) == 1:
        fields = next(csv.reader(io.StringIO(first, newline=""), delimiter=delim, quotechar=quote or '"',
                                 quoting=csv.QUOTE_MINIMAL if quote else csv.QUOTE_NONE, skipinitialspace=True))
    else:
        fields = first.split(delim)
    if not header:
        _check_width(path, len(fields))
        names, h, hn = [f"column{i + 1}" for i in range(len(fields))], 0, 0
    else:
        names, h, hn = _check_names(path, fields, "header line"), 1, first.count("\n")
        if all(re.fullmatch(r"[-+\d\s.,:/]+", x) for x in names) or any("@" in x for x in names):
            raise SourceError(f"File '{path}': the first line ({first[:80]!r}) looks like data, not a header: "
                              "add a first line with the column names.")
    uid = uuid.uuid4().hex[:12]
    rt, rs, rt2, rs2, rj, recs = (f"_tessera_{p}_{uid}" for p in ("rt", "rs", "rt2", "rs2", "rj", "recs"))

    def scan(ncols: int, rtable: str, rscan: str) -> str:
        # The dialect is always explicit: DuckDB's sniffer is misled by one malformed row near the top.
        cols = ", ".join(f"'c{i}': 'VARCHAR'" for i in range(ncols))
        return (f"read_csv(?, columns={{{cols}}}, auto_detect=false, all_varchar=true, header={str(header).lower()}, "
                f"delim={ql(delim)}, quote={ql(quote)}, escape={ql(quote)}, parallel=false, store_rejects=true, "
                f"max_line_size={max(int(max_line_bytes), 1 << 20) + 2}, "
                f"rejects_table={ql(rtable)}, rejects_scan={ql(rscan)})")

    n = len(names)
    data = [f"c{i}" for i in range(n)]
    try:
        # With parallel=false records keep their file order, so row_number() is the good-record ordinal.
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {qi(table)} AS SELECT "
            + "".join(f"{c} AS {qi(name)}, " for c, name in zip(data, names))
            + f"(_tessera_k + {h + hn})::BIGINT AS {LINE}, _tessera_k, _tessera_nl FROM (SELECT row_number() "
            f"OVER () AS _tessera_k, *, {_newlines('concat_ws(' + ql('') + ', ' + ', '.join(data) + ')')} "
            f"AS _tessera_nl FROM {scan(n, rt, rs)})", [path])
        _collect_rejects(con, rt, rj, names, header)
        nrej, cut, rej_nl = con.execute(
            f"SELECT count(*), coalesce(bool_or(cut), false), coalesce(sum(nl), 0) FROM {rj}").fetchone()
        ngood, good_nl = con.execute(f"SELECT count(*), coalesce(sum(_tessera_nl), 0) FROM {qi(table)}").fetchone()
        end = h + hn + ngood + good_nl + nrej + rej_nl   # last line covered if DuckDB skipped no line
        placed = nrej or good_nl
        if end < last and n > 1 and (cut or _has_empty_line(path)):
            # Lines are missing from the count: blank lines between records (DuckDB counts them but
            # returns nothing) or a reject longer than the text DuckDB keeps. Read again with one column
            # too many, so that every record becomes a reject carrying its byte offset (slower, exact).
            con.execute(f"SELECT count(*) FROM {scan(n + 1, rt2, rs2)}", [path]).fetchall()
            end, placed = max(_place_by_offset(con, path, table, rj, rt2, recs), h + hn), True
        elif placed:
            _place_by_count(con, table, rj, recs, h, hn)
        if placed:
            con.execute(f"UPDATE {qi(table)} SET {LINE} = r.line FROM {recs} r "
                        f"WHERE _tessera_k = r.k AND {LINE} <> r.line")
            con.execute(f"INSERT INTO {qi(rejects)} SELECT r.line, j.column_name, j.reason, j.raw "
                        f"FROM {rj} j JOIN {recs} r ON r.k IS NULL AND r.r = j.r ORDER BY r.line")
        if end < last:   # DuckDB silently drops a last record whose quote never closes
            con.execute(f"INSERT INTO {qi(rejects)} VALUES (?, NULL, ?, ?)", _unterminated(path, end, last))
        con.execute(f"ALTER TABLE {qi(table)} DROP COLUMN _tessera_k")
        con.execute(f"ALTER TABLE {qi(table)} DROP COLUMN _tessera_nl")
    except _NOT_THE_FILE:
        raise
    except duckdb.Error as e:
        hint = ("; it probably mixes line endings (LF and CR LF) or holds a stray carriage return: re-save it "
                "with one kind of line ending") if "invalid state" in str(e) else ""
        raise SourceError(f"File '{path}' could not be read as CSV (separator {delim!r}): "
                          f"{str(e).splitlines()[0]}{hint}") from e
    finally:
        for t in (rt, rs, rt2, rs2, rj, recs):
            con.execute(f"DROP TABLE IF EXISTS {t}")
    return names


def _newlines(expr: str) -> str:
    return f"(strlen({expr}) - strlen(replace({expr}, chr(10), '')))::BIGINT"


def _split_header(text: str, quote: str) -> tuple[str, int | None, dict[str, int]]:
    """First record of ``text`` (quoted newlines included), the index after it, separators outside quotes."""
    counts, inside = dict.fromkeys(_SEPARATORS, 0), False
    for i, ch in enumerate(text):
        if ch == quote and quote:
            inside = not inside
        elif not inside and ch == "\n":
            return text[:i].removesuffix("\r"), i + 1, counts
        elif not inside and ch in counts:
            counts[ch] += 1
    return text.rstrip("\r\n"), None, counts


def _scan_lines(path: str, max_line: int | None = None) -> int:
    """Number of the last line holding more than line breaks.

    With ``max_line``, a line longer than that many bytes (line break excluded) refuses the file,
    naming the line, as soon as it is seen: the file is read in chunks, never whole."""
    lines = last = run = 0   # run: bytes of the current line seen so far
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            if max_line is not None:
                run = _check_line_lengths(path, chunk, lines, run, max_line)
            count = chunk.count(b"\n")
            end = len(chunk)
            while end and chunk[end - 1] in b"\r\n":
                end -= 1
            if end:
                last = lines + count - chunk.count(b"\n", end) + 1
            lines += count
    return last


def _has_empty_line(path: str) -> bool:
    """Whether a line of the file is empty (a second pass, asked only when DuckDB's count of lines
    falls short: the search for two line breaks in a row is slower than the count itself)."""
    tail = b""
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            edge = tail + chunk[:2]   # an empty line may straddle two chunks
            if any(p in s for p in (b"\n\n", b"\n\r\n") for s in (chunk, edge)):
                return True
            tail = chunk[-2:]
    return False


def _check_line_lengths(path: str, chunk: bytes, lines: int, run: int, max_line: int) -> int:
    """Refuse the file when a line of ``chunk`` (whose first byte is on line ``lines + 1``, ``run``
    bytes into it) is longer than ``max_line``; return the bytes of the line the chunk ends in."""
    first = chunk.find(b"\n")
    if first < 0:
        if run + len(chunk) > max_line:
            raise _line_too_long(path, lines + 1, max_line)
        return run + len(chunk)
    if run + first > max_line:
        raise _line_too_long(path, lines + 1, max_line)
    final = chunk.rfind(b"\n")
    pos = first
    while pos < final:
        # from a line break, the next one comes within max_line + 1 bytes or the line is too long;
        # the last break of that window is where the next look starts (lines between are shorter)
        nxt = chunk.rfind(b"\n", pos + 1, pos + max_line + 2)
        if nxt < 0:
            raise _line_too_long(path, lines + 1 + chunk.count(b"\n", 0, pos + 1), max_line)
        pos = nxt
    rest = len(chunk) - final - 1
    if rest > max_line:
        raise _line_too_long(path, lines + 1 + chunk.count(b"\n"), max_line)
    return rest


def _line_too_long(path: str, line: int, max_line: int) -> SourceError:
    return SourceError(f"File '{path}': line {line:,} is too long (more than {max_line:,} bytes, the source's "
                       "max_line_bytes): a record is rarely that long, so the file is probably not in the "
                       "source's format (no line breaks, or a quote never closed); export it again, or raise "
                       "max_line_bytes on the source.")


def _collect_rejects(con, rt: str, rj: str, names: list[str], header: bool) -> None:
    """One row per rejected record: DuckDB's record line ``r``, byte offset, reason, raw text, newlines."""
    width = f"{'header' if header else 'first line'} has {len(names)}"
    con.execute(f"""CREATE OR REPLACE TEMP TABLE {rj} AS
        WITH e AS (SELECT *, TRY_CAST(regexp_extract(error_message, 'Found: (\\d+)', 1) AS BIGINT) AS found,
                          -- DuckDB may report several errors for one record; this one explains it best
                          CASE error_type WHEN 'INVALID ENCODING' THEN 0 WHEN 'INVALID UNICODE' THEN 0
                               WHEN 'UNQUOTED VALUE' THEN 1 WHEN 'TOO MANY COLUMNS' THEN 2 ELSE 3 END AS prio
                   FROM {rt}),
        g AS (SELECT line AS r, arg_min(error_type, prio) AS kind, arg_min(column_name, prio) AS col,
                     arg_min(error_message, prio) AS msg, max(found) AS most, min(found) AS fewest,
                     ltrim(first(csv_line), chr(13) || chr(10)) AS raw, min(line_byte_position) AS pos,
                     strlen(first(csv_line)) - strlen(raw) AS lead,
                     strlen(first(csv_line)) >= {_DUCKDB_RAW_CAP} AS cut FROM e GROUP BY line)
        SELECT r, raw, pos, lead, cut, {_newlines('raw')} AS nl,
          CASE WHEN kind IN ('UNQUOTED VALUE', 'INVALID ENCODING', 'INVALID UNICODE')
               THEN [{', '.join(ql(x) for x in names)}][TRY_CAST(substr(col, 2) AS INTEGER) + 1] END AS column_name,
          CASE kind WHEN 'TOO MANY COLUMNS' THEN 'line has ' || most || ' columns, {width}'
                    WHEN 'MISSING COLUMNS' THEN 'line has ' || fewest || if(fewest = 1, ' column, ', ' columns, ')
                         || '{width}'
                    WHEN 'UNQUOTED VALUE' THEN 'badly quoted value: text after a closing quote, or a quote '
                         || 'never closed (write a quote inside a quoted value as two quotes)'
                    WHEN 'INVALID ENCODING' THEN {ql('invalid UTF-8 text (the file is probably in another encoding, such as Windows-1252): ' + _UTF8_FIX)}
                    WHEN 'INVALID UNICODE' THEN {ql('invalid UTF-8 text: ' + _UTF8_FIX)}
                    ELSE lower(kind) || ': ' || msg END AS reason
        FROM g""")


def _place_by_count(con, table: str, rj: str, recs: str, h: int, hn: int) -> None:
    """Physical start line of every record into ``recs`` (k: good-row ordinal, NULL for rejects).

    DuckDB numbers records (header = 1), not lines: a newline inside a quoted value starts no record,
    so the physical line is the record line plus the newlines inside all earlier records. Good row k
    comes after every reject i (sorted by record line r_i) with r_i - h - i < k.
    """
    con.execute(f"""CREATE OR REPLACE TEMP TABLE {recs} AS
        WITH g AS (SELECT _tessera_k AS k, _tessera_nl AS nl FROM {qi(table)}),
        a AS (SELECT r - {h} - i AS t, max(i) AS j
              FROM (SELECT r, row_number() OVER (ORDER BY r) AS i FROM {rj}) GROUP BY ALL),
        u AS (SELECT g.k, g.k + {h} + coalesce(a.j, 0) AS r, g.nl FROM g ASOF LEFT JOIN a ON g.k > a.t
              UNION ALL SELECT NULL, r, nl FROM {rj})
        SELECT k, r, nl, r + {hn} + coalesce(sum(nl) OVER (ORDER BY r ROWS BETWEEN UNBOUNDED PRECEDING
                                                            AND 1 PRECEDING), 0) AS line FROM u""")


def _place_by_offset(con, path: str, table: str, rj: str, rt2: str, recs: str) -> int:
    """Same as ``_place_by_count`` from the byte offsets of all records; return the last line covered."""
    # When DuckDB's raw text starts with line breaks, its offset points one byte into that text.
    starts = con.execute(f"""SELECT r, min(pos + lead - (lead > 0)::INT) AS start FROM (
        SELECT line AS r, line_byte_position AS pos,
               strlen(csv_line) - strlen(ltrim(csv_line, chr(13) || chr(10))) AS lead FROM {rt2}
        UNION ALL SELECT r, pos, lead FROM {rj}) GROUP BY r ORDER BY r""").fetchnumpy()
    lines = np.searchsorted(_line_breaks(path), starts["start"]) + 1
    view = f"{recs}_at"
    con.register(view, pa.table({"r": starts["r"], "line": lines.astype(np.int64)}))
    try:
        con.execute(f"""CREATE OR REPLACE TEMP TABLE {recs} AS
            SELECT g.k, x.r, g.nl, x.line FROM (SELECT _tessera_k AS k, _tessera_nl AS nl FROM {qi(table)}) g
            JOIN (SELECT *, row_number() OVER (ORDER BY r) AS k FROM {view} ANTI JOIN {rj} USING (r)) x USING (k)
            UNION ALL SELECT NULL, r, nl, line FROM {rj} JOIN {view} USING (r)""")
    finally:
        con.unregister(view)
    return con.execute(f"SELECT coalesce(max(line + nl), 0) FROM {recs}").fetchone()[0]


def _unterminated(path: str, end: int, last: int) -> tuple[int, str, str]:
    """Reject for the text after line ``end``, which a quote that never closes kept from DuckDB."""
    with open(path, "rb") as f:
        f.seek(_line_breaks(path)[end - 1] + 1 if end else 0)
        rest = f.read(_RAW_MAX * 4)
    body = rest.lstrip(b"\r\n")
    line = end + 1 + rest[: len(rest) - len(body)].count(b"\n")
    raw = body.decode("utf-8", "replace").rstrip("\r\n")
    raw = raw if len(raw) <= _RAW_MAX else raw[:_RAW_MAX] + "…"
    return line, (f"quote never closed: lines {line} to {last} could not be read; close the quote "
                  "(a quote inside a quoted value is written as two quotes)"), raw


def _line_breaks(path: str) -> np.ndarray:
    """Byte offset of every newline in the file."""
    parts, base = [np.zeros(0, np.int64)], 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            parts.append(np.flatnonzero(np.frombuffer(chunk, np.uint8) == 10) + base)
            base += len(chunk)
    return np.concatenate(parts)


# ---------------------------------------------------------------- JSON / NDJSON


def _read_json(con, path: str, table: str, rejects: str, *, array: bool) -> list[str]:
    el = f"_tessera_el_{uuid.uuid4().hex[:12]}"
    text = "ltrim(content, chr(65279))"   # DuckDB's JSON parser refuses a byte order mark
    if array:
        src = f"SELECT unnest(range(1, len(l) + 1)) AS i, unnest(l) AS e FROM " \
              f"(SELECT json_extract({text}, '$[*]') AS l FROM read_text(?))"
    else:   # split lines ourselves: DuckDB's NDJSON reader would skip or stop at a bad line
        src = f"SELECT i, rtrim(e, chr(13)) AS e FROM (SELECT unnest(range(1, len(l) + 1)) AS i, unnest(l) AS e " \
              f"FROM (SELECT string_split({text}, chr(10)) AS l FROM read_text(?))) WHERE trim(e, ' ' || chr(9) || chr(13)) <> ''"
    try:
        if array:
            kind = con.execute(f"SELECT json_type({text}) FROM read_text(?)", [path]).fetchone()[0]
            if kind != "ARRAY":
                raise SourceError(f"File '{path}' holds a JSON {kind.lower()}, not an array: write the records as "
                                  "an array of objects ([{...}, {...}]) or one object per line in a .ndjson file.")
        con.execute(f"CREATE OR REPLACE TEMP TABLE {el} AS SELECT i::BIGINT AS i, e::VARCHAR AS e, "
                    f"CASE WHEN json_valid(e) THEN json_type(e) END AS jt FROM ({src})", [path])
    except _NOT_THE_FILE:
        raise
    except duckdb.Error as e:
        message = str(e)
        if "UTF-8" in message:
            raise _utf8_error(path) from e
        at = re.search(r"Malformed JSON at byte (\d+) of input: ([^.]*)", message)
        if not at:
            raise SourceError(f"File '{path}' could not be read as JSON: {message.split(' Input:')[0]}") from e
        with open(path, "rb") as f:
            line = f.read(int(at.group(1))).count(b"\n") + 1
        raise SourceError(f"File '{path}' is not valid JSON: {at.group(2)} at line {line} (byte {at.group(1)}): "
                          "fix the JSON syntax or export the file again.") from e
    try:
        con.execute(f"""INSERT INTO {qi(rejects)} SELECT i, NULL, CASE
              WHEN jt IS NULL AND NOT starts_with(ltrim(e), '{{') THEN 'invalid JSON: the line does not start with {{'
              WHEN jt IS NULL THEN 'invalid JSON: syntax error (check quotes, commas and braces)'
              ELSE 'JSON ' || CASE WHEN jt IN ('ARRAY', 'NULL') THEN lower(jt) WHEN jt = 'VARCHAR' THEN 'string'
                   WHEN jt = 'BOOLEAN' THEN 'true/false' ELSE 'number' END || ' where an object {{...}} was expected'
            END, e FROM {el} WHERE jt IS DISTINCT FROM 'OBJECT' ORDER BY i""")
        keys = [k for (k,) in con.execute(   # union of the keys, in first-seen order
            f"SELECT k FROM (SELECT i, unnest(json_keys(e)) AS k, unnest(range(len(json_keys(e)))) AS p "
            f"FROM {el} WHERE jt = 'OBJECT') GROUP BY k ORDER BY min([i, p])").fetchall()]
        names = _check_names(path, keys, "JSON keys")
        # JSON pointers, so that keys holding dots, spaces or quotes need no JSONPath escaping.
        paths = "[" + ", ".join(ql("/" + k.replace("~", "~0").replace("/", "~1")) for k in keys) + "]"
        values = "".join(f"v[{i + 1}] AS {qi(name)}, " for i, name in enumerate(names))
        con.execute(f"CREATE OR REPLACE TEMP TABLE {qi(table)} AS SELECT {values}i AS {LINE} FROM "
                    f"(SELECT i, {f'json_extract_string(e, {paths})' if keys else 'NULL'} AS v "
                    f"FROM {el} WHERE jt = 'OBJECT') ORDER BY i")
    finally:
        con.execute(f"DROP TABLE IF EXISTS {el}")
    return names


# ---------------------------------------------------------------- Parquet / XLSX


def _read_parquet(con, path: str, table: str, constants: str | None = None) -> list[str]:
    try:
        schema = con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [path]).fetchall()
        names = _check_names(path, [c[0] for c in schema], "Parquet schema")
        # Nested values become JSON text rather than DuckDB's own display syntax.
        exprs = [f"to_json({qi(c)})::VARCHAR" if re.match(r"(STRUCT|MAP|UNION)\(|.*\]$", t) else f"{qi(c)}::VARCHAR"
                 for c, t, *_ in schema]
        kept = constants is not None  # a table of the warehouse, written in the order the threads read
        con.execute(f"CREATE OR REPLACE {'' if kept else 'TEMP '}TABLE {qi(table)} AS SELECT "
                    + "".join(f"{e} AS {qi(n)}, " for e, n in zip(exprs, names))
                    + f"(file_row_number + 1)::BIGINT AS {LINE}{', ' + constants if kept else ''} "
                    "FROM read_parquet(?, file_row_number=true)" + ("" if kept else " ORDER BY file_row_number"),
                    [path])
    except _NOT_THE_FILE:
        raise
    except duckdb.Error as e:
        raise SourceError(f"File '{path}' could not be read as Parquet ({e}): check that it is a Parquet file.") from e
    return names


def _read_xlsx(con, path: str, table: str) -> list[str]:
    import openpyxl

    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as e:   # openpyxl raises many unrelated types for damaged files
        raise SourceError(f"File '{path}' is not a readable .xlsx workbook ({e}): open it in a spreadsheet "
                          "program and save it again as .xlsx.") from e
    try:
        sheets = wb.sheetnames
        if len(sheets) != 1:
            raise SourceError(f"File '{path}' has {len(sheets)} sheets ({', '.join(sheets)}); Tessera reads "
                              "workbooks with exactly one sheet: keep one sheet per file or export each sheet "
                              "to its own file.")
        header_row, header, kinds = None, [], {}
        for rno, row in enumerate(wb[sheets[0]].iter_rows(), start=1):
            if header_row is None:
                if any(c.value not in (None, "") for c in row):
                    header_row, header = rno, [c.value for c in row]
            elif rno > header_row + 200:
                break
            else:   # all_varchar loses cell types: note the columns holding dates or booleans
                for i, c in enumerate(row):
                    if c.is_date or c.data_type == "b":
                        kinds.setdefault(i, "date" if c.is_date else "bool")
    finally:
        wb.close()
    if header_row is None:
        raise SourceError(f"File '{path}': the sheet {_EMPTY}.")
    while header and header[-1] in (None, ""):
        header.pop()
    try:
        return _xlsx_duckdb(con, path, table, header, header_row, kinds)
    except _NOT_THE_FILE:
        raise
    except (duckdb.Error, ImportError, ValueError):
        return _xlsx_openpyxl(con, path, table, _check_names(path, header, "header row"), header_row)


def _xlsx_duckdb(con, path, table, header, header_row, kinds) -> list[str]:
    import duckdb_extensions

    duckdb_extensions.import_extension("excel", con=con)   # bundled in a wheel: nothing is downloaded
    src = "read_xlsx(?, all_varchar=true, header=true, stop_at_empty=false)"
    found = [c[0] for c in con.execute(f"DESCRIBE SELECT * FROM {src}", [path]).fetchall()]
    if len(found) < len(header):
        raise ValueError("read_xlsx found fewer columns than the header row")
    names = _check_names(path, header + [None] * (len(found) - len(header)), "header row")
    exprs = []
    for i, col in enumerate(found):
        v = qi(col)
        if kinds.get(i) == "date":   # all_varchar gives the serial day number (1 = 1900-01-01)
            ts = f"(TIMESTAMP '1899-12-30' + to_seconds(round(TRY_CAST({v} AS DOUBLE) * 86400)::BIGINT))"
            v = (f"CASE WHEN NOT coalesce(TRY_CAST({v} AS DOUBLE) BETWEEN 0 AND 2958466, false) THEN {v} "
                 f"WHEN {ts} = date_trunc('day', {ts}) THEN strftime({ts}, '%Y-%m-%d') "
                 f"ELSE strftime({ts}, '%Y-%m-%d %H:%M:%S') END")
        elif kinds.get(i) == "bool":
            v = f"CASE {v} WHEN '1' THEN 'true' WHEN '0' THEN 'false' ELSE {v} END"
        exprs.append(f"{v} AS {qi(names[i])}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE {qi(table)} AS SELECT {', '.join(exprs)}, "
                f"(row_number() OVER () + {header_row})::BIGINT AS {LINE} FROM {src}", [path])
    return names


def _xlsx_openpyxl(con, path, table, names, header_row, batch=50_000) -> list[str]:
    import openpyxl

    con.execute(f"CREATE OR REPLACE TEMP TABLE {qi(table)} ("
                + "".join(f"{qi(n)} VARCHAR, " for n in names) + f"{LINE} BIGINT)")
    n, view, start = len(names), f"_tessera_batch_{uuid.uuid4().hex[:12]}", header_row + 1
    wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        rows = wb[wb.sheetnames[0]].iter_rows(min_row=start, values_only=True)
        while chunk := [r for _, r in zip(range(batch), rows)]:
            columns = [pa.array([_cell_text(r[i]) if i < len(r) else None for r in chunk], pa.string())
                       for i in range(n)] + [pa.array(range(start, start + len(chunk)), pa.int64())]
            con.register(view, pa.table(columns, names=[f"c{i}" for i in range(n)] + [LINE]))
            con.execute(f"INSERT INTO {qi(table)} SELECT * FROM {view}")
            con.unregister(view)
            start += len(chunk)
    finally:
        wb.close()
    return names


def _cell_text(v) -> str | None:
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, datetime.datetime):
        return v.date().isoformat() if v.time() == datetime.time() else v.isoformat(sep=" ")
    if isinstance(v, (datetime.date, datetime.time)):
        return v.isoformat()
    return format(v, ".15g") if isinstance(v, float) else str(v)


# ---------------------------------------------------------------- type inference

_TS = (r"[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}([.][0-9]+)?)?)?"
       r"( ?(Z|[+-][0-9]{2}(:?[0-9]{2})?))?")


INFER_SAMPLE_ROWS = 10_000


def infer_types(con: duckdb.DuckDBPyConnection, table: str, columns: list[str], *,
                decimal_comma: bool = False) -> dict[str, str]:
    """Type each column from all its non-empty values, in one aggregate query.

    Numbers with a leading zero or a leading '+' stay strings: they are identifiers (phone numbers,
    zip codes) whose text matters. Only ISO dates count; day-first dates stay strings.
    """
    if not columns:
        return {}
    point = "," if decimal_comma else "[.]"
    number = f"-?(0|[1-9][0-9]*)({point}[0-9]+)?([eE][-+]?[0-9]+)?|-?{point}[0-9]+"
    checks = [   # a cast only runs on values whose shape matched; empty values (NULL) do not vote
        ("integer", "CASE WHEN @ IS NULL THEN NULL WHEN regexp_full_match(@, '-?(0|[1-9][0-9]*)') THEN TRY_CAST(@ AS BIGINT) IS NOT NULL "
                    "ELSE false END"),
        ("float", f"regexp_full_match(@, {ql(number)})"),
        ("boolean", "lower(@) IN ('true', 'false', 'yes', 'no', 'oui', 'non')"),
        ("date", "CASE WHEN @ IS NULL THEN NULL WHEN regexp_full_match(@, '[0-9]{4}-[0-9]{2}-[0-9]{2}') THEN TRY_CAST(@ AS DATE) IS NOT NULL "
                 "ELSE false END"),
        ("timestamp", f"CASE WHEN @ IS NULL THEN NULL WHEN regexp_full_match(@, {ql(_TS)}) THEN TRY_CAST(@ AS TIMESTAMP) IS NOT NULL "
                      "ELSE false END"),
    ]
    values = ", ".join(f"NULLIF(trim({qi(c)}), '') AS v{i}" for i, c in enumerate(columns))

    def votes(candidates: dict[int, list[int]], source: str) -> tuple[int, dict[int, tuple[int, list[bool]]]]:
        """(rows, {column: (non-empty values, does every one pass check k)}) of the columns and checks asked."""
        parts, where = ["count(*)"], []
        for i, ks in candidates.items():
            parts.append(f"count(v{i})")
            parts += [f"coalesce(bool_and({checks[k][1].replace('@', f'v{i}')}), false)" for k in ks]
            where.append(i)
        row = con.execute(f"SELECT {', '.join(parts)} FROM (SELECT {values} FROM {source})").fetchone()
        out, pos = {}, 1
        for i in where:
            n = len(candidates[i])
            out[i] = (row[pos], list(row[pos + 1:pos + 1 + n]))
            pos += 1 + n
        return row[0], out

    # A type that fails on the first rows fails on all: only the checks the first rows pass are
    # run over the whole table (most text columns pass none, and the regular expressions are the cost).
    # (one row more than the sample tells whether the sample was the whole table: a small file is
    # read once)
    rows, sample = votes({i: list(range(len(checks))) for i in range(len(columns))},
                         f"(SELECT * FROM {qi(table)} LIMIT {INFER_SAMPLE_ROWS + 1})")
    rest = {i: [k for k, good in enumerate(ok) if good or not n] for i, (n, ok) in sample.items()}
    rest = {i: ks for i, ks in rest.items() if ks}  # (a column empty in the first rows keeps every check)
    whole = rows <= INFER_SAMPLE_ROWS
    full = votes(rest, qi(table))[1] if rest and not whole else {}
    types = {}
    for i, c in enumerate(columns):
        if i in full:
            (count, ok), ks = full[i], rest[i]
        elif whole:
            (count, ok), ks = sample[i], range(len(checks))
        else:  # (no check passed on the first rows)
            count, ok, ks = 0, [], []
        passed = [k for k, good in zip(ks, ok) if good]
        types[c] = checks[passed[0]][0] if count and passed else "string"
    return types
