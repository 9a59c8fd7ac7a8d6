"""Connected components of the identity graph computed by joins in the engine.

On a cluster engine (Spark), collecting every edge to the driver to label components there
(:mod:`tessera.identity.graph`) makes the driver the bottleneck. Here the labels are found with
set operations the engine distributes: min-label propagation over the bipartite graph of records
and key values, with pointer jumping.

Each record starts with its own index as label. A round gives every value the smallest label of
its records, every record the smallest label of its values, then every record the label of its
label (pointer jumping: labels are record indexes, and a record's label is in its component, so
this halves chains). Labels only decrease and stay inside components; a round that changes no
label leaves every component with one label, the smallest record index in it: the same labels
as :func:`tessera.identity.graph.cluster` gives without key limits.
"""

from __future__ import annotations

import ibis

from tessera.engine.base import EngineAdapter
from tessera.errors import RunError

#: far beyond what identity graphs need (each round at least halves a chain of records)
MAX_ROUNDS = 64


def engine_components(adapter: EngineAdapter, records: ibis.Table, kv: ibis.Table, tag: str) -> ibis.Table:
    """``_idx, _comp, _size`` for every record of ``records`` (``_idx``) from the record-value edges
    ``kv`` (``idx, level, value``): ``_comp`` is the smallest ``_idx`` of the record's component."""
    edges = adapter.create_table(f"{tag}cc_edges", kv.select("idx", "level", "value").distinct(), temp=True)
    labels = adapter.create_table(f"{tag}cc_0", edges.select("idx").distinct().mutate(lab=edges.idx), temp=True)
    done = False
    for i in range(1, MAX_ROUNDS + 1):
        with_label = edges.join(labels, "idx")
        per_value = with_label.group_by(["level", "value"]).agg(vl=with_label.lab.min())
        back = edges.join(per_value, ["level", "value"])
        step = back.group_by("idx").agg(nl=back.vl.min())
        parent = step.select(p="idx", pl="nl")
        joined = step.join(parent, step.nl == parent.p)
        jumped = joined.select("idx", lab=ibis.least(joined.nl, joined.pl))
        # whether each label moved is written with it: one pass per round, and the engine may
        # tell whether any moved from the written files' statistics
        moved = jumped.join(labels.select("idx", old=labels.lab), "idx")
        moved = moved.select("idx", "lab", _moved=moved.lab != moved.old)
        new = adapter.create_table(f"{tag}cc_{i}", moved, temp=True)
        changed = adapter.any_true(f"{tag}cc_{i}", "_moved")
        adapter.drop_table(f"{tag}cc_{i - 1}")
        labels = new.select("idx", "lab")
        if not changed:
            done = True
            break
    if not done:  # pragma: no cover - would need a chain of more than 2**64 records
        raise RunError(f"identity components did not settle in {MAX_ROUNDS} rounds")
    joined = records.select("_idx").left_join(labels, records._idx == labels.idx)
    comp = joined.select("_idx", _comp=ibis.coalesce(joined.lab, joined._idx))
    sized = comp.mutate(_size=comp._idx.count().over(group_by="_comp"))
    return adapter.create_table(f"{tag}components", sized.select("_idx", "_comp", _size=sized._size.cast("int64")),
                                temp=True)
