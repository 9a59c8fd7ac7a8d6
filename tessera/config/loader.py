"""Reading, checking and writing the workspace configuration (YAML <-> models).

Problems are collected, never raised one by one: the user gets every problem of a file at
once, each with its place (``workspace.yaml:14 sources[1].record_keys``) and a fix.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from tessera.config.events import EVENT_COLUMNS, column_problem, is_json_path
from tessera.config.models import DATABASE_CONNECTIONS, FILE_CONNECTIONS, SEMANTIC_FIELDS, WorkspaceConfig
from tessera.config.paths import file_name_problem, relative_path_problem
from tessera.config.scores import LIBRARY, PREDICTIVE_COLUMNS, scores_problems
from tessera.errors import ConfigError
from tessera.sqlcheck import (
    check_condition,
    check_expression,
    filter_columns,
    filter_sql,
    order_computed,
    referenced_columns,
)


# A workspace file is kilobytes (a thousand sources: under 1 MB); past this it is refused unread.
MAX_CONFIG_BYTES = int(os.environ.get("TESSERA_CONFIG_MAX_BYTES") or 2 * 1024 * 1024)
MAX_DEPTH = 64  # mappings and lists nested deeper than this are refused (a real file needs about 8)
MAX_ALIAS_NODES = 10_000  # values that aliases (*name) may add by repeating anchored ones


_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser when installed: 5-10x faster


class _LineLoader(_BaseLoader):
    """A YAML loader that remembers the line of every mapping key and sequence item and reports
    duplicate keys. :func:`read_yaml_text` refuses deep nesting and alias bombs before building."""

    def __init__(self, stream):
        super().__init__(stream)
        self.duplicates: list[str] = []
        self.checked: set[int] = set()


class _Refused(Exception):
    """A file refused before it is built (too deep, an alias bomb); the message says where."""


def _check_depth(text: str) -> None:
    """Refuse nesting deeper than ``MAX_DEPTH`` from the parser's flat event stream, before any
    recursive step builds the document (a million '[' would otherwise crash the process)."""
    loader = _BaseLoader(text)
    depth = 0
    try:
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    mark = event.start_mark
                    raise _Refused(f"line {mark.line + 1}, column {mark.column + 1}: values are nested more than "
                                   f"{MAX_DEPTH} levels deep; a workspace file needs far fewer: flatten it")
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
    finally:
        loader.dispose()


def _expanded_size(root: yaml.Node) -> int:
    """How many values the document holds once every alias is expanded, counted without expanding
    (each node's size once, memoized); stops counting past the limit. Recursive aliases are refused."""
    sizes: dict[int, int] = {}
    limit = 10 * MAX_ALIAS_NODES + 10_000_000
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    busy: set[int] = set()
    while stack:
        node, done = stack.pop()
        key = id(node)
        if key in sizes:
            continue
        children = _children(node)
        if not done:
            if key in busy:
                mark = node.start_mark
                raise _Refused(f"line {mark.line + 1}: an alias refers to a value that contains it (a loop); "
                               "remove the alias")
            busy.add(key)
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in sizes)
        else:
            busy.discard(key)
            sizes[key] = min(limit, 1 + sum(sizes[id(c)] for c in children))
    return sizes[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _distinct_nodes(root: yaml.Node) -> int:
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.extend(_children(node))
    return len(seen)


def _check_duplicates(loader: _LineLoader, node: yaml.MappingNode) -> None:
    """A key written twice in one mapping is an error (YAML would silently keep the last one);
    keys brought by a merge (``<<: *defaults``) may be overridden."""
    if id(node) in loader.checked:
        return
    loader.checked.add(id(node))
    first: dict = {}
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
            continue
        line = key_node.start_mark.line + 1
        if key_node.value in first:
            loader.duplicates.append(f"line {line}: the key '{key_node.value}' appears twice in the same mapping "
                                     f"(first on line {first[key_node.value]}); keep one")
        else:
            first[key_node.value] = line


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    _check_duplicates(loader, node)
    mapping = yaml.constructor.SafeConstructor.construct_mapping(loader, node, deep=True)
    lines = {}
    for key_node, _ in node.value:
        lines[key_node.value] = key_node.start_mark.line + 1
    mapping = _LinedDict(mapping)
    mapping.lines = lines
    mapping.line = node.start_mark.line + 1
    return mapping


def _construct_sequence(loader: _LineLoader, node: yaml.SequenceNode, deep: bool = False) -> list:
    seq = _LinedList(yaml.constructor.SafeConstructor.construct_sequence(loader, node, deep=True))
    seq.lines = [item.start_mark.line + 1 for item in node.value]
    return seq


class _LinedDict(dict):
    lines: dict
    line: int


class _LinedList(list):
    lines: list


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def _line_of(data: Any, loc: tuple) -> int | None:
    line = getattr(data, "line", None)
    node = data
    for part in loc:
        if isinstance(node, dict) and part in node:
            line = getattr(node, "lines", {}).get(part, line)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            lines = getattr(node, "lines", None)
            line = lines[part] if lines else line
            node = node[part]
        else:
            break
    return line


def line_of(data: Any, loc: tuple) -> int | None:
    """The line of the value at ``loc`` (keys and list positions) in what :func:`read_yaml_text`
    read, or of its nearest parent; None when the data was not read from YAML text."""
    return _line_of(data, loc)


_UNION_TAGS = {"local", "postgresql", "mysql", "mariadb", "sqlite", "ftp", "ftps", "sftp", "bigquery", "webhook",
               "http", "str", "SecretRef"}


def _loc_text(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in _UNION_TAGS or str(part).startswith("function-after["):
            continue
        else:
            out += ("." if out else "") + str(part)
    return out


def _plain(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _plain(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_plain(v) for v in data]
    return data


def parse_config(data: Any, origin: str = "configuration", lined: Any = None) -> WorkspaceConfig:
    """Validate a configuration mapping; raise ConfigError listing every problem with its place."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("the top level must be a mapping with connections, sources and datasets", origin=origin)
    try:
        config = WorkspaceConfig.model_validate(_plain(data))
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            line = _line_of(lined if lined is not None else data, loc)
            where = f"line {line}, " if line else ""
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = f"unknown setting '{loc[-1]}' (check its spelling)"
            problems.append(f"{where}{_loc_text(loc)}: {msg}")
        raise ConfigError(problems, origin=origin) from None
    problems = check_references(config)
    if problems:
        raise ConfigError(problems, origin=origin)
    return config


def check_references(config: WorkspaceConfig) -> list[str]:
    """Cross-object checks that a single model cannot make."""
    problems: list[str] = []
    conns = {c.name for c in config.connections}
    sources = {s.name: s for s in config.sources}
    datasets = {d.name: d for d in config.datasets}
    for kind, names in (("connection", [c.name for c in config.connections]),
                        ("source", [s.name for s in config.sources]),
                        ("dataset", [d.name for d in config.datasets])):
        dups = sorted({n for n in names if names.count(n) > 1})
        for n in dups:
            problems.append(f"{kind} '{n}' is declared more than once: give each {kind} its own name")
    conn_types = {c.name: c.type for c in config.connections}
    for i, s in enumerate(config.sources):
        where = f"sources[{i}] ({s.name})"
        if s.connection not in conns:
            problems.append(f"{where}.connection: unknown connection '{s.connection}' (known: {', '.join(sorted(conns)) or 'none'})")
        elif s.items_of is not None:
            problems += _check_items_source(where, s, sources)
        else:
            problems += _check_source_kind(where, s, conn_types[s.connection])
        if s.columns:
            for k in s.record_keys:
                if k not in s.columns:
                    problems.append(f"{where}.record_keys: '{k}' is not among the selected columns; add it to columns")
        for j, rel in enumerate(s.relations):
            obj, col = rel.to.split(".")
            if obj in datasets:
                d = datasets[obj]
                mapped = {c for m in d.mappings for c in m.columns} | {c.name for c in d.columns}
                if col not in mapped:
                    problems.append(f"{where}.relations[{j}].to: dataset '{obj}' has no column '{col}'")
            elif obj in sources:
                if not any(m.source == obj for d in config.datasets for m in d.mappings):
                    problems.append(f"{where}.relations[{j}].to: source '{obj}' feeds no dataset; map it into one")
            else:
                problems.append(f"{where}.relations[{j}].to: '{obj}' is neither a source nor a dataset")
    fed = {}
    for i, d in enumerate(config.datasets):
        where = f"datasets[{i}] ({d.name})"
        cols = [c.name for c in d.columns] + [c for m in d.mappings for c in m.columns]
        for j, m in enumerate(d.mappings):
            if m.source not in sources:
                problems.append(f"{where}.mappings[{j}].source: unknown source '{m.source}'")
            elif m.source in fed and fed[m.source] != d.name:
                problems.append(f"{where}.mappings[{j}].source: source '{m.source}' already feeds dataset "
                                f"'{fed[m.source]}'; a source feeds one dataset")
            else:
                fed[m.source] = d.name
            if not m.columns:
                problems.append(f"{where}.mappings[{j}].columns: map at least one column")
            if m.source in sources and conn_types.get(sources[m.source].connection) == "http":

                for col, src_col in m.columns.items():
                    problem = column_problem(src_col)
                    if problem:
                        problems.append(f"{where}.mappings[{j}].columns.{col}: {problem}")
        computed = {c.name for c in d.computed}
        for j, k in enumerate(d.identity_keys):
            if k.column not in cols and k.column not in computed:
                problems.append(f"{where}.identity_keys[{j}]: '{k.column}' is not a column of the dataset")
            for col in k.requires_agreement or []:
                if col not in cols:
                    problems.append(f"{where}.identity_keys[{j}].requires_agreement: '{col}' is not a column "
                                    "of the dataset")
        if d.deduplicate and not d.identity_keys:
            problems.append(f"{where}: deduplicate is on but no identity_keys are set (e.g. email, phone)")
        if d.matching is not None:
            if not d.deduplicate:
                problems.append(f"{where}.matching: matching needs deduplicate: true")
            for j, c in enumerate(d.matching.comparisons):
                if c.column not in cols:
                    problems.append(f"{where}.matching.comparisons[{j}].column: '{c.column}' is not a column "
                                    "of the dataset")
            for j, rule in enumerate(d.matching.blocking):
                for col in rule:
                    if col not in cols:
                        problems.append(f"{where}.matching.blocking[{j}]: '{col}' is not a column of the dataset")
        if d.date_column and d.date_column not in cols and d.date_column not in computed:
            problems.append(f"{where}.date_column: '{d.date_column}' is not a column of the dataset")
        for s in d.source_priority:
            if s not in {m.source for m in d.mappings}:
                problems.append(f"{where}.source_priority: '{s}' does not feed this dataset")
        for j, c in enumerate(d.columns):
            if c.semantic and c.semantic not in SEMANTIC_FIELDS:
                problems.append(f"{where}.columns[{j}].semantic: unknown semantic field '{c.semantic}' "
                                f"(one of {', '.join(SEMANTIC_FIELDS)})")
        declared: dict[str, list[str]] = {}
        for c in [*d.columns, *d.computed]:
            # identifiers may be many (one customer id per source, several e-mails); the fields the
            # scores and profiles read are taken from one column
            if c.semantic and c.semantic not in _MANY_ALLOWED:
                declared.setdefault(c.semantic, []).append(c.name)
        for field, names in declared.items():
            if len(names) > 1:
                problems.append(f"{where}: columns {' and '.join(repr(n) for n in names)} both have the semantic field "
                                f"{field}; scores would use only one: keep it on one column (set semantic: Other "
                                "on the others)")
        if d.scores:
            problems += scores_problems(f"{where}.scores", d.scores)
        if d.computed:
            problems += _check_computed(config, i, d, cols)
        problems += _check_aggregate_filters(config, i, d)
    problems += _check_syncs(config)
    problems += segment_problems(config)
    return problems


_MANY_ALLOWED = {"Other", "CustomerId", "Email", "Phone", "AnonymousId", "LoyaltyCard"}


def _check_items_source(where: str, s, sources: dict) -> list[str]:
    """A child source (items_of) reads the files of its parent: same connection, no settings of its own."""
    problems = []
    parent = sources.get(s.items_of.source)
    if parent is None:
        return [f"{where}.items_of.source: unknown source '{s.items_of.source}' (known: {', '.join(sorted(sources))})"]
    if parent.items_of is not None:
        problems.append(f"{where}.items_of.source: '{parent.name}' is itself a child source; point at the source "
                        "that reads the files")
    if s.connection != parent.connection:
        problems.append(f"{where}.connection: a child source uses its parent's connection '{parent.connection}'")
    for attr in ("pattern", "table", "query", "cursor", "archive_folder", "schedule"):
        if getattr(s, attr):
            problems.append(f"{where}.{attr}: a child source (items_of) is imported with its parent '{parent.name}'; "
                            f"remove {attr}")
    expected = [*parent.record_keys, "position"]
    if list(s.record_keys) != expected:
        problems.append(f"{where}.record_keys: the items of '{parent.name}' are keyed by its record key(s) and their "
                        f"position: set record_keys: [{', '.join(expected)}]")
    clash = [f for f in s.items_of.fields if f in expected]
    if clash:
        problems.append(f"{where}.items_of.fields: {', '.join(clash)} is already a key column of the items; rename it")
    if s.items_of.separator is not None and (s.items_of.separator == "" or s.items_of.field_separator == ""
                                             or s.items_of.separator == s.items_of.field_separator):
        problems.append(f"{where}.items_of: separator and field_separator must be two different, non-empty texts")
    return problems


def segment_problems(config: WorkspaceConfig, only: str | None = None) -> list[str]:
    """Every problem of the segments (or of segment ``only``): unknown dataset, column, segment or
    related dataset, cycles between segments, refused SQL (see docs/segments.md)."""
    problems: list[str] = []
    names = [s.name for s in config.segments]
    for n in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"segment '{n}' is declared more than once: give each segment its own name")
    datasets = {d.name: d for d in config.datasets}
    by_name = {s.name: s for s in config.segments}
    for i, seg in enumerate(config.segments):
        if only is not None and seg.name != only:
            continue
        where = f"segments[{i}] ({seg.name})"
        d = datasets.get(seg.dataset)
        if d is None:
            problems.append(f"{where}.dataset: unknown dataset '{seg.dataset}' (known: "
                            f"{', '.join(sorted(datasets)) or 'none'})")
            continue
        cols = _dataset_columns(config, d)
        for j, cond in enumerate(seg.conditions):
            problems += _condition_problems(config, seg, cond, f"{where}.conditions[{j}]", cols, by_name, (seg.name,))
    return problems


def _condition_problems(config: WorkspaceConfig, seg, cond, where: str, cols: set[str], by_name: dict,
                        stack: tuple[str, ...]) -> list[str]:
    kind = cond.kind
    if kind in ("all", "any"):
        out = []
        for j, c in enumerate(getattr(cond, kind)):
            out += _condition_problems(config, seg, c, f"{where}.{kind}[{j}]", cols, by_name, stack)
        return out
    if kind == "not":
        return _condition_problems(config, seg, cond.not_, f"{where}.not", cols, by_name, stack)
    if kind == "column":
        if cond.column not in cols:
            return [f"{where}.column: '{cond.column}' is not a column of dataset '{seg.dataset}'"]
        return []
    if kind == "segment":
        other = by_name.get(cond.segment)
        if other is None:
            return [f"{where}.segment: unknown segment '{cond.segment}' (segments: {', '.join(by_name) or 'none'})"]
        if cond.segment in stack:
            cycle = " -> ".join(stack[stack.index(cond.segment):] + (cond.segment,))
            return [f"{where}.segment: segments use each other in a cycle: {cycle}; remove one of the references"]
        if other.dataset != seg.dataset:
            return [f"{where}.segment: segment '{other.name}' is on dataset '{other.dataset}', this one on "
                    f"'{seg.dataset}'; a segment uses segments of its own dataset"]
        out = []
        for c in other.conditions:
            for p in _condition_problems(config, other, c, where, cols, by_name, stack + (other.name,)):
                if "cycle" in p and p not in out:
                    out.append(p)
        return out
    if kind == "sql":
        try:
            check_expression(cond.sql, cols, where=f"{where}.sql")
        except ConfigError as exc:
            return exc.problems
        return []
    # behaviour conditions
    from tessera.segments.related import related_info

    try:
        info = related_info(config, seg.dataset, cond, where)
    except ConfigError as exc:
        return exc.problems
    rel_cols = _dataset_columns(config, next(d for d in config.datasets if d.name == info.dataset))
    out = []
    if cond.filter:
        try:
            check_expression(cond.filter, rel_cols, where=f"{where}.filter")
        except ConfigError as exc:
            out += exc.problems
    if kind == "aggregate" and cond.column and cond.column not in rel_cols:
        out.append(f"{where}.column: '{cond.column}' is not a column of dataset '{info.dataset}'")
    if kind in ("did", "not_done") and info.event_column is None:
        out.append(f"{where}: dataset '{info.dataset}' has no event name column; give one semantic: EventName")
    if (cond.last or cond.date_column) and (info.date_column is None or info.date_column not in rel_cols):
        out.append(f"{where}: a time window needs the date of the rows of '{info.dataset}': set date_column, or "
                   "give a column semantic: EventTime or OrderDate")
    return out


def _check_source_kind(where: str, s, kind: str) -> list[str]:
    """What a source needs depends on its connection: files need a pattern, databases a table or query."""

    problems = []
    if kind in FILE_CONNECTIONS:
        if not s.pattern:
            problems.append(f"{where}.pattern: a source on a {kind} connection needs a file pattern, e.g. 'contacts_*.csv'")
        for attr in ("table", "query", "cursor"):
            if getattr(s, attr):
                problems.append(f"{where}.{attr}: only database sources have a {attr}; this source reads files ({kind})")
        if s.import_strategy == "incremental":
            problems.append(f"{where}.import_strategy: incremental needs a database connection; files use new_files or full")
        for attr, what in (("pattern", "pattern"), ("archive_folder", "folder")):
            problem = getattr(s, attr) and relative_path_problem(getattr(s, attr), what=what)
            if problem:
                problems.append(f"{where}.{attr}: {problem}")
    elif kind in DATABASE_CONNECTIONS:
        if bool(s.table) == bool(s.query):
            problems.append(f"{where}: a source on a {kind} connection reads either a table or a query: set exactly one")
        if s.pattern:
            problems.append(f"{where}.pattern: a database source has no file pattern; set table or query instead")
        if s.archive_folder:
            problems.append(f"{where}.archive_folder: only file sources move files to an archive folder")
        if s.import_strategy == "new_files":
            problems.append(f"{where}.import_strategy: a database source is imported with full or incremental, not new_files")
        if s.import_strategy == "incremental" and not s.cursor:
            problems.append(f"{where}.cursor: incremental imports need a cursor column, e.g. updated_at")
        if s.cursor and s.import_strategy != "incremental":
            problems.append(f"{where}.cursor: a cursor is used by import_strategy: incremental only")
    elif kind == "http":
        for attr in ("pattern", "table", "query", "cursor", "archive_folder"):
            if getattr(s, attr):
                problems.append(f"{where}.{attr}: an event source (http connection) has no {attr}")
        problems += _check_event_columns(where, s)
    else:
        problems.append(f"{where}.connection: a {kind} connection is a destination, not a source")
    if s.lookback is not None and not s.cursor:
        problems.append(f"{where}.lookback: a look-back window needs a cursor column")
    if s.filter:
        problems += _check_source_filter(where, s, kind)
    return problems


def _check_event_columns(where: str, s) -> list[str]:
    """An event source's columns are the event columns and JSON paths (traits.first_name...)."""

    problems = []
    for setting, names in (("columns", s.columns or []), ("record_keys", s.record_keys),
                           ("normalize", list(s.normalize)), ("types", list(s.types))):
        problems += [f"{where}.{setting}: {p}" for p in map(column_problem, names) if p]
    for j, rel in enumerate(s.relations):
        problem = column_problem(rel.column)
        if problem:
            problems.append(f"{where}.relations[{j}].column: {problem}")
    return problems


def _check_source_filter(where: str, s, kind: str) -> list[str]:
    """A source filter is one checked SQL condition; an event source's columns are known here,
    a file or database source's only once imported (then only the expression itself is checked)."""

    used = filter_columns(s.filter)
    if kind == "http":
        columns = set(EVENT_COLUMNS) | {c for c in used if is_json_path(c)}
    else:
        columns = used
    try:
        check_condition(filter_sql(s.filter), columns, where=f"{where}.filter")
    except ConfigError as exc:
        return exc.problems
    return []


def _check_syncs(config: WorkspaceConfig) -> list[str]:

    problems = []
    conns = {c.name: c for c in config.connections}
    datasets = {d.name: d for d in config.datasets}
    names = [s.name for s in config.syncs]
    for n in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"sync '{n}' is declared more than once: give each sync its own name")
    for i, s in enumerate(config.syncs):
        where = f"syncs[{i}] ({s.name})"
        conn = conns.get(s.connection)
        if conn is None:
            problems.append(f"{where}.connection: unknown connection '{s.connection}' (known: {', '.join(sorted(conns)) or 'none'})")
        elif conn.type in ("sqlite", "bigquery", "http"):
            problems.append(f"{where}.connection: '{s.connection}' is a {conn.type} connection; syncs write to files "
                            "(local, ftp, ftps, sftp), tables (postgresql, mysql, mariadb) or a webhook")
        elif conn.type in ("postgresql", "mysql", "mariadb") and not s.table:
            problems.append(f"{where}.table: a sync to a {conn.type} connection needs the destination table's name")
        if conn is not None and conn.type in FILE_CONNECTIONS:
            problem = relative_path_problem(s.folder, what="folder")
            if problem:
                problems.append(f"{where}.folder: {problem}")
            problem = s.file_name is not None and file_name_problem(s.file_name)
            if problem:
                problems.append(f"{where}.file_name: {problem}")
        if s.segment is not None:
            seg = next((x for x in config.segments if x.name == s.segment), None)
            if seg is None:
                problems.append(f"{where}.segment: unknown segment '{s.segment}' (segments: "
                                f"{', '.join(x.name for x in config.segments) or 'none'})")
            elif seg.dataset != s.dataset:
                problems.append(f"{where}.segment: segment '{seg.name}' is on dataset '{seg.dataset}', the sync sends "
                                f"'{s.dataset}'; set dataset: {seg.dataset}")
        d = datasets.get(s.dataset)
        if d is None:
            problems.append(f"{where}.dataset: unknown dataset '{s.dataset}' (known: {', '.join(sorted(datasets)) or 'none'})")
            continue
        cols = _dataset_columns(config, d)
        for dest, col in (s.fields or {}).items():
            if col not in cols:
                problems.append(f"{where}.fields.{dest}: '{col}' is not a column of dataset '{d.name}'")
        if s.key not in cols:
            problems.append(f"{where}.key: '{s.key}' is not a column of dataset '{d.name}'")
        for channel, col in s.consent_columns.items():
            if col not in cols:
                problems.append(f"{where}.consent_columns.{channel}: '{col}' is not a column of dataset '{d.name}'")
        if s.filter:
            try:
                check_condition(s.filter, cols, where=f"{where}.filter")
            except ConfigError as exc:
                problems += exc.problems
    return problems


def _check_aggregate_filters(config: WorkspaceConfig, i: int, d) -> list[str]:
    """Each aggregate's filter is a checked condition over the related dataset's columns, at apply
    (not first at run time)."""

    datasets = {x.name: x for x in config.datasets}
    problems = []
    for j, a in enumerate(d.aggregates):
        if not a.filter:
            continue
        related = datasets.get(a.from_)
        if related is not None:
            columns = _dataset_columns(config, related)
        else:  # the unknown dataset is reported by the enrichment checks: check the expression only

            columns = referenced_columns(a.filter)
        try:
            check_condition(a.filter, columns, where=f"datasets[{i}] ({d.name}).aggregates[{j}] ({a.name}).filter")
        except ConfigError as exc:
            problems += exc.problems
    return problems


def _dataset_columns(config: WorkspaceConfig, d) -> set[str]:
    """Every column a published dataset has (mapped, link, unified, enrichment and computed columns)."""
    cols = {c.name for c in d.columns} | {c for m in d.mappings for c in m.columns}
    cols |= {"tessera_id"} | set(_link_columns(config, d)) | set(enrichment_columns(d)) | {c.name for c in d.computed}
    if d.deduplicate:
        cols |= set(UNIFIED_COLUMNS)
    return cols


# Columns every unified row carries besides the mapped ones (see tessera.identity.merge).
UNIFIED_COLUMNS = ("tessera_record_count", "tessera_sources", "tessera_first_seen", "tessera_last_seen")


def _link_columns(config: WorkspaceConfig, dataset) -> list[str]:
    """The relation columns (``tessera_<dataset>_id``) the sources of ``dataset`` add to it."""
    sources = {s.name: s for s in config.sources}
    names = {d.name for d in config.datasets}
    feeds: dict[str, str] = {}
    for d in config.datasets:
        for m in d.mappings:
            feeds.setdefault(m.source, d.name)
    out = []
    for m in dataset.mappings:
        for rel in sources[m.source].relations if m.source in sources else []:
            obj = rel.to.split(".")[0]
            target = obj if obj in names else feeds.get(obj)
            if target is not None:
                name = rel.name or f"tessera_{target}_id"
                if name not in out:
                    out.append(name)
    return out


def enrichment_columns(d) -> list[str]:
    """Columns a dataset gains in the enrichment step (aggregates, library and predictive scores):
    computed columns may use them, and are then added after that step."""

    out = [a.name for a in d.aggregates]
    if d.scores:
        for name in d.scores.library:
            out += list(LIBRARY[name].columns) if name in LIBRARY else []
        if d.scores.predictive:
            horizon = int(d.scores.predictive_settings.get("horizon_days", 90))
            out += [c.replace("{horizon}", str(horizon)) for c in PREDICTIVE_COLUMNS]
    return out


def _check_computed(config: WorkspaceConfig, i: int, d, cols: list[str]) -> list[str]:
    """Each computed column's SQL against the dataset's columns, names, and cycles between them."""

    problems: list[str] = []
    base = set(cols) | {"tessera_id"} | set(_link_columns(config, d)) | set(enrichment_columns(d))
    if d.deduplicate:
        base |= set(UNIFIED_COLUMNS)
    names = [c.name for c in d.computed]
    for j, c in enumerate(d.computed):
        where = f"datasets[{i}].computed[{j}] ({c.name})"
        if c.name in base:
            problems.append(f"{where}.name: '{c.name}' is already a column of the dataset; give the computed "
                            "column another name")
        elif names.index(c.name) != j:
            problems.append(f"{where}.name: computed column '{c.name}' is declared more than once")
        if c.semantic and c.semantic not in SEMANTIC_FIELDS:
            problems.append(f"{where}.semantic: unknown semantic field '{c.semantic}' "
                            f"(one of {', '.join(SEMANTIC_FIELDS)})")
        try:
            check_expression(c.sql, base | set(names), where=where)
        except ConfigError as exc:
            problems += exc.problems
    try:
        order_computed({c.name: c.sql for c in d.computed}, base)
    except ConfigError as exc:
        problems += [f"datasets[{i}] ({d.name}).computed: {p}" for p in exc.problems]
    for j, k in enumerate(d.identity_keys):
        if k.column in names:
            problems.append(f"datasets[{i}] ({d.name}).identity_keys[{j}]: '{k.column}' is a computed column; "
                            "identity keys are mapped columns (computed columns are added after unification)")
    if d.date_column in names:
        problems.append(f"datasets[{i}] ({d.name}).date_column: '{d.date_column}' is a computed column; the "
                        "record date is a mapped column (computed columns are added after unification)")
    return problems


def _read_text(path: Path) -> str:
    """The file's text: UTF-8 of a bounded size, else a ConfigError saying where and what to do."""
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(f"the file is {size:,} bytes, above the limit of {MAX_CONFIG_BYTES:,} bytes for a "
                          "workspace configuration; remove what is not configuration, or raise "
                          "TESSERA_CONFIG_MAX_BYTES", origin=str(path))
    data = path.read_bytes()
    if b"\x00" in data[:8192]:
        raise ConfigError("this is not a text file (it holds NUL bytes); give the workspace YAML file",
                          origin=str(path))
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError(f"line {line}, column {column}: the byte 0x{data[exc.start]:02x} is not UTF-8; save the "
                          "file as UTF-8 (e.g. iconv -f latin1 -t utf-8)", origin=str(path)) from None


def read_yaml_text(text: str, origin: str = "configuration") -> Any:
    """Parse YAML text into lined mappings and lists (see :func:`_line_of`).

    Refused with a ConfigError naming the line: invalid YAML, nesting deeper than ``MAX_DEPTH``,
    aliases that would add more than ``MAX_ALIAS_NODES`` values (a "billion laughs" file), recursive
    aliases, and keys repeated in one mapping.
    """
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError(f"the text is {len(text):,} characters, above the limit of {MAX_CONFIG_BYTES:,} for a "
                          "workspace configuration", origin=origin)
    loader = None
    try:
        _check_depth(text)
        loader = _LineLoader(text)
        node = loader.get_single_node()
        if node is None:
            return None
        expanded = _expanded_size(node)
        if expanded - _distinct_nodes(node) > MAX_ALIAS_NODES:
            raise _Refused(f"its aliases (*name) would repeat anchored values into more than {MAX_ALIAS_NODES:,} "
                           "values; write the values out, or use fewer nested aliases")
        data = loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        if isinstance(exc, yaml.reader.ReaderError):
            line = text[:exc.position].count("\n") + 1
            column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
            where = f"line {line}, column {column}: "
            detail = (f"it holds the control character #x{exc.character:04x}; remove it or save the file as text"
                      if isinstance(exc.character, int) else str(exc.reason))
        else:
            detail = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}not valid YAML ({detail})", origin=origin) from None
    except _Refused as exc:
        raise ConfigError(str(exc), origin=origin) from None
    except RecursionError:
        raise ConfigError(f"values are nested too deeply (more than {MAX_DEPTH} levels); flatten the file",
                          origin=origin) from None
    finally:
        if loader is not None:
            loader.dispose()
    if loader.duplicates:
        raise ConfigError(loader.duplicates, origin=origin)
    return data


def load_yaml(path: str | Path) -> WorkspaceConfig:
    """Read and validate a workspace YAML file. Local connection paths become absolute."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"file not found: {path}")
    if path.is_dir():
        raise ConfigError(f"{path} is a folder: give the workspace YAML file")
    lined = read_yaml_text(_read_text(path), origin=str(path))
    config = parse_config(lined, origin=str(path), lined=lined)
    return resolve_paths(config, path.resolve().parent)


def load_yaml_text(text: str, base: str | Path, origin: str = "the configuration") -> WorkspaceConfig:
    """Read and validate a workspace configuration given as YAML text (the API's ``/api/config``);
    relative local paths are taken from ``base`` (the workspace folder)."""
    lined = read_yaml_text(text, origin=origin)
    return resolve_paths(parse_config(lined, origin=origin, lined=lined), Path(base).resolve())


def resolve_paths(config: WorkspaceConfig, base: Path) -> WorkspaceConfig:
    """Local connection paths (folders, SQLite files, key files) relative to ``base`` made absolute."""
    for conn in config.connections:
        if conn.type in ("local", "sqlite") and not os.path.isabs(conn.path):
            conn.path = str((base / conn.path).resolve())
        for attr in ("private_key_file", "known_hosts", "ca_file", "credentials_file"):
            value = getattr(conn, attr, None)
            if value and not os.path.isabs(os.path.expanduser(value)):
                setattr(conn, attr, str((base / value).resolve()))
    return config


def dump_yaml(config: WorkspaceConfig) -> str:
    data = config.model_dump(mode="json", exclude_defaults=True, by_alias=True)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
