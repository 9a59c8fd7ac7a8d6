"""Synthetic contact records for the identity-resolution benchmark.

:func:`generate_identity_bench` writes ``n_records`` contact records spread over three
sources (``src_a``, ``src_b``, ``src_c``), of which ``duplicate_rate`` are extra records
of an already present person (in another source or in the same one), plus the ground
truth ``truth.parquet`` (``source, record_key, person_id``) and a ``workspace.yaml`` with a
deduplicated ``contacts`` dataset keyed on e-mail, phone and customer id.

Identity keys of a record:

* ``email``: unique per person; case and surrounding-space variations; missing on
  ~13% of records;
* ``phone``: a French mobile in an allocated range, unique per person, in seven usual writings
  (``+33 6 12 34 56 78``, ``0033612345678``, ``06.12.34.56.78``, ``0612345678``...);
  missing on ~25% of records;
* ``customer_id``: unique per person, present on ~50% of records.

Every record carries at least one key, and every extra record shares at least one key
(after trim + lower-case for e-mails, E.164 for phones) with the first record of its
person, so the records of a person are always connected and two persons never share a key.

Everything is computed on whole columns with numpy and pyarrow: ten million records take
a few tens of seconds, most of it writing the files.
"""

from __future__ import annotations

import time
import unicodedata
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from tessera.demo.generator import (
    EMAIL_DOMAINS,
    FIRST_NAMES_F,
    FIRST_NAMES_M,
    FR_MOBILE_PREFIXES,
    LAST_NAMES,
    dump_yaml,
)

SOURCES = ("src_a", "src_b", "src_c")
SOURCE_SHARES = (0.45, 0.35, 0.20)
KEY_PREFIX = {"src_a": "A", "src_b": "B", "src_c": "C"}
P_EMAIL, P_PHONE, P_CUSTOMER_ID = 0.85, 0.75, 0.50

# allocated French mobile ranges: 162 three-digit prefixes of a million numbers each
_PREFIXES = np.array([int(p) for p in FR_MOBILE_PREFIXES], dtype=np.int64)
_MOBILE_SPACE = len(_PREFIXES) * 1_000_000
_ID_SPACE = 1_000_000_000
_MULT_PHONE = 48_271  # coprime with the mobile space: person -> number is a bijection
_MULT_ID = 69_621  # coprime with 10**9


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKD", text)
    return "".join(c for c in text.lower() if c.isalnum() and not unicodedata.combining(c))


def _by_code(values: pa.Array, code: np.ndarray, funcs: list[Callable[[pa.Array], pa.Array]]) -> pa.Array:
    """Apply ``funcs[k]`` to the values whose code is ``k``, keeping the original order."""
    order = np.argsort(code, kind="stable")
    counts = np.bincount(code, minlength=len(funcs))
    ordered = values.take(pa.array(order))
    chunks, start = [], 0
    for func, count in zip(funcs, counts):
        chunk = ordered.slice(start, int(count))
        chunks.append(func(chunk) if count else chunk)
        start += int(count)
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order), dtype=order.dtype)
    return pa.concat_arrays([c.cast(pa.string()) for c in chunks]).take(pa.array(inverse))


def _join(*parts) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


def persons(rng: np.random.Generator, n_persons: int):
    """Each person's id, first and last name indexes, e-mail and mobile number (national digits,
    distinct per person), drawn in a fixed order from ``rng``."""
    pid = np.arange(n_persons, dtype=np.int64)
    first_names = FIRST_NAMES_F + FIRST_NAMES_M
    first_idx = rng.integers(0, len(first_names), n_persons)
    last_idx = rng.integers(0, len(LAST_NAMES), n_persons)
    domains = EMAIL_DOMAINS["FR"]
    domain_idx = rng.integers(0, len(domains), n_persons)
    email_p = _join(
        pa.array([_fold(f) for f in first_names]).take(pa.array(first_idx)), ".",
        pa.array([_fold(name) for name in LAST_NAMES]).take(pa.array(last_idx)),
        pc.cast(pa.array(pid), pa.string()), "@",
        pa.array(domains).take(pa.array(domain_idx)),
    )
    v = (pid * _MULT_PHONE + int(rng.integers(0, _MOBILE_SPACE))) % _MOBILE_SPACE
    nsn_p = pc.cast(pa.array(_PREFIXES[v // 1_000_000] * 1_000_000 + v % 1_000_000), pa.string())
    return pid, first_idx, last_idx, email_p, nsn_p


def shuffled_records(rng: np.random.Generator, n_persons: int, n_dup: int) -> tuple[np.ndarray, np.ndarray]:
    """One record per person plus ``n_dup`` extra records of random persons, in random order:
    (person of each record, whether it is the person's first record)."""
    n = n_persons + n_dup
    person = np.concatenate([np.arange(n_persons, dtype=np.int64), rng.integers(0, n_persons, n_dup)])
    is_base = np.zeros(n, dtype=bool)
    is_base[:n_persons] = True
    order = rng.permutation(n)
    return person[order], is_base[order]


def _phone_formats() -> list[Callable[[pa.Array], pa.Array]]:
    def pieces(s: pa.Array):
        return [pc.utf8_slice_codeunits(s, a, b) for a, b in ((0, 1), (1, 3), (3, 5), (5, 7), (7, 9))]

    def spaced(prefix: str, sep: str):
        def fmt(s: pa.Array) -> pa.Array:
            d0, p1, p2, p3, p4 = pieces(s)
            return _join(prefix, d0, sep, p1, sep, p2, sep, p3, sep, p4)
        return fmt

    return [
        spaced("+33 ", " "),  # +33 6 12 34 56 78
        lambda s: _join("0033", s),  # 0033612345678
        spaced("0", "."),  # 06.12.34.56.78
        lambda s: _join("0", s),  # 0612345678
        spaced("+33 (0)", " "),  # +33 (0)6 12 34 56 78
        spaced("0", " "),  # 06 12 34 56 78
        lambda s: _join("+33", s),  # +33612345678
    ]


def _email_formats() -> list[Callable[[pa.Array], pa.Array]]:
    return [
        lambda s: s,
        pc.utf8_upper,  # JEAN.DUPONT12@GMAIL.COM
        pc.utf8_title,  # Jean.Dupont12@Gmail.Com
        lambda s: _join("  ", s, " "),
        lambda s: _join(" ", pc.utf8_capitalize(s), " "),
    ]


def bench_workspace_config(fmt: str) -> dict:
    ext = "csv" if fmt == "csv" else "parquet"
    sources = []
    for name in SOURCES:
        source = {
            "name": name,
            "connection": "bench_files",
            "pattern": f"{name}.{ext}",
            "format": fmt,
            "record_keys": ["record_id"],
            "normalize": {
                "email": ["email"],
                "phone": [{"phone": {"country": "FR"}}],
                "customer_id": ["trim", "upper"],
            },
        }
        if fmt == "csv":
            source["csv"] = {"delimiter": ","}
            source["types"] = {"record_id": "string", "phone": "string", "customer_id": "string",
                               "updated_at": "timestamp"}
        sources.append(source)
    columns = {"email": "email", "phone": "phone", "customer_id": "customer_id", "first_name": "first_name",
               "last_name": "last_name", "updated_at": "updated_at"}
    contacts = {
        "name": "contacts",
        "entity": "contacts",
        "deduplicate": True,
        "identity_keys": [{"column": "email"}, {"column": "phone"}, {"column": "customer_id"}],
        "shared_value_threshold": 50,
        "date_column": "updated_at",
        "source_priority": list(SOURCES),
        "columns": [
            {"name": "email", "type": "string", "semantic": "Email", "merge": "most_recent"},
            {"name": "phone", "type": "string", "semantic": "Phone", "merge": "most_recent"},
            {"name": "customer_id", "type": "string", "semantic": "CustomerId", "merge": "most_frequent"},
            {"name": "first_name", "type": "string", "semantic": "FirstName", "merge": "most_frequent"},
            {"name": "last_name", "type": "string", "semantic": "LastName", "merge": "most_frequent"},
            {"name": "updated_at", "type": "timestamp", "semantic": "UpdatedAt", "merge": "max"},
        ],
        "mappings": [{"source": name, "columns": dict(columns)} for name in SOURCES],
    }
    return {
        "connections": [{"name": "bench_files", "type": "local", "path": "."}],
        "sources": sources,
        "datasets": [contacts],
    }


def generate_identity_bench(
    out_dir: str | Path,
    n_records: int = 1_000_000,
    seed: int = 1,
    fmt: str = "parquet",
    duplicate_rate: float = 0.2,
) -> dict:
    """Write the benchmark sources, ``truth.parquet`` and ``workspace.yaml`` under ``out_dir``.

    Returns counts (records, persons, duplicates per source), the number of same-person
    record pairs, the paths written and the generation time in seconds.
    """
    if fmt not in ("parquet", "csv"):
        raise ValueError("fmt must be 'parquet' or 'csv'")
    if n_records < 10:
        raise ValueError("n_records must be at least 10")
    if not 0.0 <= duplicate_rate < 1.0:
        raise ValueError("duplicate_rate must be in [0, 1)")
    started = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n = int(n_records)
    n_dup = int(round(n * duplicate_rate))
    n_persons = n - n_dup
    if n_persons > _MOBILE_SPACE:
        raise ValueError("too many persons for distinct mobile numbers")

    # ------------------------------------------------------------ persons
    pid, first_idx, last_idx, email_p, nsn_p = persons(rng, n_persons)
    cid = (pid * _MULT_ID + int(rng.integers(0, _ID_SPACE))) % _ID_SPACE
    cid_p = _join("CU", pc.utf8_lpad(pc.cast(pa.array(cid), pa.string()), 9, "0"))

    # ------------------------------------------------------------ records (random order)
    person, is_base = shuffled_records(rng, n_persons, n_dup)

    has_email = rng.random(n) < P_EMAIL
    has_phone = rng.random(n) < P_PHONE
    has_cid = rng.random(n) < P_CUSTOMER_ID
    has_email |= ~(has_email | has_phone | has_cid)
    # an extra record shares at least one key with the first record of its person
    base_pos = np.empty(n_persons, dtype=np.int64)
    base_pos[person[is_base]] = np.flatnonzero(is_base)
    dup = np.flatnonzero(~is_base)
    base = base_pos[person[dup]]
    shared = (has_email[dup] & has_email[base]) | (has_phone[dup] & has_phone[base]) | (has_cid[dup] & has_cid[base])
    fix, fix_base = dup[~shared], base[~shared]
    candidates = np.stack([has_email[fix_base], has_phone[fix_base], has_cid[fix_base]])
    choice = np.argmax(np.where(candidates, rng.random(candidates.shape), -1.0), axis=0)
    has_email[fix[choice == 0]] = True
    has_phone[fix[choice == 1]] = True
    has_cid[fix[choice == 2]] = True
    del base_pos, dup, base, shared, fix, fix_base, candidates, choice

    person_arr = pa.array(person)
    null = pa.scalar(None, pa.string())
    email_code = rng.choice(5, n, p=[0.76, 0.06, 0.06, 0.06, 0.06]).astype(np.int8)
    email = pc.if_else(pa.array(has_email), _by_code(email_p.take(person_arr), email_code, _email_formats()), null)
    phone_code = rng.integers(0, 7, n, dtype=np.int8)
    phone = pc.if_else(pa.array(has_phone), _by_code(nsn_p.take(person_arr), phone_code, _phone_formats()), null)
    customer_id = pc.if_else(pa.array(has_cid), cid_p.take(person_arr), null)
    first_name = pa.array(FIRST_NAMES_F + FIRST_NAMES_M).take(pa.array(first_idx[person]))
    last_name = pa.array(LAST_NAMES).take(pa.array(last_idx[person]))
    name_code = rng.choice(3, n, p=[0.85, 0.10, 0.05]).astype(np.int8)
    last_name = _by_code(last_name, name_code, [lambda s: s, pc.utf8_upper, pc.utf8_lower])
    start = np.datetime64("2019-01-01T00:00:00", "s").astype(np.int64)
    updated_at = pa.array(start + rng.integers(0, 6 * 365 * 86400, n), pa.timestamp("s"))
    del email_p, nsn_p, cid_p

    # ------------------------------------------------------------ sources (contiguous slices)
    bounds = np.concatenate([[0], np.round(np.cumsum(SOURCE_SHARES) * n).astype(np.int64)])
    bounds[-1] = n
    ext = "csv" if fmt == "csv" else "parquet"
    files: dict[str, str] = {}
    per_source: dict[str, int] = {}
    duplicates_per_source: dict[str, int] = {}
    truth_parts = []
    for i, name in enumerate(SOURCES):
        lo, hi = int(bounds[i]), int(bounds[i + 1])
        count = hi - lo
        seq = pc.utf8_lpad(pc.cast(pa.array(np.arange(1, count + 1, dtype=np.int64)), pa.string()), 9, "0")
        record_id = _join(KEY_PREFIX[name], seq)
        table = pa.table({
            "record_id": record_id,
            "first_name": first_name.slice(lo, count),
            "last_name": last_name.slice(lo, count),
            "email": email.slice(lo, count),
            "phone": phone.slice(lo, count),
            "customer_id": customer_id.slice(lo, count),
            "updated_at": updated_at.slice(lo, count),
        })
        path = out / f"{name}.{ext}"
        if fmt == "csv":
            pacsv.write_csv(table, path)
        else:
            pq.write_table(table, path)
        files[name] = str(path)
        per_source[name] = count
        duplicates_per_source[name] = int((~is_base[lo:hi]).sum())
        truth_parts.append(pa.table({
            "source": pa.DictionaryArray.from_arrays(pa.array(np.zeros(count, dtype=np.int8)), pa.array([name])),
            "record_key": record_id,
            "person_id": pa.array(person[lo:hi]),
        }))
    truth = pa.concat_tables([t.cast(pa.schema([("source", pa.string()), ("record_key", pa.string()),
                                                ("person_id", pa.int64())])) for t in truth_parts])
    truth_path = out / "truth.parquet"
    pq.write_table(truth, truth_path)
    workspace_path = out / "workspace.yaml"
    workspace_path.write_text(
        f"# Identity resolution benchmark: {n} contact records, {n_persons} persons (seed={seed}).\n"
        + dump_yaml(bench_workspace_config(fmt)),
        encoding="utf-8",
    )

    records_per_person = np.bincount(person, minlength=n_persons)
    return {
        "n_records": n,
        "n_persons": n_persons,
        "n_duplicates": n_dup,
        "duplicate_rate": n_dup / n,
        "per_source": per_source,
        "duplicates_per_source": duplicates_per_source,
        "true_pairs": int((records_per_person * (records_per_person - 1) // 2).sum()),
        "max_records_per_person": int(records_per_person.max()),
        "key_rates": {
            "email": float(has_email.mean()),
            "phone": float(has_phone.mean()),
            "customer_id": float(has_cid.mean()),
        },
        "files": files,
        "truth": str(truth_path),
        "workspace": str(workspace_path),
        "format": fmt,
        "seconds": round(time.perf_counter() - started, 3),
    }
