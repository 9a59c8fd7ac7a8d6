"""The privacy REST API (``/api/privacy``, admins only): erase or export one customer, the
suppression list and the requests with their receipts. An erase is a job of the writer queue;
an export is a read, audited."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from tessera.api.auth import Admin, Owner

router = APIRouter(prefix="/api", tags=["privacy"])


class EraseCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer: str = Field(min_length=1, description="a tessera_id, or an e-mail, a phone, a customer id...")
    dataset: str | None = None


class ExportCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer: str = Field(min_length=1, description="a tessera_id, or an e-mail, a phone, a customer id...")
    dataset: str | None = None
    format: Literal["json", "zip"] = "json"


@router.post("/privacy/erase")
async def erase(owner: Owner, caller: Admin, body: EraseCreate) -> dict:
    """Erase a customer everywhere now (a job of the writer queue); the receipt."""
    return await asyncio.to_thread(owner.erase, body.customer, dataset=body.dataset, requested_by=caller.identity)


@router.post("/privacy/export")
async def export(owner: Owner, caller: Admin, body: ExportCreate):
    """Everything held on a customer: a JSON document, or a zip of CSV files."""
    def work(ws):
        if body.format == "json":
            return ws.export_customer(body.customer, dataset=body.dataset, actor=caller.identity)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "customer.zip"
            ws.export_customer(body.customer, path, "zip", dataset=body.dataset, actor=caller.identity)
            return path.read_bytes()

    out = await asyncio.to_thread(owner.read, work)
    if body.format == "json":
        return out
    return Response(out, media_type="application/zip",
                    headers={"Content-Disposition": 'attachment; filename="customer.zip"'})


@router.get("/privacy/suppressions")
async def suppressions(owner: Owner, _caller: Admin, limit: int = 100) -> dict:
    """The suppression list: its size per kind, the latest entries (hash prefixes)."""
    return await asyncio.to_thread(owner.read, lambda ws: ws.suppressions(min(max(limit, 1), 1000)))


@router.get("/privacy/requests")
async def requests(owner: Owner, _caller: Admin, limit: int = 100) -> dict:
    """Erase and export requests with their receipts, newest first."""
    rows = await asyncio.to_thread(owner.read, lambda ws: ws.privacy_requests(min(max(limit, 1), 1000)))
    return {"data": rows, "count": len(rows)}
