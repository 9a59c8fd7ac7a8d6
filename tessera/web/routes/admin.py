"""Admins: users, API tokens and the audit log."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse

from tessera.errors import TesseraError
from tessera.store.models import ROLES
from tessera.web.auth import Admin
from tessera.web.render import render

router = APIRouter(include_in_schema=False)


def _users(request: Request):
    return request.app.state.users


async def _users_page(request: Request, status_code: int = 200, **values):
    users = await asyncio.to_thread(_users(request).list)
    return render(request, "admin_users.html", status_code=status_code, nav="admin", tab="users", users=users,
                  roles=ROLES, **values)


@router.get("/admin/users")
async def users(request: Request, user: Admin):
    return await _users_page(request)


@router.post("/admin/users")
async def add_user(request: Request, user: Admin, email: str = Form("", max_length=320),
                   role: str = Form("viewer", max_length=20), password: str = Form("", max_length=1024)):
    try:
        await asyncio.to_thread(_users(request).create, email, role, password, by=user.identity)
    except TesseraError as exc:
        return await _users_page(request, status_code=400, error=str(exc), form={"email": email, "role": role})
    return RedirectResponse("/admin/users", status_code=303)


@router.post("/admin/users/{email}/remove")
async def remove_user(request: Request, user: Admin, email: str):
    try:
        await asyncio.to_thread(_users(request).remove, email, by=user.identity)
    except TesseraError as exc:
        return await _users_page(request, status_code=400, error=str(exc))
    return RedirectResponse("/admin/users", status_code=303)


async def _tokens_page(request: Request, status_code: int = 200, **values):
    tokens = await asyncio.to_thread(_users(request).tokens)
    users = await asyncio.to_thread(_users(request).list)
    return render(request, "admin_tokens.html", status_code=status_code, nav="admin", tab="tokens", tokens=tokens,
                  users=users, roles=ROLES, **values)


@router.get("/admin/tokens")
async def tokens(request: Request, user: Admin):
    return await _tokens_page(request)


@router.post("/admin/tokens")
async def create_token(request: Request, user: Admin, email: str = Form("", max_length=320),
                       role: str = Form("viewer", max_length=20), expires: str = Form("90d", max_length=40),
                       note: str = Form("", max_length=500)):
    try:
        token, row = await asyncio.to_thread(_users(request).create_token, email, role, expires=expires or None,
                                             note=note or None, by=user.identity)
    except TesseraError as exc:
        return await _tokens_page(request, status_code=400, error=str(exc))
    # The token is shown this once (only its hash is kept); the page is not cached.
    response = await _tokens_page(request, created={"token": token, "row": row})
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/admin/tokens/{token_id}/revoke")
async def revoke_token(request: Request, user: Admin, token_id: int):
    try:
        await asyncio.to_thread(_users(request).revoke_token, token_id, by=user.identity)
    except TesseraError as exc:
        return await _tokens_page(request, status_code=400, error=str(exc))
    return RedirectResponse("/admin/tokens", status_code=303)


@router.get("/admin/audit")
async def audit(request: Request, user: Admin, action: str | None = Query(None, max_length=100),
                actor: str | None = Query(None, max_length=320), before: int | None = None):
    store = request.app.state.owner.workspace.store
    lines = await asyncio.to_thread(store.list_audit, 101, action=action or None, actor=actor or None, before=before)
    return render(request, "admin_audit.html", nav="admin", tab="audit", lines=lines[:100],
                  more=lines[99]["id"] if len(lines) > 100 else None, action=action or "", actor=actor or "")
