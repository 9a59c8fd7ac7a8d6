"""Schedules: the cron schedule of the pipeline, of each source's imports and of each sync, with
the next fire times (what ``tessera schedule`` prints); editors set, change or remove one through
the REST API's own code (:func:`tessera.api.routes.schedules.set_schedule`)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

from tessera.api.routes.schedules import schedules_of, set_schedule
from tessera.errors import NotFoundError, TesseraError, VersionConflict
from tessera.web.auth import Editor, Viewer
from tessera.web.reading import owner_of, read
from tessera.web.render import render

router = APIRouter(include_in_schema=False)
KINDS = ("pipeline", "source", "sync")
JOB_KIND = {"pipeline": "run", "source": "import", "sync": "sync"}  # the scheduler's name of each


def _rows(ws) -> list[dict]:
    found = schedules_of(ws)
    upcoming = {(j["kind"], j["target"]): j for j in found.next_runs}
    return [{**s.model_dump(), "next": upcoming.get((JOB_KIND[s.kind], None if s.kind == "pipeline" else s.name))}
            for s in found.data]


async def _page(request: Request, status_code: int = 200, failed: dict | None = None):
    rows = await read(request, _rows)
    return render(request, "schedules.html", status_code=status_code, nav="schedules", rows=rows,
                  failed=failed or {}, done=request.query_params.get("saved"))


@router.get("/schedules")
async def schedules(request: Request, user: Viewer):
    return await _page(request)


@router.post("/schedules/{kind}/{name}")
async def change_schedule(request: Request, user: Editor, kind: str, name: str):
    """Set (``cron``) or remove (``action=remove``) one schedule, made from the ``version`` shown."""
    if kind not in KINDS:
        raise NotFoundError(f"no schedule of a '{kind}': schedules belong to the pipeline, a source or a sync")
    form = await request.form()
    cron = None if form.get("action") == "remove" else (str(form.get("cron") or "").strip() or None)
    try:
        await set_schedule(request, owner_of(request), user, kind, name, cron, str(form.get("version") or ""))
    except NotFoundError:
        raise
    except TesseraError as exc:
        problems = getattr(exc, "problems", None) or [str(exc)]
        failed = {"key": f"{kind}:{name}", "cron": cron or "", "problems": problems,
                  "conflict": isinstance(exc, VersionConflict)}
        return await _page(request, status_code=exc.status, failed=failed)
    return RedirectResponse(f"/schedules?saved={kind}:{name}", status_code=303)
