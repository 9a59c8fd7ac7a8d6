"""Explaining a unified record: which source records it holds and the chain of shared keys."""

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
    key: str
    value: str
    via: str  # the record it was reached from


@dataclass
class Explanation:
    tessera_id: str
    dataset: str
    records: list[dict]
    links: list[Link]
    unused: list[dict] = field(default_factory=list)  # key values not used to merge, with the reason

    def lines(self) -> list[str]:
        out = [f"{self.tessera_id} in {self.dataset}: {len(self.records)} source record(s)"]
        if self.records:
            out.append(f"  {self.records[0]['_tessera_record']} (first record)")
        for link in self.links:
            out.append(f"  {link.record} <- shares {link.key}={link.value!r} with {link.via}")
        for u in self.unused:
            out.append(f"  not used to merge: {u['key']}={u['value']!r} ({u['reason']})")
        return out


def explain(ws, ds: DatasetConfig, tessera_id: str) -> Explanation:
    lineage = ws.table(f"{ds.name}__lineage")
    records = ws.table(f"{ds.name}__records")
    keys = [k.column for k in ds.identity_keys]
    mine = records.filter(records[TID] == tessera_id).select(
        "_tessera_record", "_tessera_source", "_tessera_file", "_tessera_line", *keys
    )
    rows = ws.adapter.to_arrow(mine.order_by("_tessera_record")).to_pylist()
    if not rows:
        known = ws.adapter.execute(lineage.filter(lineage[TID] == tessera_id).count())
        raise IdentityError(
            f"No unified record '{tessera_id}' in dataset '{ds.name}'"
            + ("" if known else "; list ids with: tessera export-data " + ds.name)
        )
    shared = set()
    if ws.adapter.published_target(f"{ds.name}__shared_values"):
        sv = ws.adapter.to_arrow(ws.table(f"{ds.name}__shared_values")).to_pylist()
        shared = {(r["key"], r["value"]) for r in sv}
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
                unused.append({"record": r["_tessera_record"], "key": k, "value": v, "reason": "shared by many records"})
            elif v.lower() in blocked:
                unused.append({"record": r["_tessera_record"], "key": k, "value": v, "reason": "blocked value"})
            else:
                by_value.setdefault((k, v), []).append(r["_tessera_record"])
    # Breadth-first walk over the (small) records of this one customer.
    start = rows[0]["_tessera_record"]
    seen, links, queue = {start}, [], deque([start])
    values_of: dict[str, list[tuple[str, str]]] = {}
    for kv, recs in by_value.items():
        for rec in recs:
            values_of.setdefault(rec, []).append(kv)
    while queue:
        rec = queue.popleft()
        for kv in values_of.get(rec, []):
            for other in by_value[kv]:
                if other not in seen:
                    seen.add(other)
                    links.append(Link(other, kv[0], kv[1], rec))
                    queue.append(other)
    dedup_unused = {(u["key"], u["value"], u["reason"]): u for u in unused}
    return Explanation(tessera_id, ds.name, rows, links, list(dedup_unused.values()))
