"""The segment builder's form: a segment definition as flat form fields, and back.

Each condition has a *path*: ``c0``, ``c1``... at the top level, ``c0.0``, ``c0.1``... inside a
group. Its fields are ``<path>.<field>``: ``kind`` (column, segment, did, not_done, aggregate,
any, all, sql), ``not`` (the condition is negated), ``label``, and the fields of its kind (see
:data:`FIELDS`). The draft may hold conditions not filled in yet; :func:`countable` tells them
apart from the ones a count can use.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError

from tessera.config.models import UNARY_OPERATORS, ConditionConfig

KINDS = ("column", "segment", "did", "not_done", "aggregate", "any", "all", "sql")
GROUPS = ("any", "all")
UNITS = ("days", "weeks", "months", "years")
COLUMN_OPS = ("=", "!=", "<", "<=", ">", ">=", "between", "in", "not_in", "contains", "starts_with",
              "is_empty", "is_not_empty", "is_true", "is_false", "in_last", "more_than_ago", "before", "after",
              "anniversary_within")
COUNT_OPS = ("=", "!=", "<", "<=", ">", ">=", "between")
AGGREGATES = ("count", "sum", "avg", "min", "max")
TIMES = ("at_least", "at_most", "exactly")
FIELDS = ("kind", "not", "label", "column", "op", "value", "value2", "unit", "segment", "event", "times_op", "times",
          "last", "filter", "aggregate", "from", "sql")
_PATH = re.compile(r"^c\d+(\.\d+)*$")
MAX_CONDITIONS = 200


def empty_leaf() -> dict:
    return {"kind": "column"}


def _number(text: str) -> Any:
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text.replace(",", ".")) if re.fullmatch(r"-?\d+([.,]\d+)?", text) else text
    except ValueError:
        return text


def _value(text: str | None, ctype: str | None) -> Any:
    """A form value as the definition holds it: a number for numeric columns, true/false for booleans."""
    if text is None or text.strip() == "":
        return None
    text = text.strip()
    if ctype and any(k in ctype for k in ("int", "float", "double", "decimal", "number")):
        return _number(text)
    if ctype and "bool" in ctype:
        return {"true": True, "yes": True, "oui": True, "1": True, "false": False, "no": False, "non": False,
                "0": False}.get(text.lower(), text)
    return text


# --------------------------------------------------------------------------- form -> draft
def parse(form: dict[str, str], types: dict[str, str] | None = None) -> dict:
    """The draft of a posted builder form: ``{"name", "description", "dataset", "match",
    "conditions": [node]}``, a node being ``{"kind", "not", "label", ...fields}`` and, for a
    group, ``"children": [node]``."""
    types = types or {}
    paths = sorted({k.rsplit(".", 1)[0] for k in form if k.endswith(".kind") and _PATH.match(k.rsplit(".", 1)[0])},
                   key=lambda p: [int(x) for x in p[1:].split(".")])[:MAX_CONDITIONS]
    nodes: dict[str, dict] = {}
    for p in paths:
        node = {f: (form.get(f"{p}.{f}") or "").strip() for f in FIELDS}
        node["not"] = node["not"] in ("1", "on", "true")
        if node["kind"] not in KINDS:
            node["kind"] = "column"
        if node["kind"] in GROUPS:
            node["children"] = []
        nodes[p] = node
    top: list[dict] = []
    for p in paths:
        parent = p.rsplit(".", 1)[0] if "." in p else None
        if parent is None:
            top.append(nodes[p])
        elif parent in nodes and "children" in nodes[parent]:
            nodes[parent]["children"].append(nodes[p])
    return {"name": (form.get("name") or "").strip(), "description": (form.get("description") or "").strip(),
            "dataset": (form.get("dataset") or "").strip(), "match": "any" if form.get("match") == "any" else "all",
            "original": (form.get("original") or "").strip(), "conditions": top, "types": types}


def apply_action(draft: dict, action: str | None) -> dict:
    """Add or remove a condition: ``add:PATH`` / ``addgroup:PATH`` (PATH empty for the top level,
    else a group's path) and ``remove:PATH``."""
    if not action or ":" not in action:
        return draft
    verb, _, path = action.partition(":")
    if path and not _PATH.match(path):
        return draft
    if verb in ("add", "addgroup"):
        target = draft["conditions"] if not path else _node(draft, path).get("children")
        if target is not None and _size(draft) < MAX_CONDITIONS:
            target.append(empty_leaf() if verb == "add" else {"kind": "any", "children": [empty_leaf()]})
    elif verb == "remove" and path:
        parts = [int(x) for x in path[1:].split(".")]
        siblings = draft["conditions"]
        for i in parts[:-1]:
            siblings = siblings[i].get("children", []) if i < len(siblings) else []
        if parts[-1] < len(siblings):
            siblings.pop(parts[-1])
    return draft


def _size(draft: dict) -> int:
    def count(nodes):
        return sum(1 + count(n.get("children", [])) for n in nodes)
    return count(draft["conditions"])


def _node(draft: dict, path: str) -> dict:
    parts = [int(x) for x in path[1:].split(".")]
    nodes, node = draft["conditions"], {}
    for i in parts:
        if i >= len(nodes):
            return {}
        node = nodes[i]
        nodes = node.get("children", [])
    return node


# --------------------------------------------------------------------------- draft <-> definition
def condition(node: dict, types: dict[str, str]) -> dict | None:
    """The YAML-shaped condition of a node, or None while it is not filled in enough to count."""
    kind = node.get("kind")
    out: dict[str, Any]
    if kind in GROUPS:
        children = [c for c in (condition(n, types) for n in node.get("children", [])) if c is not None]
        if not children:
            return None
        out = {kind: children}
    elif kind == "column":
        col, op = node.get("column"), node.get("op")
        if not col or not op:
            return None
        out = {"column": col, "op": op}
        ctype = types.get(col)
        if op in UNARY_OPERATORS:
            pass
        elif op == "between":
            low, high = _value(node.get("value"), ctype), _value(node.get("value2"), ctype)
            if low is None or high is None:
                return None
            out["value"] = [low, high]
        elif op in ("in", "not_in"):
            items = [_value(x, ctype) for x in (node.get("value") or "").split(",") if x.strip()]
            if not items:
                return None
            out["value"] = items
        elif op in ("in_last", "more_than_ago", "anniversary_within"):
            n = _number(node.get("value") or "")
            if not isinstance(n, int):
                return None
            out["value"] = n
            if node.get("unit") in UNITS and node.get("unit") != "days":
                out["unit"] = node["unit"]
        else:
            v = node.get("value") if op in ("before", "after", "contains", "starts_with") else _value(node.get("value"), ctype)
            if v is None or v == "":
                return None
            out["value"] = v
    elif kind == "segment":
        if not node.get("segment"):
            return None
        out = {"segment": node["segment"]}
    elif kind in ("did", "not_done"):
        if not node.get("event"):
            return None
        out = {kind: node["event"]}
        if kind == "did" and node.get("times_op") in TIMES and isinstance(_number(node.get("times") or ""), int):
            out[node["times_op"]] = _number(node["times"])
        _window(node, out)
    elif kind == "aggregate":
        agg, op = node.get("aggregate"), node.get("op")
        if agg not in AGGREGATES or op not in COUNT_OPS or (agg != "count" and not node.get("column")):
            return None
        out = {"aggregate": agg, "op": op}
        if node.get("column"):
            out["column"] = node["column"]
        if node.get("from"):
            out["from"] = node["from"]
        if op == "between":
            low, high = _number(node.get("value") or ""), _number(node.get("value2") or "")
            if isinstance(low, str) or isinstance(high, str):
                return None
            out["value"] = [low, high]
        else:
            v = _number(node.get("value") or "")
            if isinstance(v, str):
                return None
            out["value"] = v
        _window(node, out)
    elif kind == "sql":
        if not node.get("sql"):
            return None
        out = {"sql": node["sql"]}
    else:
        return None
    if node.get("not"):
        out = {"not": out}
    if node.get("label"):
        out["label"] = node["label"]
    return out


def _window(node: dict, out: dict) -> None:
    last = _number(node.get("last") or "")
    if isinstance(last, int) and last >= 1:
        out["last"] = last
        if node.get("unit") in UNITS and node.get("unit") != "days":
            out["unit"] = node["unit"]
    if node.get("filter"):
        out["filter"] = node["filter"]


def countable(draft: dict) -> tuple[list[int], list[dict], dict[int, str]]:
    """The top-level conditions a count can use: (their positions, their YAML conditions, and the
    problem of each position left out)."""
    keep, conds, problems = [], [], {}
    for i, node in enumerate(draft["conditions"]):
        cond = condition(node, draft.get("types", {}))
        if cond is None:
            problems[i] = "incomplete"
            continue
        try:
            ConditionConfig.model_validate(cond)
        except ValidationError as exc:
            problems[i] = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
            continue
        keep.append(i)
        conds.append(cond)
    return keep, conds, problems


def definition(draft: dict) -> dict:
    """The YAML definition of a draft (its complete top-level conditions)."""
    _, conds, _ = countable(draft)
    out: dict[str, Any] = {"name": draft["name"], "dataset": draft["dataset"], "conditions": conds}
    if draft.get("description"):
        out["description"] = draft["description"]
    if draft.get("match") == "any":
        out["match"] = "any"
    return out


def from_definition(defn: dict, types: dict[str, str] | None = None) -> dict:
    """The draft of a saved definition (as in the YAML)."""
    return {"name": defn.get("name", ""), "description": defn.get("description") or "",
            "dataset": defn.get("dataset", "contacts"), "match": defn.get("match", "all"),
            "original": defn.get("name", ""), "conditions": [_from_condition(c) for c in defn.get("conditions", [])],
            "types": types or {}}


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _from_condition(c: dict) -> dict:
    label = c.get("label") or ""
    negate = False
    if "not" in c and isinstance(c["not"], dict):
        negate, c = True, c["not"]
        label = label or c.get("label") or ""
    node: dict[str, Any] = {"not": negate, "label": label}
    for g in GROUPS:
        if g in c:
            return {**node, "kind": g, "children": [_from_condition(x) for x in c[g]]}
    if "segment" in c:
        return {**node, "kind": "segment", "segment": c["segment"]}
    if "did" in c or "not_done" in c:
        kind = "did" if "did" in c else "not_done"
        times_op = next((t for t in TIMES if c.get(t) is not None), "")
        return {**node, "kind": kind, "event": c[kind], "times_op": times_op,
                "times": _text(c.get(times_op)) if times_op else "", "last": _text(c.get("last")),
                "unit": c.get("unit", "days"), "filter": c.get("filter") or ""}
    if "aggregate" in c:
        value = c.get("value")
        return {**node, "kind": "aggregate", "aggregate": c["aggregate"], "column": c.get("column") or "",
                "from": c.get("from") or "", "op": c.get("op", ""),
                "value": _text(value[0] if isinstance(value, list) else value),
                "value2": _text(value[1]) if isinstance(value, list) and len(value) > 1 else "",
                "last": _text(c.get("last")), "unit": c.get("unit", "days"), "filter": c.get("filter") or ""}
    if "sql" in c:
        return {**node, "kind": "sql", "sql": c["sql"]}
    value = c.get("value")
    op = c.get("op", "")
    if isinstance(value, list) and op in ("in", "not_in"):
        text, text2 = ", ".join(_text(v) for v in value), ""
    elif isinstance(value, list):
        text, text2 = _text(value[0]), _text(value[1]) if len(value) > 1 else ""
    else:
        text, text2 = _text(value), ""
    return {**node, "kind": "column", "column": c.get("column", ""), "op": op, "value": text, "value2": text2,
            "unit": c.get("unit", "days")}
