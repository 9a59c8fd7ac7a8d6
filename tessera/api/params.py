"""Parameter types shared by the routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

MAX_ID = 2**63 - 1  # the largest id a metadata store (SQLite, PostgreSQL BIGINT) holds

RowId = Annotated[int, Path(ge=1, le=MAX_ID, description="an id of the metadata store")]
"""A path parameter naming a row (job, override, token): 422 outside 1..2**63-1, never an overflow."""

CursorId = Annotated[int | None, Query(ge=1, le=MAX_ID, description="ids below this one (paging)")]
