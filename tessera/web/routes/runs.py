"""Runs: start a run or an import (jobs of the writer queue), follow a job's progress live, cancel it;
the history of runs with their errors."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse

from tessera import overview
from tessera.web.auth import Editor, Viewer
from tessera.web.reading import owner_of, read, submit
from tessera.web.render import render

router = APIRouter(include_in_schema=False)
JOB_KINDS = {"run": {"import_files": True}, "import": {}}


@router.get("/runs")
async def runs(request: Request, user: Viewer):
    jobs = await asyncio.to_thread(owner_of(request).jobs.list, 20)
    history = await read(request, lambda ws: overview.recent_runs(ws, 30))
    return render(request, "runs.html", nav="runs", jobs=jobs, runs=history)


@router.post("/runs")
async def start(request: Request, user: Editor, kind: str = Form("run", max_length=20),
                full: bool = Form(False)):
    if kind not in JOB_KINDS:
        kind = "run"
    params = dict(JOB_KINDS[kind])
    if kind == "run" and full:
        params["full"] = True  # rebuild everything, even when nothing new came in
    job = await submit(request, kind, params, user.identity)
    return RedirectResponse(f"/runs/jobs/{job['id']}", status_code=303)


@router.get("/runs/jobs/{job_id}")
async def job(request: Request, user: Viewer, job_id: int):
    data = await asyncio.to_thread(owner_of(request).jobs.get, job_id)
    return render(request, "job.html", nav="runs", job=data)


@router.get("/runs/jobs/{job_id}/progress")
async def progress(request: Request, user: Viewer, job_id: int):
    """The live part of a job's page: polled every second while the job is queued or running."""
    data = await asyncio.to_thread(owner_of(request).jobs.get, job_id)
    return render(request, "job_progress.html", job=data)


@router.post("/runs/jobs/{job_id}/cancel")
async def cancel(request: Request, user: Editor, job_id: int):
    await asyncio.to_thread(owner_of(request).jobs.cancel, job_id)
    return RedirectResponse(f"/runs/jobs/{job_id}", status_code=303)
