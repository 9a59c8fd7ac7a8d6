"""``tessera users``: the people who sign in to the server, and their roles.

These commands work on the metadata store only, so they run in this process even while a server
serves the workspace (they are never sent to it: a password read from stdin stays on this side).
"""

from __future__ import annotations

import getpass
import sys

import typer
from rich.table import Table

from tessera.cli.common import console, open_workspace
from tessera.errors import UsageError

app = typer.Typer(help="Users of the server and their roles (admin, editor, viewer).", no_args_is_help=True)

PasswordStdin = typer.Option(False, "--password-stdin",
                             help="Read the password from stdin (its first line), e.g. from a secret manager.")


def users_of(ws):
    """The users and tokens of the workspace (:class:`tessera.users.Users`, imported when used)."""
    from tessera.users import Users

    return Users(ws.store)


def actor() -> str:
    """Who runs the command, as the audit log records it."""
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # noqa: BLE001 - no login name in some containers
        return "cli"


def read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise UsageError("--password-stdin: stdin gave no password (send it as the first line)")
        return line
    if not sys.stdin.isatty():
        raise UsageError("give the password with --password-stdin (stdin is not a terminal to ask it on)")
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True)


@app.command("create-admin")
def create_admin(email: str = typer.Option(..., "--email", help="The admin's email (the sign-in name)."),
                 password_stdin: bool = PasswordStdin) -> None:
    """Create an admin: the first user of a server, who then adds the others."""
    password = read_password(password_stdin)
    with open_workspace() as ws:
        user = users_of(ws).create(email, "admin", password, by=actor())
    console.print(f"Admin {user['email']} created.", highlight=False)


@app.command("add")
def add(email: str = typer.Argument(..., help="The user's email."),
        role: str = typer.Option(..., "--role", help="admin, editor or viewer."),
        password_stdin: bool = PasswordStdin) -> None:
    """Add a user with a role."""
    password = read_password(password_stdin)
    with open_workspace() as ws:
        user = users_of(ws).create(email, role, password, by=actor())
    console.print(f"User {user['email']} ({user['role']}) added.", highlight=False)


@app.command("remove")
def remove(email: str = typer.Argument(..., help="The user's email.")) -> None:
    """Remove a user and its API tokens (never the last admin)."""
    with open_workspace() as ws:
        users_of(ws).remove(email, by=actor())
    console.print(f"User {email} removed.", highlight=False)


@app.command("list")
def list_users() -> None:
    """List the users and their roles."""
    with open_workspace() as ws:
        rows = users_of(ws).list()
    if not rows:
        console.print("No user yet: create the first admin with tessera users create-admin --email E --password-stdin")
        return
    t = Table(title="Users")
    for col in ("email", "role", "created", "by"):
        t.add_column(col)
    for u in rows:
        t.add_row(u["email"], u["role"], (u.get("created_at") or "")[:19], u.get("created_by") or "")
    console.print(t)
