"""``tessera tokens``: API tokens (``Authorization: Bearer tsk_...``) of users, scoped to a role.

Like ``tessera users``, these commands work on the metadata store in this process, even while a
server runs (the server checks tokens in the same store).
"""

from __future__ import annotations

from typing import Optional

import typer
from rich.table import Table

from tessera.cli.common import console, open_workspace
from tessera.cli.users import actor, users_of

app = typer.Typer(help="API tokens of users: create (shown once), list, revoke.", no_args_is_help=True)


@app.command("create")
def create(user: str = typer.Option(..., "--user", help="The email of the token's user."),
           role: str = typer.Option(..., "--role", help="admin, editor or viewer (at most the user's role)."),
           expires: str = typer.Option("90d", "--expires", help="90d, 12h, 30m, 2w, a date (2027-03-01) or never."),
           note: Optional[str] = typer.Option(None, "--note", help="What the token is for.")) -> None:
    """Create an API token and print it, once: only its hash is kept."""
    with open_workspace() as ws:
        token, row = users_of(ws).create_token(user, role, expires=expires, note=note, by=actor())
    until = row["expires_at"][:19] if row.get("expires_at") else "never"
    console.print(f"Token {row['id']} for {row['user']} ({row['role']}), expires {until}. "
                  "Copy it now, it is not shown again:", highlight=False)
    print(token)


@app.command("revoke")
def revoke(token_id: int = typer.Argument(..., help="The token's id (tessera tokens list).")) -> None:
    """Revoke a token: the server refuses it from now on."""
    with open_workspace() as ws:
        row = users_of(ws).revoke_token(token_id, by=actor())
    console.print(f"Token {token_id} of {row['user']} revoked.", highlight=False)


@app.command("list")
def list_tokens(user: Optional[str] = typer.Option(None, "--user", help="Only the tokens of this user.")) -> None:
    """List the tokens (never the tokens themselves): user, role, state, expiry, last use."""
    with open_workspace() as ws:
        rows = users_of(ws).tokens(user)
    if not rows:
        console.print("No API token: create one with tessera tokens create --user E --role R")
        return
    t = Table(title="API tokens")
    for col in ("id", "user", "role", "state", "starts", "expires", "last used", "note"):
        t.add_column(col)
    for r in rows:
        t.add_row(str(r["id"]), r["user"] or "", r["role"], r["state"], r["prefix"] + "...",
                  (r.get("expires_at") or "never")[:19], (r.get("last_used_at") or "")[:19], r.get("note") or "")
    console.print(t)
