"""Read commands of the ``tessera`` CLI, answered by the server that owns the workspace."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from tessera.api.auth import Local, Owner

router = APIRouter(prefix="/api", tags=["cli"])


class CliCall(BaseModel):
    model_config = ConfigDict(extra="forbid")
    argv: list[str] = Field(max_length=200)
    width: int = 100


@router.post("/cli")
async def cli(request: Request, owner: Owner, _caller: Local, call: CliCall) -> dict:
    """Run a read command of the CLI (status, rejects, explain...) on the last publication; its output."""
    runner = request.app.state.cli_runner
    if runner is None:
        raise HTTPException(501, detail="this server answers no CLI commands: start it with tessera serve")
    return await asyncio.to_thread(runner, owner.workspace.reader, call.argv, call.width)
