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
     +-- UsageError         a request that cannot be answered as asked
     +-- NotFoundError      no such object (dataset, record, job, segment...)
     +-- BusyError          the workspace is busy with another writer; retry later
     +-- ConflictError      the change was made against an old version of the object
     |    +-- VersionConflict   ... the version sent is no longer the current one
     +-- ForbiddenError     the caller may not do this
     +-- JobCancelled       a job was cancelled before it finished

Every class carries a ``code`` and an HTTP ``status`` (the one table below): the API answers with
them and never reads a message's text.
"""

from __future__ import annotations


class TesseraError(Exception):
    """Root of the errors a user can cause and fix."""

    code = "error"
    status = 400


class ConfigError(TesseraError):
    """The configuration is invalid. ``problems`` lists every problem found, each with its location."""

    code = "invalid"
    status = 400

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

    code = "workspace"
    status = 409


class SourceError(TesseraError):
    """A source cannot be imported."""

    code = "source"
    status = 422


class EngineError(TesseraError):
    """The warehouse engine refused a statement."""

    code = "engine"
    status = 422

    def __init__(self, message: str, *, sql: str | None = None):
        self.sql = sql
        super().__init__(message if sql is None else f"{message}\nSQL: {sql[:2000]}")


class IdentityError(TesseraError):
    """Identity resolution cannot answer the question asked."""

    code = "identity"
    status = 422


class RunError(TesseraError):
    """A run failed; the last published state is left in place."""

    code = "run_failed"
    status = 422


class ConnectionFailed(TesseraError):
    """A connection cannot be used. ``reason`` is one of: unreachable, auth_refused, not_found,
    permission_denied, tls, host_key (an unknown or changed SFTP host key), timeout, config, error;
    the message says what to check."""

    code = "connection_failed"
    status = 502

    def __init__(self, message: str, *, reason: str = "error"):
        self.reason = reason
        super().__init__(message)


class SyncError(TesseraError):
    """A sync cannot run."""

    code = "sync_failed"
    status = 422


class UsageError(TesseraError):
    """A request that cannot be answered as asked (an unknown format, a missing argument)."""

    code = "invalid_request"
    status = 400


class NotFoundError(TesseraError):
    """No such object: an unknown dataset, record, job, run or segment."""

    code = "not_found"
    status = 404


class BusyError(WorkspaceError):
    """Another writer holds the workspace; the same request may succeed later."""

    code = "busy"
    status = 503


class ConflictError(TesseraError):
    """A change was made against an old version of an object, or the object exists already."""

    code = "conflict"
    status = 409


class VersionConflict(ConflictError):
    """A change names the version of the configuration (or of one object) it was made from, and
    another change came first: read the current version, merge, and send again."""

    code = "version_conflict"
    status = 409


class ForbiddenError(TesseraError):
    """The caller's role does not allow this."""

    code = "forbidden"
    status = 403


class JobCancelled(TesseraError):
    """A job was cancelled before it finished; what it built was not published."""

    code = "cancelled"
    status = 409


def error_classes() -> list[type[TesseraError]]:
    """Every error class loaded so far, the root first."""
    out, todo = [], [TesseraError]
    while todo:
        cls = todo.pop(0)
        out.append(cls)
        todo.extend(cls.__subclasses__())
    return out


def error_table() -> list[tuple[str, str, int]]:
    """(class name, code, HTTP status) of every error class that has a code of its own, for the docs
    and the API (a subclass that inherits its code, e.g. a module's own failure, is answered as its
    parent)."""
    return [(cls.__name__, cls.code, cls.status) for cls in error_classes()
            if cls is TesseraError or "code" in vars(cls)]
