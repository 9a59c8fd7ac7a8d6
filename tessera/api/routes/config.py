"""The whole configuration as YAML: read it with its version, validate, diff and apply it.

Validation is the code of ``tessera apply`` (every problem at once, each with its line and
setting); an apply is a job of the writer queue, audited with its diff, and refused (409
``version_conflict``) when the configuration changed since the version it was made from.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from tessera.api.auth import Admin, Editor, Owner, Viewer
from tessera.api.changes import read, run_change
from tessera.config.loader import MAX_CONFIG_BYTES
from tessera.config.versions import problem_parts
from tessera.errors import ConfigError

router = APIRouter(prefix="/api", tags=["config"])


class ConfigObjectPublic(BaseModel):
    kind: str
    name: str
    version: str = Field(description="changes whenever the object changes; send it back with a change")
    updated_at: str | None = None


class ConfigPublic(BaseModel):
    version: int = Field(description="the configuration's version: send it back with POST /api/config/apply")
    yaml: str
    objects: list[ConfigObjectPublic]


class ConfigText(BaseModel):
    model_config = ConfigDict(extra="forbid")
    yaml: str = Field(max_length=MAX_CONFIG_BYTES, description="the whole configuration, as in workspace.yaml")
    prune: bool = Field(default=False, description="accept a configuration that declares nothing (removes all)")


class ConfigApply(ConfigText):
    version: int = Field(ge=0, le=2**63 - 1, description="the version this configuration was made from "
                                                         "(GET /api/config); 409 when it is no longer current")


class Problem(BaseModel):
    line: int | None = None
    path: str | None = None
    message: str


class ValidationPublic(BaseModel):
    ok: bool
    errors: list[str] = Field(description="every problem found, as tessera apply prints them")
    problems: list[Problem] = Field(description="the same problems with their line and setting apart")


class DiffPublic(BaseModel):
    added: list[str]
    removed: list[str]
    changed: list[str]
    text: str = Field(description="a unified diff of the YAML (secrets as references, never their values)")
    version: int = Field(description="the version the diff was made against")


class ApplyPublic(BaseModel):
    job: int
    added: list[str]
    removed: list[str]
    changed: list[str]
    version: int = Field(description="the configuration's version after the apply")


def _check(ws, body: ConfigText):
    return ws.validate_config(ws.parse_config_text(body.yaml), prune=body.prune)


@router.get("/config")
async def get_config(owner: Owner, _caller: Viewer) -> ConfigPublic:
    """The whole configuration as YAML, with its version and the version of each object (no secret values)."""

    def work(ws):
        objects = [ConfigObjectPublic(**{k: o[k] for k in ("kind", "name", "version", "updated_at")})
                   for o in ws.config_objects()]
        return ConfigPublic(version=ws.config_version(), yaml=ws.export_config(), objects=objects)

    return await read(owner, work)


@router.post("/config/validate")
async def validate_config(owner: Owner, _caller: Editor, body: ConfigText) -> ValidationPublic:
    """Check a configuration as ``tessera apply`` does, without applying it: every problem at once."""

    def work(ws):
        try:
            _check(ws, body)
        except ConfigError as exc:
            return ValidationPublic(ok=False, errors=exc.problems,
                                    problems=[Problem(**problem_parts(p)) for p in exc.problems])
        return ValidationPublic(ok=True, errors=[], problems=[])

    return await read(owner, work)


@router.post("/config/diff")
async def diff_config(owner: Owner, _caller: Editor, body: ConfigText) -> DiffPublic:
    """What applying a configuration would add, remove and change, with a diff of the YAML (400 when invalid)."""
    return DiffPublic(**await read(owner, lambda ws: ws.diff_config(ws.parse_config_text(body.yaml),
                                                                    prune=body.prune)))


@router.post("/config/apply")
async def apply_config(request: Request, owner: Owner, caller: Admin, body: ConfigApply) -> ApplyPublic:
    """Replace the configuration (a job of the writer queue, audited with its diff); 409 when it changed
    since ``version``."""
    def check(ws):  # a stale version, then every problem at once, before queueing (the job checks again)
        ws.check_config_version(body.version)
        _check(ws, body)

    await read(owner, check)
    done = await run_change(request, owner, caller, "apply",
                            {"yaml": body.yaml, "prune": body.prune, "expected_version": body.version})
    version = await read(owner, lambda ws: ws.config_version())
    return ApplyPublic(job=done["job"], version=version, **done["changes"])
