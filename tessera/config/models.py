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


class LocalConnectionConfig(_Model):
    """A folder on this machine. Relative paths are resolved against the configuration file's folder."""

    name: str
    type: Literal["local"]
    path: str
    _v = field_validator("name")(_check_name)


ConnectionConfig = Annotated[Union[LocalConnectionConfig], Field(discriminator="type")]


# --------------------------------------------------------------------------- normalization

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
    pattern: str
    format: Literal["auto", "csv", "json", "ndjson", "parquet", "xlsx"] = "auto"
    csv: CsvOptions = Field(default_factory=CsvOptions)
    record_keys: list[str] = Field(min_length=1)
    columns: list[str] | None = None  # selected columns; None = all
    types: dict[str, ColumnType] = Field(default_factory=dict)
    normalize: dict[str, list[NormalizationRule]] = Field(default_factory=dict)
    relations: list[RelationConfig] = Field(default_factory=list)
    max_reject_rate: float = Field(default=1.0, ge=0.0, le=1.0)
    import_strategy: Literal["new_files", "full"] = "new_files"
    description: str | None = None
    _v = field_validator("name")(_check_name)


# --------------------------------------------------------------------------- datasets

MergeRule = Literal[
    "most_recent", "non_null_most_recent", "first", "most_frequent", "max", "min", "source_priority",
    "concat_unique",
]

SEMANTIC_FIELDS = [
    "CustomerId", "Email", "Phone", "FirstName", "LastName", "FullName", "BirthDate", "Gender", "Address",
    "PostalCode", "City", "Country", "LoyaltyCard", "EmailOptIn", "SmsOptIn", "CreatedAt", "UpdatedAt",
    "OrderId", "OrderDate", "OrderAmount", "DiscountAmount", "Store", "Channel", "ProductId", "ProductName",
    "ProductCategory", "Quantity", "UnitPrice", "StoreId", "StoreName", "AnonymousId", "Other",
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
    :mod:`tessera.enrich.sql`. It may use another computed column."""

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


class WorkspaceConfig(_Model):
    connections: list[ConnectionConfig] = Field(default_factory=list)
    sources: list[SourceConfig] = Field(default_factory=list)
    datasets: list[DatasetConfig] = Field(default_factory=list)
