"""Tables of the metadata store.

The metadata store keeps what Tessera knows about a workspace apart from the data itself: the
applied configuration and its history, runs and their steps, imported files, the schemas
inferred for sources and the published versions of datasets. It lives in its own database (a
SQLite file by default, PostgreSQL for shared deployments), so the tables carry no prefix.

Every change to these models needs a migration in ``migrations/versions``; the test suite
checks that the migrations and the models agree.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_N_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

CONFIG_KINDS = ("connection", "source", "dataset", "sync", "pipeline")
"""Kinds of configuration objects, in the order they are loaded (dependencies first)."""

RUN_STATUSES = ("running", "succeeded", "failed", "killed", "interrupted", "cancelled")

JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled", "interrupted")
"""States of a job of the server's writer queue; the last four are final."""


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ConfigObject(Base):
    """One object of the current workspace configuration (a connection, a source or a dataset)."""

    __tablename__ = "config_objects"
    __table_args__ = (UniqueConstraint("kind", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(255))
    position: Mapped[int] = mapped_column(Integer)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ConfigVersion(Base):
    """A whole configuration as it was applied (audit history)."""

    __tablename__ = "config_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    spec: Mapped[Any] = mapped_column(JSON)
    origin: Mapped[str] = mapped_column(String(1024))


class Run(Base):
    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), index=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    pid: Mapped[int | None] = mapped_column(Integer)
    counts: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)

    steps: Mapped[list[RunStep]] = relationship(
        back_populates="run", order_by="RunStep.id", cascade="all, delete-orphan"
    )


class RunStep(Base):
    __tablename__ = "run_steps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    step: Mapped[str] = mapped_column(String(255))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    seconds: Mapped[float] = mapped_column(Float)
    counts: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))

    run: Mapped[Run] = relationship(back_populates="steps")


class ImportedFile(Base):
    """A file read by a file source; its hash tells whether a file was already imported."""

    __tablename__ = "imported_files"
    __table_args__ = (Index("ix_imported_files_source_sha256", "source", "sha256"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(255))
    path: Mapped[str] = mapped_column(String(4096))
    name: Mapped[str] = mapped_column(String(1024))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    batch_id: Mapped[int] = mapped_column(Integer)
    imported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    rows: Mapped[int | None] = mapped_column(BigInteger)
    rejected: Mapped[int | None] = mapped_column(BigInteger)
    archive_path: Mapped[str | None] = mapped_column(String(4096))
    status: Mapped[str] = mapped_column(String(32))


class SourceSchema(Base):
    """Columns seen in a source so far, in the order they first appeared."""

    __tablename__ = "source_schemas"

    source: Mapped[str] = mapped_column(String(255), primary_key=True)
    column_name: Mapped[str] = mapped_column(String(255), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    inferred_type: Mapped[str] = mapped_column(String(255))


class Publication(Base):
    """One published version of a dataset (the table that readers see)."""

    __tablename__ = "publications"

    dataset: Mapped[str] = mapped_column(String(255), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int | None] = mapped_column(Integer)
    table_name: Mapped[str] = mapped_column(String(255))
    published_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    rows: Mapped[int | None] = mapped_column(BigInteger)


class Counter(Base):
    """Named counters shared by every process using the workspace (e.g. ``batch_id``)."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)


class Secret(Base):
    """A password, key or token of a connection, encrypted (Fernet) with the workspace's key."""

    __tablename__ = "secrets"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    ciphertext: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class State(Base):
    """Small durable state of a component: an import cursor, a schedule's last run, a log offset."""

    __tablename__ = "states"

    scope: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[Any | None] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Job(Base):
    """A write (run, import, sync, apply) asked of the server, run on its one writer queue."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), index=True)
    progress: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    log: Mapped[list[Any] | None] = mapped_column(JSON)
    result: Mapped[Any | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    error_code: Mapped[str | None] = mapped_column(String(64))
    requested_by: Mapped[str | None] = mapped_column(String(255))
    server_pid: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


IDENTITY_OVERRIDE_KINDS = ("merge", "split", "reject")


class IdentityOverride(Base):
    """A manual rule of identity resolution, kept across runs and re-imports: ``merge`` these source
    records, ``split`` these records from the rest of their unified record, ``reject`` the match of a
    pair. Accepting a pair of the review queue is a merge, rejecting it a reject (origin ``review``)."""

    __tablename__ = "identity_overrides"
    __table_args__ = (Index("ix_identity_overrides_dataset", "dataset"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16))
    records: Mapped[Any] = mapped_column(JSON)  # list of source record ids (_tessera_record)
    origin: Mapped[str] = mapped_column(String(16))  # manual or review
    note: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


ROLES = ("viewer", "editor", "admin")
"""Roles of the users of the server, weakest first: a role may do everything the ones before it may."""


class User(Base):
    """A person who signs in to the server (the REST API, the web app) with an email and a password."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str | None] = mapped_column(Text)  # Argon2 (pwdlib); None: no password sign-in
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(320))


class ApiToken(Base):
    """An API token (``tsk_...``) of a user, scoped to a role; only its SHA-256 is kept."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # the first characters, to recognize a token in a list
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuditEntry(Base):
    """One line of the audit log (append-only): who did what, when, to what."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    actor: Mapped[str | None] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str | None] = mapped_column(String(512))
    details: Mapped[Any | None] = mapped_column(JSON)
    client: Mapped[str | None] = mapped_column(String(64))


class PrivacyRequest(Base):
    """An erase or export of one customer: who asked, when, and its receipt (what was removed
    where, with counts; the customer named by ``tessera_id``, never by an e-mail or a phone)."""

    __tablename__ = "privacy_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # erase or export
    subject: Mapped[str] = mapped_column(String(512))
    requested_by: Mapped[str | None] = mapped_column(String(320))
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16))  # running, done, failed
    receipt: Mapped[Any | None] = mapped_column(JSON)
