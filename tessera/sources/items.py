"""Child sources: the items held in one column of another source's rows.

A source with ``items_of`` (an order's ``line_items`` JSON array, a ticket's packed
``SKU:qty|SKU:qty`` column) has no file of its own: each raw batch of its parent gives it one raw
batch of items, made when the parent is imported (and, for a child added later, from the parent's
batches already there). Its rows are keyed by the parent's record key(s) and their position, keep
the parent's file and line, and are staged like those of any source; items that cannot be read
are rejected with the parent's line.
"""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa

from tessera.config.models import SourceConfig
from tessera.engine.base import EngineAdapter
from tessera.engine.items import explode_items
from tessera.errors import SourceError
from tessera.sources.importer import PARSE_REJECTS, raw_table


def _when(value) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def derive_items(adapter: EngineAdapter, store, parent: SourceConfig, child: SourceConfig) -> tuple[int, int, int]:
    """Make the child's raw batches of the parent's batches that have none yet.

    Returns:
        (batches made, item rows, rejected items).
    """
    spec = child.items_of
    done = {f["batch_id"] for f in store.list_imported_files(child.name)}
    todo = [f for f in store.list_imported_files(parent.name) if f["batch_id"] not in done]
    made = rows = rejected = 0
    types: dict[str, str] = {}
    for f in todo:
        batch = f["batch_id"]
        source_table = raw_table(parent.name, batch)
        if not adapter.exists(source_table):
            continue  # a batch of a full import that was replaced since
        data = adapter.to_arrow(adapter.table(source_table))
        if spec.column not in data.column_names:
            raise SourceError(
                f"Source '{child.name}': its parent '{parent.name}' has no column '{spec.column}' in file "
                f"'{f['name']}' (columns: {', '.join(c for c in data.column_names if not c.startswith('_tessera_'))}); "
                "fix items_of.column.")
        items, rejects, types = explode_items(data, keys=list(parent.record_keys), column=spec.column,
                                              fields=list(spec.fields), separator=spec.separator,
                                              field_separator=spec.field_separator)
        n = items.num_rows
        items = items.append_column("_tessera_batch", pa.array([batch] * n, pa.int64()))
        items = items.append_column("_tessera_file", pa.array([f["name"]] * n, pa.string()))
        adapter.create_table(raw_table(child.name, batch), items)
        if rejects.num_rows:
            k = rejects.num_rows
            adapter.append(PARSE_REJECTS, pa.table({
                "source": pa.array([child.name] * k, pa.string()),
                "file": pa.array([f["name"]] * k, pa.string()),
                "line": rejects.column("line"),
                "column_name": rejects.column("column_name"),
                "reason": rejects.column("reason"),
                "raw": rejects.column("raw"),
                "batch": pa.array([batch] * k, pa.int64()),
            }))
        store.add_imported_file(
            source=child.name, path=f["path"], name=f["name"], sha256=f["sha256"], size=f["size"], batch_id=batch,
            imported_at=_when(f["imported_at"]), rows=n, rejected=rejects.num_rows, archive_path=f["archive_path"],
            status="imported")
        made += 1
        rows += n
        rejected += rejects.num_rows
    if types:
        store.set_source_schema(child.name, [(c, types.get(c, "string"))
                                             for c in [*parent.record_keys, "position", *spec.fields]])
    return made, rows, rejected
