"""Customers found by ``tessera_id`` or by any identity value (``/api/customers``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from tessera.api.auth import Owner, Viewer
from tessera.api.changes import read
from tessera.browse import find_customers

router = APIRouter(prefix="/api", tags=["customers"])

Value = Annotated[str | None, Query(max_length=1000)]


class CustomersPublic(BaseModel):
    data: list[dict[str, Any]]
    count: int
    searched: dict[str, list[str]]


@router.get("/customers")
async def customers(owner: Owner, _caller: Viewer, email: Value = None, phone: Value = None, id: Value = None,
                    tessera_id: Value = None, dataset: Annotated[str | None, Query(max_length=255)] = None,
                    limit: Annotated[int, Query(ge=1, le=100)] = 20) -> CustomersPublic:
    """The customers with an email, a phone or an id (normalized as at import), or a tessera_id; one per call."""
    found = await read(owner, lambda ws: find_customers(ws, email=email, phone=phone, id=id, tessera_id=tessera_id,
                                                        dataset=dataset, limit=limit))
    return CustomersPublic(**found)
