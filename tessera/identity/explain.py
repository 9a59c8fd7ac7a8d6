"""Explaining a unified record: its source records (with names and e-mails), and each link that
joined them with its evidence: the shared key, the match probability and its parts, or the manual
merge; plus the values that were not used to merge and why (shared, blocked, refused by a guard)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from tessera.config.models import DatasetConfig
from tessera.errors import IdentityError
from tessera.identity.resolve import DEFAULT_BLOCKED

TID = "tessera_id"


@dataclass
class Link:
    record: str
    key: str  # the shared key's column, "match" or "manual merge"
    value: str  # the shared value, or the evidence of a match
    via: str  # the record it was reached from
    probability: float | None = None


@dataclass
class Explanation:
    tessera_id: str
    dataset: str
    records: list[dict]
    links: list[Link]
    unused: list[dict] = field(default_factory=list)  # key values not used to merge, with the reason
    people: list[str] = field(default_factory=list)  # the columns that say who a record is
    refused: list[dict] = field(default_factory=list)  # matches with other unified records that were refused

    def who(self, record: str) -> str:
        row = next((r for r in self.records if r["_tessera_record"] == record), None)
        if row is None:
            return record
        parts = [str(row[c]) for c in self.people if row.get(c) not in (None, "")]
        return f"{record} ({', '.join(parts)})" if parts else record

    def lines(self) -> list[str]:
        out = [f"{self.tessera_id} in {self.dataset}: {len(self.records)} source record(s)"]
        if self.records:
            out.append(f"  {self.who(self.records[0]['_tessera_record'])} (first record)")
        for link in self.links:
            if link.key == "match":
                out.append(f"  {self.who(link.record)} <- match with {link.via}, probability "
                           f"{link.probability:.4f}: {link.value}")
            elif link.key == "manual merge":
                out.append(f"  {self.who(link.record)} <- manual merge with {link.via} ({link.value})")
            else:
                out.append(f"  {self.who(link.record)} <- shares {link.key}={link.value!r} with {link.via}")
        for u in self.unused:
            out.append(f"  not used to merge: {u['key']}={u['value']!r} ({u['reason']})")
        for r in self.refused:
            out.append(f"  not merged with {r['other']} ({r['tessera_id']}): {r['reason']}")
        return out


def _evidence(ds: DatasetConfig, row: dict) -> str:
    from tessera.identity.matching import level_names

    parts = []
    for i, c in enumerate(ds.matching.comparisons):
        names = level_names(c)
        parts.append(f"{c.column}: {names[min(int(row[f'g{i}']), len(names) - 1)]}")
    return ", ".join(parts)


def explain(ws, ds: DatasetConfig, tessera_id: str) -> Explanation:
    from tessera.identity.review import _people_columns

    lineage = ws.table(f"{ds.name}__lineage")
    ws.table(f"{ds.name}__records")  # NotFoundError while not published
    # the customer's records through the tessera_id index (Workspace.index_for_reads)
    records = ws.adapter.indexed_table(f"{ds.name}__records")
    keys = [k.column for k in ds.identity_keys]
    people = _people_columns(ds, ws)
    mine = records.filter(records[TID] == tessera_id).select(
        "_tessera_record", "_tessera_source", "_tessera_file", "_tessera_line",
        *dict.fromkeys([*keys, *people])
    )
    # sorted here: DuckDB leaves the index for an ORDER BY
    rows = sorted(ws.adapter.to_arrow(mine).to_pylist(), key=lambda r: r["_tessera_record"])
    if not rows:
        known = ws.adapter.execute(lineage.filter(lineage[TID] == tessera_id).count())
        raise IdentityError(
            f"No unified record '{tessera_id}' in dataset '{ds.name}'"
            + ("" if known else "; list ids with: tessera export-data " + ds.name)
        )
    shared: dict[tuple[str, str], str] = {}
    if ws.adapter.published_target(f"{ds.name}__shared_values"):
        sv = ws.adapter.to_arrow(ws.table(f"{ds.name}__shared_values")).to_pylist()
        shared = {(r["key"], r["value"]): r.get("reason") or "shared by many records" for r in sv}
    blocked = {b.lower() for b in [*DEFAULT_BLOCKED, *ds.blocked_values]}
    by_value: dict[tuple[str, str], list[str]] = {}
    unused = []
    for r in rows:
        for k in keys:
            v = r.get(k)
            if v is None or str(v).strip() == "":
                continue
            v = str(v).strip()
            if (k, v) in shared:
                unused.append({"record": r["_tessera_record"], "key": k, "value": v, "reason": shared[(k, v)]})
            elif v.lower() in blocked:
                unused.append({"record": r["_tessera_record"], "key": k, "value": v, "reason": "blocked value"})
            else:
                by_value.setdefault((k, v), []).append(r["_tessera_record"])
    # Edges of this one customer: shared values, then matches and manual merges.
    edges: dict[str, list[tuple[str, Link]]] = {}
    for (k, v), recs in by_value.items():
        for a in recs:
            for b in recs:
                if a != b:
                    edges.setdefault(a, []).append((b, Link(b, k, v, a)))
    refused = []
    if ds.matching is not None and ws.adapter.published_target(f"{ds.name}__matches"):
        m = ws.table(f"{ds.name}__matches")
        found = ws.adapter.to_arrow(m.filter((m.tessera_id_l == tessera_id) | (m.tessera_id_r == tessera_id))
                                    .order_by([m.probability.desc(), "record_l", "record_r"])).to_pylist()
        for row in found:
            a, b = row["record_l"], row["record_r"]
            if row["status"] == "merge" and row["tessera_id_l"] == row["tessera_id_r"]:
                ev = _evidence(ds, row)
                edges.setdefault(a, []).append((b, Link(b, "match", ev, a, row["probability"])))
                edges.setdefault(b, []).append((a, Link(a, "match", ev, b, row["probability"])))
            elif row["tessera_id_l"] != row["tessera_id_r"]:
                other, other_id = (b, row["tessera_id_r"]) if row["tessera_id_l"] == tessera_id else \
                    (a, row["tessera_id_l"])
                why = {"refused": "the guard refused it (different first names and e-mails or birth dates)",
                       "review": "waiting in the review queue",
                       "merge": "split or rejected by an override"}[row["status"]]
                refused.append({"other": other, "tessera_id": other_id, "reason":
                                f"match probability {row['probability']:.4f}, {why}; {_evidence(ds, row)}"})
    ids = {r["_tessera_record"] for r in rows}
    for o in ws.store.list_identity_overrides(ds.name):
        recs = [r for r in o["records"] if r in ids]
        if o["kind"] == "merge" and len(recs) > 1:
            note = f"override {o['id']}" + (f" by {o['created_by']}" if o.get("created_by") else "")
            for a in recs:
                for b in recs:
                    if a != b:
                        edges.setdefault(a, []).append((b, Link(b, "manual merge", note, a)))
        elif o["kind"] == "split" and recs:
            unused.append({"record": recs[0], "key": "override", "value": ", ".join(recs),
                           "reason": f"split by override {o['id']}"})
    # Breadth-first walk over the (small) records of this one customer.
    start = rows[0]["_tessera_record"]
    seen, links, queue = {start}, [], deque([start])
    while queue:
        rec = queue.popleft()
        for other, link in edges.get(rec, []):
            if other not in seen:
                seen.add(other)
                links.append(link)
                queue.append(other)
    dedup_unused = {(u["key"], u["value"], u["reason"]): u for u in unused}
    return Explanation(tessera_id, ds.name, rows, links, list(dedup_unused.values()), people, refused)
