"""Files written batch by batch from Arrow: CSV, NDJSON and Parquet, as the syncs send them.

DuckDB writes CSV (quoted where needed, NULL as nothing, '' as "") and NDJSON: each batch is
written to a part with ``COPY``, then appended to the file; pyarrow writes Parquet.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

FORMATS = ("csv", "ndjson", "parquet")


class BatchFileWriter:
    """One file of ``fmt`` written from Arrow tables of the same columns, one after another."""

    def __init__(self, path: Path, fmt: str):
        self.path = Path(path)
        self.fmt = fmt
        self.rows = 0
        self._parquet: pq.ParquetWriter | None = None
        self._duck: duckdb.DuckDBPyConnection | None = None

    def write(self, data: pa.Table) -> None:
        if self.fmt == "parquet":
            if self._parquet is None:
                self._parquet = pq.ParquetWriter(str(self.path), data.schema)
            self._parquet.write_table(data)
        else:
            if self._duck is None:
                self._duck = duckdb.connect()
            part = self.path.with_name(self.path.name + ".part")
            self._duck.register("_tessera_batch", data)
            target = str(part).replace("'", "''")
            if self.fmt == "csv":
                header = "true" if self.rows == 0 else "false"
                self._duck.execute(f"COPY _tessera_batch TO '{target}' (FORMAT csv, HEADER {header})")
            else:
                self._duck.execute(f"COPY _tessera_batch TO '{target}' (FORMAT json)")
            self._duck.unregister("_tessera_batch")
            with open(self.path, "ab") as out, open(part, "rb") as src:
                shutil.copyfileobj(src, out)
            part.unlink()
        self.rows += data.num_rows

    def close(self) -> None:
        """Finish the file (Parquet's footer); closing twice is harmless."""
        if self._parquet is not None:
            self._parquet.close()
            self._parquet = None
        if self._duck is not None:
            self._duck.close()
            self._duck = None
