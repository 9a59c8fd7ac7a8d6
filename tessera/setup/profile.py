"""Read every file of a folder and profile its columns in the engine.

Each file (or a sample of its first records, when it is large) is parsed by the same reader as
an import into an in-memory DuckDB connection, then every column is profiled by one aggregate
query built with Ibis: filled and distinct counts and the share of values of each shape
(e-mail, phone, ISO date, day/month/year dates with a part above 12, integers, decimal point or
comma, booleans, capitals). No value is looked at one by one in Python.
"""

from __future__ import annotations

import csv
import functools
import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import ibis

from tessera.engine import filereader
from tessera.engine.dialects import dialect_for
from tessera.engine.sample import LONG, SAMPLE_BYTES, csv_dialect, first_rows, head_copy, long_form
from tessera.errors import SourceError
from tessera.normalize.rules import is_gender

SUPPORTED = {".csv", ".txt", ".tsv", ".json", ".ndjson", ".jsonl", ".parquet", ".pq", ".xlsx"}
_CUTTABLE = ("csv", "ndjson")
PROFILE_ROWS = 10_000  # the values of at most this many records per file are profiled

EMAIL_RE = r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$"
PHONE_RE = r"^\+?[0-9][0-9 ().\-/]{6,22}[0-9]$"
ISO_DATE_RE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
ISO_TS_RE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}"
DMY_RE = r"^([0-9]{1,2})[/.\-]([0-9]{1,2})[/.\-]([0-9]{4})( [0-9]{1,2}:[0-9]{2}(:[0-9]{2})?)?$"
DMY_DATE_RE = r"^[0-9]{1,2}[/.\-][0-9]{1,2}[/.\-][0-9]{4}$"
INT_RE = r"^-?[0-9]+$"
DEC_POINT_RE = r"^-?[0-9]+\.[0-9]+$"
# 1234,50 or 1.234,50 or 1 234,50 (a space, no-break space or narrow no-break space between thousands)
DEC_COMMA_RE = "^-?([0-9]+|[0-9]{1,3}([. \u00a0\u202f][0-9]{3})+),[0-9]+$"
BOOL_WORDS = ["true", "false", "yes", "no", "oui", "non", "si", "sí", "vrai", "faux", "y", "n", "t", "f"]
NULL_WORDS = ["n/a", "na", "null", "none", "-", "--", "?", "nan", "nil", "inconnu", "unknown", "aucun", "ninguno",
              "desconocido", "non renseigne", "non renseigné", "0000-00-00", "00/00/0000", "#n/a", "vide"]


@dataclass
class ColumnProfile:
    name: str
    filled: int = 0  # non-empty values
    distinct: int = 0
    shapes: dict[str, int] = field(default_factory=dict)
    type: str = "string"  # the type an import infers
    nulls: dict[str, int] = field(default_factory=dict)  # null-like values present -> count
    examples: list[str] = field(default_factory=list)

    profiled: int = 0  # non-empty values among the profiled rows (the base of the shapes)

    def share(self, shape: str) -> float:
        return self.shapes.get(shape, 0) / self.profiled if self.profiled else 0.0


@dataclass
class FileProfile:
    path: Path
    rel: str  # relative to the folder, with '/'
    fmt: str
    size: int
    table: str | None = None
    rows: int = 0  # records read (in the sample when sampled)
    rows_estimate: int = 0  # records in the whole file
    rejected: int = 0
    sampled: bool = False
    delimiter: str | None = None
    bom: bool = False
    encoding: str = "utf-8"
    columns: dict[str, ColumnProfile] = field(default_factory=dict)
    error: str | None = None
    decimal_comma: bool = False
    profiled: str | None = None  # the table of the first PROFILE_ROWS records, whose values are profiled
    profiled_rows: int = 0
    peeked: bool = False  # a later file of a series: its header only was read


def discover(folder: Path) -> list[Path]:
    """Every supported data file under ``folder`` (hidden files and folders left out), sorted."""
    out = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and Path(name).suffix.lower() in SUPPORTED:
                out.append(Path(root) / name)
    return out


class Profiler:
    """An in-memory DuckDB connection that holds the profiled files as text tables."""

    def __init__(self) -> None:
        self.con = duckdb.connect()
        self.con.execute("SET preserve_insertion_order = false")
        self.ibis = ibis.duckdb.from_connection(self.con)
        self._tmp = tempfile.TemporaryDirectory(prefix="tessera_setup_")
        self.timings: dict[str, float] = {}

    def close(self) -> None:
        self.con.close()
        self._tmp.cleanup()

    def table(self, name: str) -> ibis.Table:
        return self.ibis.table(name)

    def read(self, path: Path, folder: Path, index: int) -> FileProfile:
        rel = path.relative_to(folder).as_posix()
        prof = FileProfile(path, rel, "", path.stat().st_size)
        try:
            prof.fmt = filereader.detect_format(str(path))
        except SourceError as exc:
            prof.error = str(exc)
            return prof
        read_path = str(path)
        if prof.fmt == "csv":
            dialect = csv_dialect(read_path)
            prof.delimiter, prof.bom, prof.encoding = dialect["delimiter"], dialect["bom"], dialect["encoding"]
            if prof.encoding != "utf-8":
                prof.error = (f"File '{rel}' is not UTF-8 ({prof.encoding} or a legacy encoding such as "
                              f"Windows-1252): {filereader._UTF8_FIX}.")
                return prof
        if prof.fmt in _CUTTABLE and prof.size > SAMPLE_BYTES:
            read_path = os.path.join(self._tmp.name, f"s{index}{path.suffix}")
            prof.sampled = head_copy(str(path), read_path)
        table = f"f{index}"
        try:
            read = filereader.read_file(self.con, read_path, prof.fmt, table=table,
                                        delimiter=prof.delimiter if prof.fmt == "csv" else None)
        except SourceError as exc:
            prof.error = str(exc).replace(read_path, rel)
            return prof
        prof.table, prof.rows, prof.rejected = table, read.rows, read.rejected
        if prof.sampled:
            # the cut keeps whole lines: rows grow with bytes
            prof.rows_estimate = int(read.rows * prof.size / max(os.path.getsize(read_path), 1))
        else:
            prof.rows_estimate = read.rows
        if read.rows > PROFILE_ROWS:
            prof.profiled, prof.profiled_rows = f"{table}_p", PROFILE_ROWS
            first_rows(self.con, table, PROFILE_ROWS, prof.profiled)
        else:
            prof.profiled, prof.profiled_rows = table, read.rows
        self._profile_columns(prof, read.columns)
        return prof

    def peek(self, path: Path, folder: Path, like: FileProfile) -> FileProfile | None:
        """A later file of a dated series: only its header is read. Returns None when its columns
        or format differ from ``like`` (the series' first file), which must then be read whole."""
        rel = path.relative_to(folder).as_posix()
        prof = FileProfile(path, rel, like.fmt, path.stat().st_size)
        try:
            if filereader.detect_format(str(path)) != like.fmt or like.fmt not in _CUTTABLE:
                return None
            with open(path, "rb") as f:
                head = f.read(1 << 16)
            first = head.split(b"\n", 1)[0].decode("utf-8").removeprefix("\ufeff").rstrip("\r")
        except (SourceError, UnicodeDecodeError, OSError):
            return None
        if like.fmt == "csv":
            dialect = csv_dialect(str(path))
            if dialect["delimiter"] != like.delimiter or dialect["encoding"] != "utf-8":
                return None
            names = next(csv.reader([first], delimiter=like.delimiter or ","), [])
            prof.delimiter, prof.bom = like.delimiter, dialect["bom"]
        else:
            try:
                names = list(json.loads(first))
            except (ValueError, TypeError):
                return None
        if [n.strip() for n in names] != list(like.columns):
            return None
        prof.columns, prof.table, prof.profiled = like.columns, like.table, like.profiled
        prof.decimal_comma, prof.sampled, prof.peeked = like.decimal_comma, True, True
        per_byte = like.rows / max(min(like.size, SAMPLE_BYTES), 1)
        prof.rows_estimate = int(per_byte * prof.size)
        return prof

    def _profile_columns(self, prof: FileProfile, columns: list[str]) -> None:
        for c in columns:
            prof.columns[c] = ColumnProfile(c)
        if not columns:
            return
        # One query whatever the number of columns: the table in long form, grouped by column.
        # Filled and distinct counts (record keys) over every row read; shapes over the profiled rows.
        long_form(self.con, prof.table, columns)
        for r in self._run(_count_query()):
            p = prof.columns[r["col"]]
            p.filled, p.distinct = r["n"] or 0, r["d"] or 0
        long_form(self.con, prof.profiled, columns)
        for r in self._run(_shape_query()):
            prof.columns[r["col"]].shapes = {s: int(r[s] or 0) for s in SHAPES}
            prof.columns[r["col"]].profiled = r["n"] or 0
        # The decimal comma is a property of the file: numbers that only parse with it.
        comma = sum(p.shapes["dec_comma"] for p in prof.columns.values())
        point = sum(p.shapes["dec_point"] for p in prof.columns.values())
        prof.decimal_comma = prof.fmt == "csv" and prof.delimiter != "," and comma > 0 and comma > point
        types = filereader.infer_types(self.con, prof.profiled, columns, decimal_comma=prof.decimal_comma)
        for c, kind in types.items():
            prof.columns[c].type = kind
        self._null_values(prof, columns)
        self._examples(prof, columns)

    def _null_values(self, prof: FileProfile, columns: list[str]) -> None:
        """The null-like values actually present, per column (placeholder words, zeros only)."""
        for r in self._run(_null_query()):
            prof.columns[r["col"]].nulls[r["val"]] = r["n"]

    def _examples(self, prof: FileProfile, columns: list[str]) -> None:
        """Up to three distinct example values per column, for the evidence comments."""
        for r in self._run(_example_query()):
            text = r["val"] if len(r["val"]) <= 30 else r["val"][:27] + "..."
            prof.columns[r["col"]].examples.append(text)

    def _run(self, sql: str) -> list[dict]:
        return self.con.execute(sql).fetch_arrow_table().to_pylist()


SHAPES = ("email", "phone", "lead0", "iso_date", "iso_ts", "dmy", "dmy_date", "first_gt12", "second_gt12",
          "int", "dec_point", "dec_comma", "bool", "zero_one", "letters", "upper", "lower", "zeros", "null_word", "nested", "gender")


def _long() -> ibis.Table:
    return ibis.table({"col": "string", "val": "string"}, name=LONG)


@functools.cache
def _shape_query() -> str:
    """Filled and distinct counts and shape counts per column of the long view (compiled once)."""
    long = _long()
    v = long.val  # trimmed, empty values NULL
    low = v.lower()
    first, second = v.re_extract(DMY_RE, 1).try_cast("int32"), v.re_extract(DMY_RE, 2).try_cast("int32")
    shapes = {
        "email": v.re_search(EMAIL_RE),
        "phone": v.re_search(PHONE_RE) & (v.re_replace("[^0-9]", "").length() >= 8),
        "lead0": v.re_search(r"^(\+|00|0[1-9])"),
        "iso_date": v.re_search(ISO_DATE_RE),
        "iso_ts": v.re_search(ISO_TS_RE),
        "dmy": v.re_search(DMY_RE),
        "dmy_date": v.re_search(DMY_DATE_RE),
        # a value with both parts above 12 is no date at all: evidence of neither order
        "first_gt12": v.re_search(DMY_RE) & (first > 12) & (second <= 12),
        "second_gt12": v.re_search(DMY_RE) & (second > 12) & (first <= 12),
        "int": v.re_search(INT_RE),
        "dec_point": v.re_search(DEC_POINT_RE),
        "dec_comma": v.re_search(DEC_COMMA_RE),
        "bool": low.isin(BOOL_WORDS),
        "zero_one": v.isin(["0", "1"]),
        "letters": v.re_search("[A-Za-zÀ-ÿ]"),
        "upper": v.re_search("[A-ZÀ-Þ]") & ~v.re_search("[a-zß-ÿ]"),
        "lower": v.re_search("[a-zß-ÿ]") & ~v.re_search("[A-ZÀ-Þ]"),
        "zeros": v.re_search(r"^[0\s.\-/+()]+$") & v.re_search("0"),
        "null_word": low.isin(NULL_WORDS),
        "nested": v.re_search(r"^(\[\s*[\{\[]|\{)") | (v == "[]"),
        "gender": is_gender(v, dialect_for("duckdb")),
    }
    aggs = {"n": v.count(), "d": v.nunique()}
    aggs.update({s: cond.fill_null(False).cast("int64").sum() for s, cond in shapes.items()})
    return ibis.to_sql(long.group_by("col").aggregate(**aggs), dialect="duckdb")


@functools.cache
def _count_query() -> str:
    long = _long()
    return ibis.to_sql(long.group_by("col").aggregate(n=long.val.count(), d=long.val.nunique()), dialect="duckdb")


@functools.cache
def _null_query() -> str:
    long = _long()
    v = long.val
    zeros = v.re_search(r"^[0\s.\-/+()]+$") & (v.re_replace("[^0]", "").length() >= 6)
    hit = long.filter(v.lower().isin(NULL_WORDS) | zeros)
    counts = hit.group_by(["col", "val"]).agg(n=hit.count()).order_by(["col", ibis.desc("n"), "val"])
    return ibis.to_sql(counts.limit(500), dialect="duckdb")


@functools.cache
def _example_query() -> str:
    long = _long()
    long = long.filter(long.val.notnull()).distinct()
    w = ibis.window(group_by=long.col, order_by=long.val)
    picked = long.mutate(k=ibis.row_number().over(w)).filter(ibis._.k < 3)
    return ibis.to_sql(picked.order_by(["col", "k"]), dialect="duckdb")


def slug(text: str) -> str:
    """A configuration name from free text: lower-case ASCII letters, digits and '_'."""
    import unicodedata

    text = "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", text).lower()
    text = re.sub(r"[^a-z0-9]+", "_", text).strip("_")
    if not text or not text[0].isalpha():
        text = "c_" + text
    return text[:63].rstrip("_")
