"""The connection form: its fields drawn from the configuration's models (one form per connection
type, the settings docs/configuration.md documents), the posted fields turned into a connection
checked by the same models as ``tessera apply``, and every problem put next to its field.

Secrets (passwords, keys) are never put back in the form: an empty secret field keeps the stored
value when a connection is changed (:func:`tessera.api.routes.connections.save_connection`).
"""

from __future__ import annotations

import types
import typing
from typing import Any, Literal, get_args, get_origin

from pydantic import TypeAdapter, ValidationError

from tessera.config import models as M

MODELS: dict[str, type[M.BaseModel]] = {
    "local": M.LocalConnectionConfig, "postgresql": M.PostgresConnectionConfig, "mysql": M.MySQLConnectionConfig,
    "mariadb": M.MySQLConnectionConfig, "sqlite": M.SQLiteConnectionConfig, "ftp": M.FTPConnectionConfig,
    "ftps": M.FTPConnectionConfig, "sftp": M.SFTPConnectionConfig, "bigquery": M.BigQueryConnectionConfig,
    "webhook": M.WebhookConnectionConfig, "http": M.HttpConnectionConfig,
}
TYPES = tuple(MODELS)
COMMON = ("description", "requires_consent")  # shown after the settings of the type
CHANNELS = get_args(M.Channel)
FTPS_ONLY = ("verify_certificate", "ca_file")  # FTP over TLS only
_ADAPTER = TypeAdapter(M.ConnectionConfig)
REQUIRED = "required"  # the problem of a field left empty (the page says it in its language)


def _plain(annotation: Any) -> tuple[Any, bool]:
    """The annotation without ``None``, and whether None was allowed."""
    if get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        return (args[0] if len(args) == 1 else typing.Union[tuple(args)]), len(args) < len(get_args(annotation))
    return annotation, False


def fields_of(kind: str) -> list[dict]:
    """The form's fields of a connection type: ``{"name", "kind", "required", "default", "choices"}``,
    ``kind`` one of text, number, checkbox, select, secret, lines (``Name: value`` per line), channels."""
    model = MODELS[kind]
    out, common = [], []
    for attr, info in model.model_fields.items():
        name = info.alias or attr
        if name in ("name", "type") or (kind == "ftp" and name in FTPS_ONLY):
            continue
        annotation, optional = _plain(info.annotation)
        default = None if info.default_factory is not None or info.is_required() else info.default
        field = {"name": name, "required": info.is_required(), "default": default, "choices": ()}
        if name in M.SECRET_FIELDS:
            field["kind"] = "secret"
        elif annotation is bool:
            field["kind"] = "checkbox"
        elif annotation in (int, float):
            field["kind"] = "number"
        elif get_origin(annotation) is Literal:
            field["kind"], field["choices"] = "select", (("",) if optional else ()) + get_args(annotation)
        elif get_origin(annotation) is dict:
            field["kind"] = "lines"
        elif get_origin(annotation) is list:
            field["kind"], field["choices"] = "channels", CHANNELS
        else:
            field["kind"] = "text"
        (common if name in COMMON else out).append(field)
    return out + common


def values_of(kind: str, spec: dict) -> dict[str, Any]:
    """What the form shows of a stored connection (its secrets left out) or of a new one (defaults)."""
    values = {}
    for f in fields_of(kind):
        if f["kind"] == "secret":
            continue
        value = spec.get(f["name"], f["default"])
        if f["kind"] == "lines":
            value = "\n".join(f"{k}: {v}" for k, v in (value or {}).items())
        elif f["kind"] == "channels":
            value = list(value or [])
        values[f["name"]] = value
    return values


def parse(kind: str, form, name: str | None = None) -> tuple[dict, dict[str, str], dict[str, Any]]:
    """The posted form of a connection of type ``kind`` (named ``name``, or by its field) ->
    ``(spec, errors, shown)``: the connection as the YAML writes it (empty when it has problems),
    the problems by field (``""``: the whole connection), and the values to show again (never a
    secret)."""
    spec: dict[str, Any] = {"name": name if name is not None else str(form.get("name") or "").strip(), "type": kind}
    errors: dict[str, str] = {}
    shown: dict[str, Any] = {"name": spec["name"]}
    for f in fields_of(kind):
        name = f["name"]
        if f["kind"] == "checkbox":
            spec[name] = shown[name] = bool(form.get(name))
            continue
        if f["kind"] == "channels":
            spec[name] = shown[name] = [c for c in form.getlist(name) if c]
            continue
        raw = str(form.get(name) or "")
        if f["kind"] != "secret":
            shown[name] = raw
        if f["kind"] == "lines":
            pairs, bad = {}, []
            for line in raw.splitlines():
                if not line.strip():
                    continue
                key, sep, value = line.partition(":")
                if not sep or not key.strip():
                    bad.append(line.strip())
                else:
                    pairs[key.strip()] = value.strip()
            if bad:
                errors[name] = f"write one 'Name: value' per line (not: {bad[0]})"
            elif pairs:
                spec[name] = pairs
        elif f["kind"] == "secret":
            if raw:
                spec[name] = raw  # plain text: tessera apply stores it encrypted
        elif raw.strip():
            spec[name] = raw.strip()
    try:
        model = _ADAPTER.validate_python(spec)
    except ValidationError as exc:
        for e in exc.errors():
            loc = [str(p) for p in e["loc"]][1:]  # the first place is the type's tag
            field = loc[0] if loc else ""
            message = REQUIRED if e["type"] == "missing" else e["msg"].removeprefix("Value error, ")
            if field not in shown and field not in {f["name"] for f in fields_of(kind)}:
                message, field = f"{'.'.join(loc) or 'connection'}: {message}", ""
            errors.setdefault(field, message)
    if errors:
        return {}, errors, shown
    out = model.model_dump(mode="json", exclude_defaults=True, by_alias=True)
    out["type"] = kind
    return out, errors, shown


def problem_field(problem: str, kind: str) -> str:
    """The field a problem of the whole configuration names (``... 'port': ...``), else ``""``."""
    for f in fields_of(kind):
        if f"'{f['name']}'" in problem or f".{f['name']}:" in problem or f" {f['name']}:" in problem:
            return f["name"]
    return ""
