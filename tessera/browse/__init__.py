"""Reading published data for people and programs: pages of a dataset's rows with a filter, a sort
and a cursor (:mod:`.rows`), customers found by any identity value or as you type (:mod:`.customers`), datasets
streamed as CSV or Parquet (:mod:`.export`), and the source catalog (:mod:`.catalog`).

Plain functions of a workspace (``ws``: a :class:`~tessera.workspace.Workspace` or its reader),
called by the REST API and the web app alike. Every read is one set-based query in the engine.
"""

from tessera.browse.catalog import source_list
from tessera.browse.customers import find_customers, lookup_values, search_customers
from tessera.browse.export import EXPORT_FORMATS, export_stream
from tessera.browse.rows import dataset_rows

__all__ = ["EXPORT_FORMATS", "dataset_rows", "export_stream", "find_customers", "lookup_values", "search_customers",
           "source_list"]
