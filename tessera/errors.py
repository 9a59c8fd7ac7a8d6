"""Errors raised by Tessera.

Every error a user can cause derives from ``TesseraError``; its message says what failed,
where (file, line, column, setting) and how to fix it. Anything else is a bug of ours.

    TesseraError
     +-- ConfigError        invalid workspace configuration (all problems reported at once)
     +-- WorkspaceError     missing or unusable workspace folder / metadata store
     +-- SourceError        a source cannot be read (file missing, unreadable, too many rejects)
     +-- EngineError        the warehouse engine refused a statement (SQL attached)
     +-- IdentityError      identity resolution cannot proceed (unknown record, bad key)
     +-- RunError           a run failed; the previous published state is kept
     +-- ConnectionFailed   a connection cannot be used (unreachable, auth refused, missing table...)
     +-- SyncError          a sync cannot run (its destination refused the plan)
"""

from __future__ import annotations


class TesseraError(Exception):
    """Root of the errors a user can cause and fix."""


class ConfigError(TesseraError):
    """The configuration is invalid. ``problems`` lists every problem found, each with its location."""

    def __init__(self, problems: list[str] | str, *, origin: str | None = None):
        if isinstance(problems, str):
            problems = [problems]
        self.problems = list(problems)
        self.origin = origin
        head = f"Invalid configuration{f' in {origin}' if origin else ''}"
        if len(self.problems) == 1:
            msg = f"{head}: {self.problems[0]}"
        else:
            msg = f"{head} ({len(self.problems)} problems):\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(msg)


class WorkspaceError(TesseraError):
    """The workspace folder or its metadata store cannot be used."""


class SourceError(TesseraError):
    """A source cannot be imported."""


class EngineError(TesseraError):
    """The warehouse engine refused a statement."""

    def __init__(self, message: str, *, sql: str | None = None):
        self.sql = sql
        super().__init__(message if sql is None else f"{message}\nSQL: {sql[:2000]}")


class IdentityError(TesseraError):
    """Identity resolution cannot answer the question asked."""


class RunError(TesseraError):
    """A run failed; the last published state is left in place."""


class ConnectionFailed(TesseraError):
    """A connection cannot be used. ``reason`` is one of: unreachable, auth_refused, not_found,
    permission_denied, tls, host_key (an unknown or changed SFTP host key), timeout, config, error;
    the message says what to check."""

    def __init__(self, message: str, *, reason: str = "error"):
        self.reason = reason
        super().__init__(message)


class SyncError(TesseraError):
    """A sync cannot run."""
