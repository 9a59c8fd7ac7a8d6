"""Pydantic models of the workspace configuration.

Every model forbids unknown keys, so a typo in YAML is an error that names the setting.
Cross-object checks (a source naming an unknown connection, a mapping naming an unknown
column...) live in :func:`validate_workspace`, which reports every problem at once.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def _check_name(value: str) -> str:
    if not NAME_RE.match(value):
        raise ValueError(
            f"'{value}' is not a valid name: use lower-case letters, digits and '_', starting with a letter"
        )
    return value


# --------------------------------------------------------------------------- connections


class SecretRef(_Model):
    """Where a secret comes from instead of the configuration file: ``{env: VAR}`` reads an
    environment variable when the connection is used; ``{secret: NAME}`` is a secret stored
    encrypted in the metadata store (what ``tessera apply`` turns a plain password into)."""

    env: str | None = None
    secret: str | None = None

    @model_validator(mode="after")
    def _one(self) -> "SecretRef":
        if (self.env is None) == (self.secret is None):
            raise ValueError("a secret reference sets exactly one of env or secret, e.g. {env: PG_PASSWORD}")
        return self


# A password, key or token: plain text in YAML (encrypted at rest by ``tessera apply``) or a reference.
Secret = Union[str, SecretRef]

Channel = Literal["email", "sms"]


class _Connection(_Model):
    name: str
    description: str | None = None
    # Syncs to this destination send only contacts who opted in to these channels.
    requires_consent: list[Channel] = Field(default_factory=list)
    _v = field_validator("name")(_check_name)


class LocalConnectionConfig(_Connection):
    """A folder on this machine. Relative paths are resolved against the configuration file's folder."""

    type: Literal["local"]
    path: str


class PostgresConnectionConfig(_Connection):
    type: Literal["postgresql"]
    host: str = "localhost"
    port: int = 5432
    database: str
    user: str
    password: Secret | None = None
    schema_: str = Field(default="public", alias="schema")
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] | None = None
    connect_timeout: int = Field(default=10, ge=1)


class MySQLConnectionConfig(_Connection):
    """MySQL or MariaDB (``type: mysql`` or ``type: mariadb``, the same connection)."""

    type: Literal["mysql", "mariadb"]
    host: str = "localhost"
    port: int = 3306
    database: str
    user: str
    password: Secret | None = None
    connect_timeout: int = Field(default=10, ge=1)


class SQLiteConnectionConfig(_Connection):
    type: Literal["sqlite"]
    path: str  # the database file; relative to the configuration file's folder


class FTPConnectionConfig(_Connection):
    """An FTP server; ``type: ftps`` is FTP over explicit TLS (AUTH TLS) with a protected data channel."""

    type: Literal["ftp", "ftps"]
    host: str
    port: int = 21
    user: str = "anonymous"
    password: Secret | None = None
    path: str = "/"  # the folder that source patterns and file destinations are relative to
    passive: bool = True
    verify_certificate: bool = True  # ftps: check the server certificate
    ca_file: str | None = None  # ftps: a CA bundle or the server's own certificate
    timeout: int = Field(default=30, ge=1)


class SFTPConnectionConfig(_Connection):
    type: Literal["sftp"]
    host: str
    port: int = 22
    user: str
    password: Secret | None = None
    private_key: Secret | None = None  # the key's text (PEM/OpenSSH)
    private_key_file: str | None = None
    passphrase: Secret | None = None
    path: str = "/"
    known_hosts: str | None = None  # a known_hosts file; None: ~/.ssh/known_hosts
    verify_host_key: bool = True
    timeout: int = Field(default=30, ge=1)


class BigQueryConnectionConfig(_Connection):
    type: Literal["bigquery"]
    project: str
    dataset: str | None = None  # default dataset of unqualified table names
    location: str | None = None
    credentials_file: str | None = None  # a service account key file; None: application default
    credentials_json: Secret | None = None  # the key file's content, e.g. {env: GOOGLE_CREDENTIALS}


class WebhookConnectionConfig(_Connection):
    """An HTTP endpoint that receives JSON batches (a sync destination)."""

    type: Literal["webhook"]
    url: str
    secret: Secret | None = None  # signs each body: X-Tessera-Signature: sha256=<HMAC>
    headers: dict[str, str] = Field(default_factory=dict)
    batch_size: int = Field(default=500, ge=1, le=100_000)
    max_retries: int = Field(default=5, ge=0, le=20)
    timeout: float = Field(default=30.0, gt=0)


class HttpConnectionConfig(_Connection):
    """Event collection over HTTP (the Segment/RudderStack-compatible ``/v1`` API): one write key."""

    type: Literal["http"]
    write_key: Secret


ConnectionConfig = Annotated[
    Union[LocalConnectionConfig, PostgresConnectionConfig, MySQLConnectionConfig, SQLiteConnectionConfig,
          FTPConnectionConfig, SFTPConnectionConfig, BigQueryConnectionConfig, WebhookConnectionConfig,
          HttpConnectionConfig],
    Field(discriminator="type"),
]

FILE_CONNECTIONS = ("local", "ftp", "ftps", "sftp")
DATABASE_CONNECTIONS = ("postgresql", "mysql", "mariadb", "sqlite", "bigquery")
SECRET_FIELDS = ("password", "private_key", "passphrase", "credentials_json", "secret", "write_key")

_CRON_RE = re.compile(r"^(@(hourly|daily|weekly|monthly|yearly)|(\S+\s+){4}\S+)$")


def _check_cron(value: str | None) -> str | None:
    if value is None:
        return value
    from croniter import croniter

    if not _CRON_RE.match(value.strip()) or not croniter.is_valid(value.strip()):
        raise ValueError(f"'{value}' is not a cron schedule: use five fields, e.g. '*/15 * * * *' "
                         "(every 15 minutes) or '0 6 * * *' (daily at 06:00), or @hourly/@daily")
    return value.strip()


# --------------------------------------------------------------------------- normalization

#: values that never identify anyone (placeholders, test addresses), blocked on every identity key
DEFAULT_BLOCKED = [
    "test@test.com", "test@example.com", "noreply@noreply.com", "no-reply@no-reply.com", "a@a.com",
    "email@email.com", "none@none.com", "null@null.com", "x@x.com",
    "0000000000", "+330000000000", "1111111111", "1234567890", "0123456789", "+33000000000",
    "anonymous", "unknown", "null", "none", "n/a", "0", "-", "undefined", "test",
    # placeholders that tracking code sends as user or anonymous ids
    "nan", "nil", "(null)", "[object object]", "00000000-0000-0000-0000-000000000000", "guest",
]

NULL_LIKE_DEFAULT = ["", "N/A", "n/a", "NA", "null", "NULL", "None", "-", "0000-00-00", "00/00/0000"]


class NormalizationRule(_Model):
    """One normalization step. Exactly one of the fields is set; YAML accepts the short forms
    ``trim``, ``lower``, ``upper``, ``title``, ``email``, ``null_like``, ``country`` as plain strings."""

    trim: bool | None = None
    lower: bool | None = None
    upper: bool | None = None
    title: bool | None = None
    replace: dict[str, str] | None = None  # {"find": ..., "with": ...}
    regex_replace: dict[str, str] | None = None  # {"pattern": ..., "with": ...}
    null_like: list[str] | bool | None = None
    email: bool | None = None
    phone: dict[str, str] | bool | None = None  # {"country": "FR"}
    date: dict[str, Any] | bool | None = None  # {"format": "%d/%m/%Y"} or {"dayfirst": true}
    country: bool | None = None

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {data: True}
        return data

    @model_validator(mode="after")
    def _exactly_one(self) -> "NormalizationRule":
        set_fields = [k for k, v in self if v not in (None, False)]
        if len(set_fields) != 1:
            raise ValueError(
                "a normalization rule sets exactly one of: trim, lower, upper, title, replace, "
                f"regex_replace, null_like, email, phone, date, country (got {set_fields or 'none'})"
            )
        if self.replace is not None and set(self.replace) != {"find", "with"}:
            raise ValueError("replace takes {find: ..., with: ...}")
        if self.regex_replace is not None and set(self.regex_replace) != {"pattern", "with"}:
            raise ValueError("regex_replace takes {pattern: ..., with: ...}")
        return self

    @property
    def kind(self) -> str:
        return next(k for k, v in self if v not in (None, False))


ColumnType = Literal["string", "integer", "float", "decimal", "boolean", "date", "timestamp"]


# --------------------------------------------------------------------------- sources


class CsvOptions(_Model):
    delimiter: str | None = None  # None: detected
    decimal_comma: bool = False
    header: bool = True
    quote: str = '"'


class RelationConfig(_Model):
    """``column -> target``: this source's column refers to ``<source or dataset>.<column>``."""

    column: str
    to: str
    name: str | None = None  # column added to the dataset; default tessera_<target dataset>_id

    @field_validator("to")
    @classmethod
    def _target(cls, v: str) -> str:
        if v.count(".") != 1:
            raise ValueError(f"'{v}' must be '<source or dataset>.<column>', e.g. contacts.email")
        return v


class SourceConfig(_Model):
    name: str
    connection: str
    pattern: str | None = None
    format: Literal["auto", "csv", "json", "ndjson", "parquet", "xlsx"] = "auto"
    csv: CsvOptions = Field(default_factory=CsvOptions)
    record_keys: list[str] = Field(min_length=1)
    columns: list[str] | None = None  # selected columns; None = all
    types: dict[str, ColumnType] = Field(default_factory=dict)
    normalize: dict[str, list[NormalizationRule]] = Field(default_factory=dict)
    relations: list[RelationConfig] = Field(default_factory=list)
    max_reject_rate: float = Field(default=1.0, ge=0.0, le=1.0)
    import_strategy: Literal["new_files", "full", "incremental"] = "new_files"
    description: str | None = None
    # Files (local, FTP, FTPS, SFTP): ``pattern`` above. Databases: a table or a query.
    table: str | None = None
    query: str | None = None
    cursor: str | None = None  # incremental: the column that grows when a row is added or changed
    lookback: str | int | None = None  # incremental: re-read this far back ("10m", "2h", "1d" or a number)
    archive_folder: str | None = None  # files: move each imported file into this folder of the connection
    schedule: str | None = None  # cron: import this source on its own
    # A SQL condition over the source's columns (DuckDB dialect): only the rows it matches are staged.
    filter: str | None = None
    _v = field_validator("name")(_check_name)
    _c = field_validator("schedule")(_check_cron)

    @field_validator("lookback")
    @classmethod
    def _lookback(cls, v: str | int | None) -> str | int | None:
        if isinstance(v, str) and not re.match(r"^\d+(\.\d+)?\s*(s|m|h|d)$", v.strip()):
            raise ValueError(f"'{v}' is not a look-back window: use a number with s, m, h or d, e.g. '2h'")
        return v


# --------------------------------------------------------------------------- datasets

MergeRule = Literal[
    "most_recent", "non_null_most_recent", "first", "most_frequent", "max", "min", "source_priority",
    "concat_unique",
]

SEMANTIC_FIELDS = [
    "CustomerId", "Email", "Phone", "FirstName", "LastName", "FullName", "BirthDate", "Gender", "Address",
    "PostalCode", "City", "Country", "LoyaltyCard", "EmailOptIn", "SmsOptIn", "CreatedAt", "UpdatedAt",
    "OrderId", "OrderDate", "OrderAmount", "DiscountAmount", "Store", "Channel", "ProductId", "ProductName",
    "ProductCategory", "Quantity", "UnitPrice", "StoreId", "StoreName", "AnonymousId", "EventName", "EventType",
    "EventTime", "Other",
]


class DatasetColumnConfig(_Model):
    name: str
    type: ColumnType | None = None  # None: taken from the sources
    semantic: str | None = None  # None: suggested from the name
    merge: MergeRule = "most_recent"
    normalize: list[NormalizationRule] = Field(default_factory=list)
    _v = field_validator("name")(_check_name)


class ComputedColumnConfig(_Model):
    """A column computed from the other columns of the same dataset: one SQL expression in DuckDB's
    dialect (``concat(first_name, ' ', last_name)``), checked and rendered for the engine by
    :mod:`tessera.sqlcheck`. It may use another computed column."""

    name: str
    sql: str
    type: ColumnType | None = None  # None: the type of the expression
    semantic: str | None = None  # None: suggested from the name
    _v = field_validator("name")(_check_name)


class AggregateConfig(_Model):
    """A value computed from a related dataset onto this one (e.g. orders -> contacts)."""

    name: str
    from_: str = Field(alias="from")  # the related dataset; it needs a relation to this one
    function: Literal["sum", "avg", "count", "count_distinct", "min", "max", "first", "last",
                      "most_frequent", "list"]
    column: str | None = None  # the related dataset's column (not needed by count)
    filter: str | None = None  # a SQL condition over the related dataset's columns
    date_column: str | None = None  # for windows, first and last; default: its OrderDate field
    last: int | None = Field(default=None, ge=1)  # window: the last N units
    unit: Literal["days", "months", "years"] = "days"
    between: tuple[date, date] | None = None  # window: between two dates, inclusive
    _v = field_validator("name")(_check_name)

    @model_validator(mode="after")
    def _column_needed(self) -> "AggregateConfig":
        if self.function != "count" and not self.column:
            raise ValueError(f"function {self.function} needs a column")
        return self


class ScoresConfig(_Model):
    """Library and predictive scores of a customer dataset (see docs/scores.md)."""

    library: list[str] = Field(default_factory=list)  # rfm, purchase_timing, order_stats, ...
    orders: str | None = None  # default: the dataset with an OrderDate field related to this one
    order_items: str | None = None  # default: the dataset with Quantity/ProductCategory related to orders
    settings: dict[str, float] = Field(default_factory=dict)  # thresholds, see docs/scores.md
    predictive: bool = False  # BG/NBD + Gamma-Gamma scores
    predictive_settings: dict[str, float] = Field(default_factory=dict)  # horizon_days, clv_months, ...


class IdentityKeyConfig(_Model):
    column: str
    limit: int | None = Field(default=None, ge=1)  # at most N distinct values per unified record


class MappingConfig(_Model):
    """Feeds a dataset from one source: ``columns`` maps dataset column -> source column."""

    source: str
    columns: dict[str, str]


class DatasetConfig(_Model):
    name: str
    entity: str | None = None  # contacts, orders, order_items, products, stores or custom
    deduplicate: bool = False
    identity_keys: list[IdentityKeyConfig] = Field(default_factory=list)
    blocked_values: list[str] = Field(default_factory=list)
    shared_value_threshold: int | None = Field(default=50, ge=2)
    date_column: str | None = None  # the record date used by most_recent/first; default import time
    source_priority: list[str] = Field(default_factory=list)
    columns: list[DatasetColumnConfig] = Field(default_factory=list)
    mappings: list[MappingConfig] = Field(min_length=1)
    computed: list[ComputedColumnConfig] = Field(default_factory=list)
    aggregates: list[AggregateConfig] = Field(default_factory=list)
    scores: ScoresConfig | None = None
    _v = field_validator("name")(_check_name)


# --------------------------------------------------------------------------- syncs

SyncMode = Literal["insert", "upsert", "mirror"]  # new records only / new and existing / mirror


class SyncConfig(_Model):
    """Sends a dataset (or the rows of it that ``filter`` keeps) to a destination connection."""

    name: str
    dataset: str
    segment: str | None = None
    connection: str  # the destination: local, ftp, ftps, sftp, postgresql, mysql/mariadb or webhook
    mode: SyncMode = "upsert"
    key: str = "tessera_id"  # the dataset column that identifies a record at the destination
    fields: dict[str, str] | None = None  # destination field -> dataset column; None: every column
    filter: str | None = None  # a SQL condition over the dataset's columns
    # Destination details. Tables: ``table``. Files: ``folder`` (relative to the connection's path),
    # ``format`` and ``file_name`` ({sync}, {run} and {timestamp} are replaced).
    table: str | None = None
    folder: str = "."
    format: Literal["csv", "json", "parquet"] = "csv"
    file_name: str | None = None
    # Opt-in columns per channel, when the dataset's EmailOptIn/SmsOptIn fields are not the ones to use.
    consent_columns: dict[Channel, str] = Field(default_factory=dict)
    schedule: str | None = None
    description: str | None = None
    _v = field_validator("name")(_check_name)
    _c = field_validator("schedule")(_check_cron)


class PipelineConfig(_Model):
    schedule: str | None = None  # cron: run the whole pipeline (import, unify, enrich, publish)
    _c = field_validator("schedule")(_check_cron)


class WorkspaceConfig(_Model):
    connections: list[ConnectionConfig] = Field(default_factory=list)
    sources: list[SourceConfig] = Field(default_factory=list)
    datasets: list[DatasetConfig] = Field(default_factory=list)
    syncs: list[SyncConfig] = Field(default_factory=list)
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
