"""Syncs: send a dataset's records to destinations (files, tables, webhooks), only what changed.

:func:`tessera.syncs.runner.run_syncs` is the entry point; :mod:`tessera.syncs.plan` computes what
to send in the warehouse; :mod:`tessera.syncs.destinations` and :mod:`tessera.syncs.tables` send it.
"""

from tessera.syncs.erased import customer_state, mark_erased
from tessera.syncs.runner import SyncResult, reset_sync, run_syncs

__all__ = ["SyncResult", "customer_state", "mark_erased", "reset_sync", "run_syncs"]
