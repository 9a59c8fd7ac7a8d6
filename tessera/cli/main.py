"""The ``tessera`` command line: ``tessera <noun> <verb>`` over the Workspace facade.

One module per noun (``tessera/cli/<noun>.py``) registers its commands on the one Typer app of
:mod:`tessera.cli.common`. ``-w DIR`` is accepted before or after the command. When a server
runs on the workspace, writes become its jobs and reads are answered by it (see
:mod:`tessera.cli.common`).
"""

from __future__ import annotations

import sys

# Each module registers the commands of its noun on the app.
from tessera.cli import connections, data, demo, runs, schedule, scores, server, syncs  # noqa: F401
from tessera.cli import identity as identity_cli
from tessera.cli.setup import app as setup_app
from tessera.cli import workspace as workspace_commands  # noqa: F401
from tessera.cli.common import STATE, app, console, err  # noqa: F401 - app: the one Typer app
from tessera.cli.common import server as running_server
from tessera.cli.forward import JOBS, LOCAL, _invoke, _workspace_arg, absolute_paths, command_of, normalize_argv
from tessera.errors import TesseraError

app.add_typer(identity_cli.app, name="identity")
app.add_typer(setup_app, name="setup")
app.add_typer(__import__("tessera.cli.sources", fromlist=["app"]).app, name="sources")
app.add_typer(__import__("tessera.cli.segments", fromlist=["app"]).app, name="segments")
app.add_typer(__import__("tessera.cli.users", fromlist=["app"]).app, name="users")
app.add_typer(__import__("tessera.cli.tokens", fromlist=["app"]).app, name="tokens")
app.add_typer(__import__("tessera.cli.audit", fromlist=["app"]).app, name="audit")
app.add_typer(__import__("tessera.cli.dashboards", fromlist=["app"]).app, name="dashboards")


def main(argv: list[str] | None = None) -> None:
    argv = normalize_argv(sys.argv[1:] if argv is None else list(argv))
    command = command_of(argv)
    if command and command not in JOBS and command.split(" ")[0] not in LOCAL and "--help" not in argv:
        STATE["workspace"] = _workspace_arg(argv)
        client = running_server()
        if client is not None:
            argv = absolute_paths(argv)  # the server's working folder is not this one
            try:
                answer = client.call("POST", "/api/cli", json={"argv": argv, "width": console.width})
            except TesseraError as exc:
                err.print(f"Error: {exc}", markup=False, highlight=False)
                sys.exit(1)
            sys.stdout.write(answer["stdout"])
            sys.stderr.write(answer["stderr"])
            sys.exit(answer["exit_code"])
    sys.exit(_invoke(argv))


if __name__ == "__main__":
    main()
