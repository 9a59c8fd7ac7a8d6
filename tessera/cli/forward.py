"""Commands of a CLI answered by the running server, and what both sides share.

The CLI sends a read command (``tessera status``, ``rejects``, ``explain``...) to the server that
owns the workspace; the server runs the same command on a reader of its workspace
(:func:`run_in_server`) and sends back its output.
"""

from __future__ import annotations

import io
import sys
import threading
from pathlib import Path
from typing import Callable, Optional

import typer

from tessera.cli.common import STATE, app, console, err
from tessera.errors import ConnectionFailed, TesseraError, UsageError

# Commands that never go to a running server: they make a workspace, serve it, or read no workspace;
# users, tokens and audit touch only the metadata store, which is safe beside a server (and a
# password read from stdin stays on this side).
LOCAL = {"init", "demo", "serve", "scores", "jobs", "setup", "users", "tokens", "audit"}
# Writes: the command itself sends a job to the running server (and shows its progress).
JOBS = {"run", "import", "apply", "sync run", "sync reset", "schedule run", "segments refresh", "privacy erase"}


def normalize_argv(argv: list[str]) -> list[str]:
    """Move ``-w DIR`` / ``--workspace DIR`` / ``--workspace=DIR`` to the front, wherever it was typed."""
    front, rest, i = [], [], 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-w", "--workspace") and i + 1 < len(argv):
            front += [arg, argv[i + 1]]
            i += 2
            continue
        if arg.startswith("--workspace="):
            front.append(arg)
        else:
            rest.append(arg)
        i += 1
    return front + rest


PATH_OPTIONS = ("-o", "--output")


def absolute_paths(argv: list[str]) -> list[str]:
    """The files named by ``-o``/``--output`` made absolute, for a server that runs elsewhere in the tree."""
    out = list(argv)
    for i, arg in enumerate(out[:-1]):
        if arg in PATH_OPTIONS:
            out[i + 1] = str(Path(out[i + 1]).resolve())
    for i, arg in enumerate(out):
        if arg.startswith("--output="):
            out[i] = "--output=" + str(Path(arg.split("=", 1)[1]).resolve())
    return out


def command_of(argv: list[str]) -> str:
    """``run``, ``sync run``, ``connections test``... (the words before the first option or argument)."""
    words, i = [], 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-w", "--workspace"):
            i += 2
            continue
        if arg.startswith("-"):
            i += 1
            continue
        words.append(arg)
        if len(words) == 2 or words[0] not in ("sync", "schedule", "connections", "jobs", "scores", "identity", "setup", "segments",
                                                 "privacy"):
            break
        i += 1
    return " ".join(words)


def _workspace_arg(argv: list[str]) -> Optional[str]:
    for i, arg in enumerate(argv):
        if arg in ("-w", "--workspace") and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--workspace="):
            return arg.split("=", 1)[1]
    return None


def _invoke(argv: list[str]) -> int:
    """Run the CLI on ``argv``; the exit code (errors printed as ``Error: ...``)."""
    try:
        result = app(args=argv, prog_name="tessera", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except typer.Exit as exc:
        return exc.exit_code
    except ConnectionFailed as exc:
        if STATE["debug"]:
            raise
        err.print(f"Error ({exc.reason.replace('_', ' ')}): {exc}", markup=False, highlight=False)
        return 1
    except TesseraError as exc:
        if STATE["debug"]:
            raise
        err.print(f"Error: {exc}", markup=False, highlight=False)
        return 1
    except typer.TyperException as exc:  # a usage error: an unknown command or option, a bad value
        out = sys.stderr if err.file is sys.stderr else err.file
        if hasattr(exc, "show"):  # with the command's usage line and where its help is
            exc.show(file=out)
        else:
            print(f"Error: {exc.format_message()}", file=out)
        return exc.exit_code
    except typer.Abort:
        return 1
    except Exception as exc:
        if STATE["debug"]:
            raise
        # a bug of ours still ends in one line, not a traceback
        detail = (str(exc).strip().splitlines() or [""])[0][:500]
        err.print(f"Error: unexpected {type(exc).__name__}{': ' + detail if detail else ''}. This is a bug of "
                  "Tessera, not of your input: rerun with --debug for the traceback and report it.",
                  markup=False, highlight=False)
        return 1


_forward_lock = threading.Lock()


def run_in_server(reader: Callable, argv: list[str], width: int = 100) -> dict:
    """Run a read command for a CLI on a reader of the server's workspace; its output as text.

    Called by the server (``POST /api/cli``) with its reader factory. Writes are refused here:
    they come as jobs.
    """
    argv = normalize_argv(list(argv))
    command = command_of(argv)
    if command in JOBS or command.split(" ")[0] in LOCAL or not command:
        raise UsageError(f"'tessera {command}' is not answered by the server; send writes as jobs (POST /api/jobs)")
    with _forward_lock:
        out, errors = io.StringIO(), io.StringIO()
        saved = (console.file, err.file, console.width, err.width, dict(STATE))
        console.file, err.file = out, errors
        console.width = err.width = max(40, min(int(width), 400))
        STATE.update(reader=reader(), workspace=None, debug=False)
        try:
            code = _invoke(argv)
        finally:
            console.file, err.file, console.width, err.width = saved[:4]
            STATE.clear()
            STATE.update(saved[4])
    return {"stdout": out.getvalue(), "stderr": errors.getvalue(), "exit_code": code}


