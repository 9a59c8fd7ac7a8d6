"""Dashboards prepared at publication.

After a run publishes, every dashboard (the seven defaults and the workspace's own) is computed
without filters, with the filters' choices, and the results are kept in the metadata store (state
``analytics/prepared``), each under the key of its question, the workspace's ``as_of`` and every
publication it may read (the same key as the server's result cache, without the process). The
first viewer after a run, in the server or in a command, finds them there instead of running the
queries; a result whose publications changed since (a new run, a segment refresh by the event
loader) is simply not found and computed as before. An erasure forgets them.
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any, Iterable

from tessera.config.environment import rows_threshold

STATE = ("analytics", "prepared")
# below this many rows in each dataset the dashboards read, they are computed fast enough when viewed
PREPARE_ROWS = 100_000
ROWS_VARIABLE = "TESSERA_PREPARE_DASHBOARDS_ROWS"

_LOADED: dict[str, tuple[str, dict]] = {}  # workspace -> (stamp of the publications, bundle)
_LOCK = threading.Lock()


def digest(*parts: Any) -> str:
    """A stable key of JSON-able parts (dates and tuples as text and lists)."""
    return hashlib.sha256(json.dumps(parts, default=str, sort_keys=True).encode("utf-8")).hexdigest()[:32]


def worth_preparing(store, datasets: Iterable[str | None]) -> bool:
    """Whether one of ``datasets`` (the customers, orders... of the default dashboards) was last
    published with at least ``PREPARE_ROWS`` rows (or the ``TESSERA_PREPARE_DASHBOARDS_ROWS``
    environment variable's number: 0 prepares after every run)."""
    if store is None:
        return False
    limit = rows_threshold(ROWS_VARIABLE, PREPARE_ROWS, "prepare the dashboards after every run")
    for name in {d for d in datasets if d}:
        pub = store.latest_publication(name)
        if pub is not None and (limit <= 0 or (pub.get("rows") or 0) >= limit):
            return True
    return False


def load(store, workspace: str, stamp: str) -> dict:
    """The bundle kept by the last preparation (``{"results": {key: result}, "filter_values":
    {"key", "value"}}``), read from the store once per process and publication ``stamp``."""
    if store is None:
        return {}
    with _LOCK:
        hit = _LOADED.get(workspace)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    bundle = store.get_state(*STATE) or {}
    with _LOCK:
        _LOADED[workspace] = (stamp, bundle)
    return bundle


def keep(store, workspace: str, stamp: str, bundle: dict) -> None:
    """Replace the kept bundle (in the store and in this process)."""
    store.set_state(*STATE, bundle)
    with _LOCK:
        _LOADED[workspace] = (stamp, bundle)


def forget(store=None) -> None:
    """Drop the prepared results (of this process, and of the store when given)."""
    with _LOCK:
        _LOADED.clear()
    if store is not None:
        store.delete_state(*STATE)


__all__ = ["PREPARE_ROWS", "STATE", "digest", "forget", "keep", "load", "worth_preparing"]
