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

from tessera.config.scores import PREDICTIVE_SETTINGS

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

Channel = Literal["email", "sms", "phone", "ads"]


class _Connection(_Model):
    name: str
    description: str | None = None
    # Syncs to this destination send only contacts who opted in to these channels.
    requires_consent: list[Channel] = Field(default_factory=list)
    _v = field_validator("name")(_check_name)


# A TCP port: a number from 1 to 65535.
Port = Annotated[int, Field(ge=1, le=65535)]


class LocalConnectionConfig(_Connection):
    """A folder on this machine. Relative paths are resolved against the configuration file's folder."""

    type: Literal["local"]
    path: str
    # Follow symbolic links that lead outside ``path`` (refused by default: a link must not let a
    # source read files from elsewhere on the machine).
    allow_symlinks: bool = False


class PostgresConnectionConfig(_Connection):
    type: Literal["postgresql"]
    host: str = "localhost"
    port: Port = 5432
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
    port: Port = 3306
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
    port: Port = 21
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
    port: Port = 22
    user: str
    password: Secret | None = None
    private_key: Secret | None = None  # the key's text (PEM/OpenSSH)
    private_key_file: str | None = None
    passphrase: Secret | None = None
    path: str = "/"
    known_hosts: str | None = None  # a known_hosts file; None: ~/.ssh/known_hosts
    verify_host_key: bool = True
    timeout: int = Field(default=30, ge=1)
    # Follow symbolic links on the server that lead outside ``path`` (refused by default).
    allow_symlinks: bool = False


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
    ``trim``, ``lower``, ``upper``, ``title``, ``email``, ``null_like``, ``country``, ``gender`` as plain strings."""

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
    gender: bool | None = None

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
                f"regex_replace, null_like, email, phone, date, country, gender (got {set_fields or 'none'})"
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


class ItemsConfig(_Model):
    """A child source made of the items held in one column of another source's rows: an order's
    ``line_items`` JSON array of objects, or packed text such as ``SKU1:2|SKU2:1``. Each item is a
    row keyed by the parent's record key(s) and its ``position`` (1, 2...)."""

    source: str  # the parent source
    column: str  # its column holding the items
    fields: list[str] = Field(min_length=1)  # JSON keys (paths: product.sku) or the packed fields in order
    separator: str | None = None  # packed text: between two items; unset: a JSON array of objects
    field_separator: str = ":"  # packed text: between the fields of one item


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
    # CSV and NDJSON files: a line longer than this (bytes) refuses the file, naming the line.
    max_line_bytes: int = Field(default=2_000_000, ge=1_000, le=1_000_000_000)
    # A record key on several lines of one file: keep the last line (the newer state), the first,
    # or reject them all. The other lines go to the rejects, naming the line kept.
    on_duplicate_key: Literal["first", "last", "reject"] = "last"
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
    # A child source: the items of a column of another source (imported with it; no pattern).
    items_of: ItemsConfig | None = None
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
    "most_recent", "non_null_most_recent", "most_recent_or_null", "first", "first_or_null", "most_frequent",
    "max", "min", "source_priority", "concat_unique",
]

SEMANTIC_FIELDS = [
    "CustomerId", "Email", "Phone", "FirstName", "LastName", "FullName", "BirthDate", "Gender", "Address",
    "PostalCode", "City", "Country", "LoyaltyCard", "EmailOptIn", "SmsOptIn", "PhoneOptIn", "AdsOptIn", "CreatedAt", "UpdatedAt",
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
    predictive: bool = False  # MBG/NBD + Gamma-Gamma scores
    # horizon_days, clv_months, ... (numbers) and model (mbgnbd or bgnbd); checked in config/scores.py
    predictive_settings: dict[str, float | str] = Field(default_factory=dict)

    @field_validator("predictive_settings")
    @classmethod
    def _numbers(cls, value: dict[str, float | str]) -> dict[str, float | str]:
        out: dict[str, float | str] = {}
        for key, v in value.items():
            # an unknown name is left as written: the check at apply names it with a did-you-mean
            if key != "model" and key in PREDICTIVE_SETTINGS and isinstance(v, str):
                try:
                    v = float(v)
                except ValueError:
                    raise ValueError(f"{key}: '{v}' is not a number (only model takes a name: mbgnbd or bgnbd)") \
                        from None
            out[key] = v
        return out


class IdentityKeyConfig(_Model):
    column: str
    limit: int | None = Field(default=None, ge=1)  # at most N distinct values per unified record
    # Guard rails of a value people share (Phone, Address, AnonymousId keys by default): a value whose
    # records disagree is not used to merge them. ``requires_agreement`` names the columns that must not
    # differ (default: first name, and e-mail or birth date); ``allow_conflicts: true`` turns the guard off.
    requires_agreement: list[str] | None = None
    allow_conflicts: bool | None = None


MatchMethod = Literal["exact", "levenshtein", "jaro_winkler", "name", "email", "date"]


class ComparisonConfig(_Model):
    """One comparison of probabilistic matching: how equal a column is on the two records of a pair.

    Levels, best first: ``exact`` (after lower case and accents removed), then the method's fuzzy
    levels, then "different"; a missing value on either side is neutral. ``levels`` sets the fuzzy
    thresholds: edit distances for ``levenshtein``/``name``/``email``, similarities (0..1) for
    ``jaro_winkler``, days for ``date``."""

    column: str
    method: MatchMethod = "exact"
    levels: list[float] | None = None


class MatchingConfig(_Model):
    """Probabilistic (Fellegi-Sunter) matching of a deduplicated dataset (see docs/identity.md)."""

    comparisons: list[ComparisonConfig] = Field(min_length=1)
    # Candidate pairs: records equal on every column of at least one rule (after normalization).
    blocking: list[list[str]] = Field(min_length=1)
    merge: float = Field(default=0.99, gt=0, lt=1)  # match probability from which records merge
    review: float = Field(default=0.8, gt=0, lt=1)  # from here up to ``merge``: the review queue
    max_block_size: int = Field(default=200, ge=2)  # a blocking value with more records pairs none of them
    # Never link a pair whose first names differ and whose e-mails or birth dates differ (twins, households).
    guard: bool = True

    @model_validator(mode="after")
    def _thresholds(self) -> "MatchingConfig":
        if self.review > self.merge:
            raise ValueError(f"review ({self.review}) must not be above merge ({self.merge})")
        for rule in self.blocking:
            if not rule:
                raise ValueError("a blocking rule names at least one column, e.g. [last_name, postal_code]")
        return self


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
    matching: MatchingConfig | None = None  # probabilistic matching besides the identity keys
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
    # The date scores, time windows, predictions and segments are computed at (default: the day of
    # the run); the demo company sets the day its data ends.
    as_of: date | None = None
    # Limits of one run or import (a job): the engine's memory ("4GB", "500MiB", or "50%" of this
    # machine's memory; unset: TESSERA_DUCKDB_MEMORY_LIMIT, else DuckDB's default of 80%) and its
    # wall time ("45m", "2h", or seconds). Past either, the job stops with a message naming the
    # setting, and the last publication stays.
    memory_limit: str | None = None
    time_limit: str | float = "6h"
    _c = field_validator("schedule")(_check_cron)

    @field_validator("memory_limit")
    @classmethod
    def _memory(cls, v: str | None) -> str | None:
        if v is not None and not MEMORY_RE.match(v):
            raise ValueError(f"'{v}' is not an amount of memory: write e.g. '4GB', '500MB', '2GiB' or '50%'")
        if v is not None and v.strip().endswith("%") and not 0 < float(v.strip()[:-1]) <= 100:
            raise ValueError(f"'{v}': a share of the machine's memory is between 1% and 100%")
        return v

    @field_validator("time_limit", mode="before")
    @classmethod
    def _time(cls, v: Any) -> str | float:
        if not isinstance(v, (str, int, float)) or isinstance(v, bool):
            raise ValueError(f"{v!r} is not a duration: write e.g. '45m', '2h', '90s' or a number of seconds")
        if duration_seconds(v) > 30 * 86400:
            raise ValueError(f"'{v}' is more than the longest time limit, 30 days ('30d')")
        return v


MEMORY_RE = re.compile(r"^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB|%)\s*$", re.IGNORECASE)
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def duration_seconds(value: str | float) -> float:
    """Seconds of a duration written ``90``, ``"45s"``, ``"30m"``, ``"2h"``, ``"1d"`` (ValueError otherwise)."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        m = re.match(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$", str(value))
        if not m:
            raise ValueError(f"'{value}' is not a duration: write e.g. '45m', '2h', '90s' or a number of seconds")
        seconds = float(m.group(1)) * _UNITS[m.group(2) or "s"]
    if not seconds > 0:
        raise ValueError(f"'{value}' is not a duration above zero")
    return seconds


# --------------------------------------------------------------------------- segments

COLUMN_OPERATORS = ("=", "!=", "<", "<=", ">", ">=", "between", "in", "not_in", "contains", "starts_with",
                    "is_empty", "is_not_empty", "is_true", "is_false")
DATE_OPERATORS = ("in_last", "more_than_ago", "before", "after", "anniversary_within")
#: operators that take no value
UNARY_OPERATORS = ("is_empty", "is_not_empty", "is_true", "is_false")
SegmentOperator = Literal["=", "!=", "<", "<=", ">", ">=", "between", "in", "not_in", "contains", "starts_with",
                          "is_empty", "is_not_empty", "is_true", "is_false", "in_last", "more_than_ago", "before",
                          "after", "anniversary_within"]
CONDITION_KINDS = ("all", "any", "not", "column", "segment", "did", "not_done", "aggregate", "sql")


class ConditionConfig(_Model):
    """One condition of a segment: a group (``all``, ``any``, ``not``) or a leaf. Exactly one of
    ``all``, ``any``, ``not``, ``column``, ``segment``, ``did``, ``not_done``, ``aggregate`` and ``sql``
    is set; see docs/segments.md for each form."""

    label: str | None = None  # shown in counts and in the exit reasons of the membership log
    all: list["ConditionConfig"] | None = None
    any: list["ConditionConfig"] | None = None
    not_: "ConditionConfig | None" = Field(default=None, alias="not")
    # a column of the dataset compared with a value (dates: in_last, more_than_ago, before, after...)
    column: str | None = None
    op: SegmentOperator | None = None
    value: Any = None
    unit: Literal["days", "weeks", "months", "years"] = "days"
    # membership of another segment of the same dataset
    segment: str | None = None
    # behaviour on a related dataset: an event done N times, not done, an aggregate of orders
    did: str | None = None  # the event's name
    not_done: str | None = None  # the event's name
    aggregate: Literal["count", "sum", "avg", "min", "max"] | None = None
    from_: str | None = Field(default=None, alias="from")  # the related dataset (default: found by its fields)
    filter: str | None = None  # SQL condition over the related dataset's columns
    date_column: str | None = None  # the related rows' date (default: EventTime or OrderDate field)
    last: int | None = Field(default=None, ge=1)  # window: the last N units
    at_least: int | None = Field(default=None, ge=0)
    at_most: int | None = Field(default=None, ge=0)
    exactly: int | None = Field(default=None, ge=0)
    # an engineer's SQL condition over the dataset's columns (checked against the allow-list)
    sql: str | None = None

    def _kinds(self) -> list[str]:
        kinds = [k for k in CONDITION_KINDS if getattr(self, "not_" if k == "not" else k) is not None]
        if "aggregate" in kinds and "column" in kinds:
            kinds.remove("column")  # the related dataset's column that is aggregated
        return kinds

    @property
    def kind(self) -> str:
        kinds = self._kinds()
        return kinds[0] if kinds else "none"

    @model_validator(mode="after")
    def _shape(self) -> "ConditionConfig":
        kinds = self._kinds()
        if len(kinds) != 1:
            raise ValueError("a condition sets exactly one of all, any, not, column, segment, did, not_done, "
                             f"aggregate or sql (got {', '.join(kinds) or 'none'})")
        kind = kinds[0]
        if kind in ("all", "any") and not getattr(self, kind):
            raise ValueError(f"{kind} needs at least one condition")
        if kind == "column":
            if self.op is None:
                raise ValueError(f"the condition on column '{self.column}' needs an op, one of "
                                 f"{', '.join(COLUMN_OPERATORS + DATE_OPERATORS)}")
            _check_value(self.op, self.value)
        elif kind == "aggregate":
            if self.op is None or self.op not in ("=", "!=", "<", "<=", ">", ">=", "between"):
                raise ValueError("an aggregate condition compares with op =, !=, <, <=, >, >= or between")
            if self.aggregate != "count" and not self.column:
                raise ValueError(f"aggregate {self.aggregate} needs the related dataset's column, e.g. column: amount")
            _check_value(self.op, self.value)
        elif kind in ("did", "not_done"):
            times = [t for t in ("at_least", "at_most", "exactly") if getattr(self, t) is not None]
            if kind == "not_done" and times:
                raise ValueError("not_done takes last (the days without the event), not at_least/at_most/exactly")
            if len(times) > 1:
                raise ValueError(f"set one of at_least, at_most, exactly (got {', '.join(times)})")
            if kind == "not_done" and self.last is None:
                raise ValueError("not_done needs last: the number of days (or unit) without the event")
        if kind != "column" and kind != "aggregate" and (self.op is not None or self.value is not None):
            raise ValueError(f"op and value belong to column and aggregate conditions, not to {kind}")
        if kind not in ("did", "not_done", "aggregate"):
            extra = [f for f in ("from_", "filter", "date_column", "last", "at_least", "at_most", "exactly")
                     if getattr(self, f) is not None]
            if extra:
                raise ValueError(f"{', '.join(e.rstrip('_') for e in extra)} belong to behaviour conditions "
                                 "(did, not_done, aggregate)")
        return self


def _check_value(op: str, value: Any) -> None:
    if op in UNARY_OPERATORS:
        if value is not None:
            raise ValueError(f"op {op} takes no value")
        return
    if value is None:
        raise ValueError(f"op {op} needs a value")
    if op == "between" and not (isinstance(value, list) and len(value) == 2):
        raise ValueError("between takes a list of two values, e.g. value: [10, 20]")
    if op in ("in", "not_in") and not (isinstance(value, list) and value):
        raise ValueError(f"{op} takes a list of values, e.g. value: [FR, BE]")
    if op in ("in_last", "more_than_ago", "anniversary_within") and (
            not isinstance(value, int) or isinstance(value, bool) or value < 0):
        raise ValueError(f"{op} takes a whole number of units (unit: days, weeks, months or years), e.g. value: 30")
    if op in ("before", "after") and not isinstance(value, (date, str)):
        raise ValueError(f"{op} takes a date, e.g. value: 2024-01-31")
    if op in ("contains", "starts_with") and not isinstance(value, str):
        raise ValueError(f"{op} takes a text value")


class SegmentConfig(_Model):
    """A saved audience: the records of ``dataset`` for which the conditions hold (all of them, or
    any with ``match: any``). Membership is recomputed at each run, with a log of entries and exits."""

    name: str
    dataset: str = "contacts"
    description: str | None = None
    match: Literal["all", "any"] = "all"
    conditions: list[ConditionConfig] = Field(min_length=1)
    _v = field_validator("name")(_check_name)


# --------------------------------------------------------------------------- dashboards

DATE_BANDS = ("day", "week", "month", "quarter", "year", "weekday")
CHART_TYPES = ("bar", "stacked_bar", "line", "pie", "heatmap", "table", "number")
DASHBOARD_FILTERS = ("period", "store", "channel", "segment")


class DimensionConfig(_Model):
    """What a question groups by: a column (``orders.channel``; ``@Channel`` names the column by its
    semantic field; ``contacts.birth_date`` reads a related dataset through the link column), a band of
    it (``band: month`` of a date, ``band: age`` of a birth date, ``bins: [0, 50, 100]`` of a number),
    or membership of a segment (``segment: vip``). See docs/analytics.md."""

    column: str | None = None
    segment: str | None = None
    band: Literal["day", "week", "month", "quarter", "year", "weekday", "age"] | None = None
    bins: list[float] | None = Field(default=None, min_length=1)
    empty: str | None = None  # the name of empty values (default: "(empty)", or "unknown" for bands)
    labels: list[str] | None = None  # the bins' names: one more than the edges (under the first, ..., over the last)
    order: list[str] | None = Field(default=None, min_length=1)  # a text column's values in the order shown
    label: str | None = None

    @model_validator(mode="after")
    def _shape(self) -> "DimensionConfig":
        if (self.column is None) == (self.segment is None):
            raise ValueError("a dimension sets exactly one of column or segment, e.g. column: channel")
        if self.segment is not None and (self.band or self.bins):
            raise ValueError("band and bins belong to a column dimension, not to segment membership")
        if self.band and self.bins:
            raise ValueError("set band (of a date) or bins (of a number), not both")
        if self.bins and sorted(self.bins) != list(self.bins):
            raise ValueError("bins are the band edges in increasing order, e.g. bins: [0, 50, 100]")
        if self.labels is not None and (not self.bins or len(self.labels) != len(self.bins) + 1):
            raise ValueError("labels name the bins: one more label than edges (bins: [2] -> labels: [new, returning])")
        if self.order is not None and (self.band or self.bins or self.segment is not None):
            raise ValueError("order lists the values of a plain column in the order shown; bands and bins come in "
                             "their own order")
        return self


class MeasureConfig(_Model):
    """What a question counts: ``count`` of rows, ``customers`` (distinct customers), ``sum``, ``avg``,
    ``median``, ``min``, ``max`` of a column or of a checked SQL expression (``sql``), or ``share``:
    the part of the rows (0 to 1) for which the condition ``where`` holds."""

    fn: Literal["count", "customers", "sum", "avg", "median", "min", "max", "share"] = "count"
    column: str | None = None
    sql: str | None = None
    where: ConditionConfig | None = None
    label: str | None = None
    optional: bool = False  # left out (not an error) when the workspace lacks its column

    @model_validator(mode="after")
    def _shape(self) -> "MeasureConfig":
        if self.column is not None and self.sql is not None:
            raise ValueError("a measure reads a column or a sql expression, not both")
        if self.fn in ("sum", "avg", "median", "min", "max") and self.column is None and self.sql is None:
            raise ValueError(f"{self.fn} needs a column (or sql), e.g. column: amount")
        if self.fn == "share" and self.where is None:
            raise ValueError("share needs a condition: where: {column: email_optin, op: is_true}")
        if self.fn != "share" and self.where is not None:
            raise ValueError("where belongs to the share measure; filter the question with filters:")
        return self


ANALYSIS_CHARTS = {"rfm_migration": ("heatmap", "table"), "cohort_retention": ("heatmap", "table"),
                   "categories_together": ("table", "heatmap")}


class AnalysisConfig(_Model):
    """A ready-made analysis that a grouping cannot say, computed in the engine in place of the
    question's dimensions and measures (see docs/analytics.md):

    - ``rfm_migration``: customers by RFM segment at ``date_from`` and at ``date_to`` (each computed by
      the score library from the orders up to that date);
    - ``cohort_retention``: monthly cohorts of first orders and the share of each that ordered again
      1, 2, ... ``months`` months later (a cohort triangle);
    - ``categories_together``: pairs of product categories bought in the same order (``basket:
      order``) or by the same customer (``basket: customer``), with their count and lift."""

    kind: Literal["rfm_migration", "cohort_retention", "categories_together"]
    date_from: date | None = None  # rfm_migration (default: the period filter's start, else a year before date_to)
    date_to: date | None = None  # rfm_migration (default: the period filter's end, else the workspace's as_of)
    months: int = Field(default=12, ge=1, le=120)  # cohort_retention: the months after the first shown
    basket: Literal["order", "customer"] = "order"  # categories_together

    @model_validator(mode="after")
    def _shape(self) -> "AnalysisConfig":
        if self.date_from and self.date_to and self.date_from >= self.date_to:
            raise ValueError(f"date_from ({self.date_from}) comes before date_to ({self.date_to})")
        return self


class QuestionConfig(_Model):
    """One chart of a dashboard: a dataset, up to two dimensions, measures, filters (a segment's
    condition tree) and a chart type; or a ready-made ``analysis`` with its chart."""

    name: str
    title: str | None = None
    description: str | None = None
    dataset: str
    dimensions: list[DimensionConfig] = Field(default_factory=list, max_length=2)
    measures: list[MeasureConfig] = Field(default_factory=lambda: [MeasureConfig()], min_length=1)
    filters: list[ConditionConfig] = Field(default_factory=list)
    chart: Literal["bar", "stacked_bar", "line", "pie", "heatmap", "table", "number"] = "bar"
    # the date the dashboard's period filter applies to (default: the dataset's OrderDate/EventTime column)
    date_column: str | None = None
    sort: Literal["dimension", "measure"] | None = None  # default: bands and dates in order, others by measure
    limit: int | None = Field(default=None, ge=1, le=10_000)
    analysis: AnalysisConfig | None = None
    _v = field_validator("name")(_check_name)

    @model_validator(mode="after")
    def _shape(self) -> "QuestionConfig":
        if self.analysis is not None:
            given = [k for k in ("dimensions", "filters") if getattr(self, k)]
            if self.measures != [MeasureConfig()]:
                given.append("measures")
            if given:
                raise ValueError(f"an analysis ({self.analysis.kind}) makes its own figures: leave out "
                                 f"{', '.join(given)}")
            charts = ANALYSIS_CHARTS[self.analysis.kind]
            if self.chart not in charts:
                raise ValueError(f"{self.analysis.kind} is drawn as {' or '.join(charts)}, not {self.chart}")
            return self
        n = len(self.dimensions)
        if self.chart in ("stacked_bar", "heatmap") and n != 2:
            raise ValueError(f"a {self.chart.replace('_', ' ')} crosses two dimensions (it has {n})")
        if self.chart in ("bar", "line", "pie") and n == 0:
            raise ValueError(f"a {self.chart} chart needs a dimension (or use chart: number)")
        if self.chart == "pie" and n != 1:
            raise ValueError("a pie chart has one dimension")
        if self.chart == "number" and n:
            raise ValueError("chart: number shows measures without dimensions")
        if self.chart in ("stacked_bar", "heatmap", "pie") and len(self.measures) != 1:
            raise ValueError(f"a {self.chart.replace('_', ' ')} shows one measure")
        return self


class DashboardConfig(_Model):
    """A named, shared list of questions, with the filters a viewer may set on it."""

    name: str
    title: str | None = None
    description: str | None = None
    filters: list[Literal["period", "store", "channel", "segment"]] = Field(
        default_factory=lambda: list(DASHBOARD_FILTERS))
    questions: list[QuestionConfig] = Field(min_length=1)
    _v = field_validator("name")(_check_name)


class WorkspaceConfig(_Model):
    connections: list[ConnectionConfig] = Field(default_factory=list)
    sources: list[SourceConfig] = Field(default_factory=list)
    datasets: list[DatasetConfig] = Field(default_factory=list)
    syncs: list[SyncConfig] = Field(default_factory=list)
    segments: list[SegmentConfig] = Field(default_factory=list)
    dashboards: list[DashboardConfig] = Field(default_factory=list)
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
