"""The bare baselines' identity step (shared by the benchmarks): connected components of the
record-value graph in SciPy, from the edges a bare DuckDB script prepared."""

from __future__ import annotations


def components(con, n_records: int):
    """Each record's cluster label (a NumPy array of ``n_records``), from the tables ``keys``
    (``idx``: the record's index, ``level``, ``value``) and ``vals`` (``vidx``: the value's index)."""
    import numpy as np
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    edges = con.execute("SELECT k.idx, v.vidx FROM keys k JOIN vals v USING (level, value)").arrow()
    if hasattr(edges, "read_all"):
        edges = edges.read_all()
    rec = edges.column("idx").to_numpy().astype(np.int64)
    val = edges.column("vidx").to_numpy().astype(np.int64) + n_records
    n = n_records + (int(val.max()) - n_records + 1 if len(val) else 0)
    graph = coo_matrix((np.ones(len(rec), dtype=np.int8), (rec, val)), shape=(n, n)).tocsr()
    _, labels = connected_components(graph, directed=False)
    return labels[:n_records]
