"""The review queue of probabilistic matching and the manual overrides of the identity graph.

A run publishes ``<dataset>__matches``: the scored record pairs from the ``review`` threshold up,
with their comparison levels and the unified ids they ended in. Pairs below ``merge`` that are
still in two unified records form the review queue. Decisions and manual rules live in the
metadata store (``identity_overrides``) and are applied by every later run, on the record ids
(``_tessera_record``), which survive re-imports:

* accept a pair, or ``merge`` records: one more link between them;
* reject a pair: the pair is never linked by matching;
* ``split`` records: they keep links only among themselves (a wrong merge undone).

The larger part of a split unified record keeps its ``tessera_id`` (the stable-id rule of
:mod:`tessera.identity.resolve`).
"""

from __future__ import annotations

from tessera.config.models import DatasetConfig
from tessera.errors import IdentityError, NotFoundError
from tessera.identity.matching import level_names
from tessera.identity.resolve import Override
from tessera.normalize.semantic import suggest_semantic

TID = "tessera_id"


def overrides_by_dataset(store) -> dict[str, list[Override]]:
    """The stored overrides of every dataset, oldest first (as a run applies them)."""
    out: dict[str, list[Override]] = {}
    for row in store.list_identity_overrides():
        out.setdefault(row["dataset"], []).append(Override(row["kind"], list(row["records"])))
    return out


def _people_columns(ds: DatasetConfig, ws) -> list[str]:
    """The columns that show who a record is (names, e-mail, phone, birth date), as they are published."""
    wanted = ("FirstName", "LastName", "FullName", "Email", "Phone", "BirthDate", "PostalCode")
    cols = []
    records = ws.table(f"{ds.name}__records")
    for name in records.columns:
        if name.startswith("_") or name == TID:
            continue
        sem = next((c.semantic for c in ds.columns if c.name == name and c.semantic), None)
        if sem is None:
            sem = suggest_semantic(name)
        if sem in wanted:
            cols.append(name)
    return cols


def record_details(ws, ds: DatasetConfig, records: list[str]) -> dict[str, dict]:
    """Record id -> its people columns, source, file and line."""
    if not records:
        return {}
    t = ws.table(f"{ds.name}__records")
    cols = list(dict.fromkeys(_people_columns(ds, ws) + (
        [c.column for c in ds.matching.comparisons] if ds.matching else [])))
    rows = ws.adapter.to_arrow(t.filter(t._tessera_record.isin(sorted(set(records)))).select(
        "_tessera_record", TID, "_tessera_source", "_tessera_file", "_tessera_line", *cols)).to_pylist()
    return {r["_tessera_record"]: r for r in rows}


def _decided(ws, ds: DatasetConfig) -> set[frozenset]:
    out = set()
    for row in ws.store.list_identity_overrides(ds.name):
        recs = row["records"]
        if row["kind"] in ("merge", "reject"):
            out.update(frozenset((a, b)) for i, a in enumerate(recs) for b in recs[i + 1:])
    return out


def review_queue(ws, ds: DatasetConfig, *, limit: int = 50) -> list[dict]:
    """The pairs waiting for a decision, most probable first, each with its evidence per comparison."""
    if ds.matching is None:
        raise IdentityError(f"dataset '{ds.name}' has no matching block: nothing to review "
                            "(add matching: to the dataset, see docs/identity.md)")
    if not ws.adapter.published_target(f"{ds.name}__matches"):
        return []
    decided = _decided(ws, ds)
    m = ws.table(f"{ds.name}__matches")
    todo = m.filter((m.status == "review") & (m.tessera_id_l != m.tessera_id_r))
    rows = ws.adapter.to_arrow(
        todo.order_by([m.probability.desc(), "record_l", "record_r"]).limit(limit + len(decided))
    ).to_pylist()
    rows = [r for r in rows if frozenset((r["record_l"], r["record_r"])) not in decided][:limit]
    details = record_details(ws, ds, [x for r in rows for x in (r["record_l"], r["record_r"])])
    return [_pair(ds, r, details) for r in rows]


def _pair(ds: DatasetConfig, row: dict, details: dict[str, dict]) -> dict:
    left, right = details.get(row["record_l"], {}), details.get(row["record_r"], {})
    evidence = []
    for i, c in enumerate(ds.matching.comparisons):
        names = level_names(c)
        level = int(row[f"g{i}"])
        evidence.append({"column": c.column, "method": c.method, "level": names[min(level, len(names) - 1)],
                         "left": left.get(c.column), "right": right.get(c.column)})
    return {"record_l": row["record_l"], "record_r": row["record_r"], "probability": row["probability"],
            "weight": row["weight"], "status": row["status"], "tessera_id_l": row["tessera_id_l"],
            "tessera_id_r": row["tessera_id_r"], "evidence": evidence, "left": left, "right": right}


def _check_records(ws, ds: DatasetConfig, records: list[str], need: int) -> list[str]:
    records = list(dict.fromkeys(r.strip() for r in records if r.strip()))
    if len(records) < need:
        raise IdentityError(f"name at least {need} source record id(s) (like crm:42; see 'tessera explain')")
    if ws.adapter.published_target(f"{ds.name}__records"):
        found = set(record_details(ws, ds, records))
        missing = [r for r in records if r not in found]
        if missing:
            raise NotFoundError(f"dataset '{ds.name}' has no source record {', '.join(missing)}; record ids look "
                                "like <source>:<record key> (see 'tessera explain TESSERA_ID')")
    return records


def decide(ws, ds: DatasetConfig, record_l: str, record_r: str, *, accept: bool,
           user: str | None = None, note: str | None = None) -> dict:
    """Accept (merge on the next run) or reject (never link) a pair of the review queue."""
    records = _check_records(ws, ds, [record_l, record_r], 2)
    return ws.store.add_identity_override(ds.name, "merge" if accept else "reject", records, origin="review",
                                          note=note, created_by=user)


def add_override(ws, ds: DatasetConfig, kind: str, records: list[str], *, user: str | None = None,
                 note: str | None = None) -> dict:
    """A manual ``merge`` (at least two records) or ``split`` (the records leave their unified record)."""
    if kind not in ("merge", "split"):
        raise IdentityError(f"unknown override '{kind}': use merge or split")
    if not ds.deduplicate:
        raise IdentityError(f"dataset '{ds.name}' is not deduplicated: there is nothing to merge or split")
    records = _check_records(ws, ds, records, 2 if kind == "merge" else 1)
    return ws.store.add_identity_override(ds.name, kind, records, origin="manual", note=note, created_by=user)
