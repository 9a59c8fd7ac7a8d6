"""Versions of the configuration, so that two editors never overwrite each other silently.

The whole configuration's version is the id of its last applied change (the metadata store's
``config_versions``). One object's version is a digest of its stored definition: it changes when
the object changes, whoever changed it (an apply, the API, the web app). A change sent with the
version it was made from is refused (:class:`~tessera.errors.VersionConflict`, HTTP 409) when the
object or the configuration moved on since.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

KIND_PLURALS = {"connection": "connections", "source": "sources", "dataset": "datasets", "sync": "syncs",
                "segment": "segments"}


def spec_version(spec: dict[str, Any] | None) -> str:
    """The version of one object's stored definition: 16 hex digits of its SHA-256."""
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


_PROBLEM = re.compile(r"^(?:line (?P<line>\d+), )?(?:(?P<path>[\w.\[\]() -]+?): )?(?P<message>.+)$", re.S)


def problem_parts(problem: str) -> dict[str, Any]:
    """A configuration problem as ``{"line", "path", "message"}`` (line and path may be None), from
    the text the checks write (``line 12, sources[0] (crm).record_keys: ...``)."""
    m = _PROBLEM.match(problem)
    if not m or (m["path"] and " " in m["path"].split(" (")[0]):
        return {"line": None, "path": None, "message": problem}
    return {"line": int(m["line"]) if m["line"] else None, "path": m["path"], "message": m["message"]}
