"""What a workspace holds and what needs attention, for the home page of the web app and the API.

Reads only: the configuration, the metadata store (runs, imported files) and the published
tables (the rejects view). Every function takes an open workspace (or a reader of it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any


REJECTS_VIEW = "tessera_rejects"


def _plain(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def _seconds(started: Any, finished: Any) -> float | None:
    try:
        begin = datetime.fromisoformat(started) if isinstance(started, str) else started
        end = datetime.fromisoformat(finished) if isinstance(finished, str) else finished
        return (end - begin).total_seconds() if begin and end else None
    except (TypeError, ValueError):
        return None


def holdings(ws) -> dict:
    """How many connections, sources, datasets, segments and syncs the workspace has, and each
    dataset's published rows and time."""
    config = ws.config
    datasets = []
    for d in config.datasets:
        latest = ws.store.latest_publication(d.name)
        datasets.append({"name": d.name, "customers": bool(d.deduplicate), "rows": latest["rows"] if latest else None,
                         "published_at": latest["published_at"] if latest else None})
    return {"connections": len(config.connections), "sources": len(config.sources), "datasets": datasets,
            "segments": len(config.segments), "syncs": len(config.syncs)}


def rejects_by_source(ws) -> list[dict]:
    """``[{"source", "rows", "reasons": [{"reason", "rows"}]}]`` of the rows kept aside at import
    (most first); empty before the first run."""
    if ws.adapter.published_target(REJECTS_VIEW) is None:
        return []
    t = ws.adapter.table(REJECTS_VIEW)
    per = ws.adapter.to_arrow(t.group_by(["source", "reason"]).agg(rows=t.count())).to_pylist()
    out: dict[str, dict] = {}
    for r in per:
        entry = out.setdefault(r["source"], {"source": r["source"], "rows": 0, "reasons": []})
        entry["rows"] += r["rows"]
        entry["reasons"].append({"reason": r["reason"], "rows": r["rows"]})
    for entry in out.values():
        entry["reasons"].sort(key=lambda x: -x["rows"])
    return sorted(out.values(), key=lambda e: -e["rows"])


def attention(ws) -> list[dict]:
    """What needs a look, most important first: ``[{"kind", "subject", "message", "link"}]`` with
    kind one of ``run_failed``, ``sync_failed``, ``model_skipped``, ``rejects``, ``file_refused``."""
    store = ws.store
    items: list[dict] = []
    runs = store.list_runs(20)
    last = next((r for r in runs if r["kind"] != "sync"), None)
    if last is not None and last["status"] not in ("succeeded", "running"):
        items.append({"kind": "run_failed", "subject": f"run {last['id']}", "message": last.get("error") or last["status"],
                      "link": "/runs", "at": _plain(last.get("finished_at"))})
    if last is not None:
        for dataset, counts in ((last.get("counts") or {}).get("datasets") or {}).items():
            predictive = counts.get("predictive") if isinstance(counts, dict) else None
            if isinstance(predictive, str) and predictive.startswith("skipped"):
                items.append({"kind": "model_skipped", "subject": dataset, "message": predictive,
                              "link": f"/datasets/{dataset}", "at": _plain(last.get("finished_at"))})
    seen: set[str] = set()
    for r in store.list_runs(50, kind="sync"):
        if r["target"] in seen:
            continue
        seen.add(r["target"])  # the latest run of each sync
        if r["status"] not in ("succeeded", "running"):
            items.append({"kind": "sync_failed", "subject": r["target"], "message": r.get("error") or r["status"],
                          "link": "/syncs", "at": _plain(r.get("finished_at"))})
    for f in store.list_imported_files():
        if f.get("status") == "refused":
            items.append({"kind": "file_refused", "subject": f"{f['source']}: {f['name']}",
                          "message": f.get("error") or "refused", "link": f"/sources/{f['source']}",
                          "at": _plain(f.get("imported_at"))})
    for r in rejects_by_source(ws):
        top = r["reasons"][0]["reason"] if r["reasons"] else ""
        items.append({"kind": "rejects", "subject": r["source"], "rows": r["rows"], "message": top,
                      "link": f"/sources/{r['source']}"})
    return items


def recent_runs(ws, limit: int = 10) -> list[dict]:
    """The latest runs (pipeline, import, sync), newest first, with their duration in seconds."""
    out = []
    for r in ws.store.list_runs(limit):
        started, finished = r.get("started_at"), r.get("finished_at")
        seconds = _seconds(started, finished)
        out.append({"id": r["id"], "kind": r["kind"], "target": r.get("target"), "status": r["status"],
                    "started_at": _plain(started), "finished_at": _plain(finished), "seconds": seconds,
                    "error": r.get("error"), "counts": r.get("counts") or {}})
    return out


__all__ = ["attention", "holdings", "recent_runs", "rejects_by_source"]
