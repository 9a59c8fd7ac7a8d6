"""The proposal: a whole workspace configuration for a folder of exports, with its evidence."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import ibis
import phonenumbers
import yaml

from tessera.config.loader import parse_config
from tessera.config.models import WorkspaceConfig
from tessera.errors import ConfigError
from tessera.normalize.phone import DEFAULT_COUNTRY
from tessera.setup.columns import pct, plan_column
from tessera.setup.datasets import DatasetPlan, build_dataset, key_coverage, plan_identity, plan_scores
from tessera.setup.profile import FileProfile, Profiler, discover
from tessera.setup.sources import (
    ENTITIES,
    SourcePlan,
    entity_of,
    find_relations,
    pattern_of,
    record_keys,
    series,
    series_key,
    shared_ids,
    source_name,
)

CONNECTION = "files"


@dataclass
class Proposal:
    """A proposed configuration: ``config`` (a plain mapping), ``yaml`` (the same with every piece of
    evidence as a comment), ``doubts`` (what the data did not settle) and the figures of the work."""

    folder: Path
    config: dict
    yaml: str
    doubts: list[str] = field(default_factory=list)
    sources: list[dict] = field(default_factory=list)  # per source: name, files, rows, entity, keys
    files: int = 0
    rows: int = 0  # records profiled
    rows_estimate: int = 0  # records in the files
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)  # seconds per step

    def validated(self) -> WorkspaceConfig:
        return parse_config(self.config, origin="proposed configuration")


def propose_config(folder: str | Path, *, connection: str = CONNECTION) -> Proposal:
    """Read every file of ``folder`` and propose the workspace configuration that unifies them.

    Args:
        folder: a folder of exports (CSV, JSON, NDJSON, Parquet, XLSX), read recursively.
        connection: the name of the local connection to the folder.

    Returns:
        A :class:`Proposal` whose ``yaml`` can be applied as it is.

    Examples:
        >>> proposal = propose_config("exports")          # doctest: +SKIP
        >>> Path("workspace.yaml").write_text(proposal.yaml)  # doctest: +SKIP
    """
    started = time.perf_counter()
    folder = Path(folder).expanduser().resolve()
    if not folder.is_dir():
        raise ConfigError(f"'{folder}' is not a folder: give the folder that holds the exported files.")
    prof = Profiler()
    try:
        files, firsts = [], {}
        for i, path in enumerate(discover(folder)):
            # the later files of a dated series: their header only, when it is the first file's
            key = series_key(path.relative_to(folder).as_posix())
            like = firsts.get(key)
            f = prof.peek(path, folder, like) if like is not None and key is not None else None
            if f is None:
                f = prof.read(path, folder, i)
                if key is not None and not f.error:
                    firsts.setdefault(key, f)
            files.append(f)
        read = time.perf_counter()
        prof.timings["read and profile files"] = read - started
        proposal = _propose(prof, folder, files, connection)
    finally:
        prof.close()
    proposal.seconds = time.perf_counter() - started
    proposal.timings = dict(prof.timings)
    return proposal


def _propose(prof: Profiler, folder: Path, files: list[FileProfile], connection: str) -> Proposal:
    doubts: list[str] = []
    for f in files:
        if f.error:
            doubts.append(f"file '{f.rel}' left out: {f.error}")
        elif not f.rows and not f.peeked:
            doubts.append(f"file '{f.rel}' left out: no data rows")
    good = [f for f in files if not f.error and (f.rows or f.peeked)]
    if not good:
        raise ConfigError(f"No readable data file in '{folder}': Tessera reads .csv, .txt, .tsv, .json, .ndjson, "
                          ".jsonl, .parquet, .pq and .xlsx files." + "".join(f"\n- {d}" for d in doubts))
    country, country_ev, dayfirst = _locale(prof, good)
    if country_ev.startswith("no "):
        doubts.append(f"phones: {country_ev}; default country {country} assumed")

    plans: list[SourcePlan] = []
    taken: set[str] = set()
    for group in series(good):
        s = SourcePlan(source_name(group, taken), group, pattern_of(group))
        for c, p in group[0].columns.items():
            s.columns[c] = plan_column(group[0], p, country=country, hint_dayfirst=dayfirst)
        s.entity, s.entity_evidence = entity_of(s)
        plans.append(s)
    mark = _clock(prof, None)
    for s in plans:
        record_keys(prof, s)
        key = s.columns[s.record_keys[0]] if len(s.record_keys) == 1 else None
        if key is not None and key.semantic is None and s.entity == "contacts":
            key.semantic, key.semantic_evidence = "CustomerId", "the record key of a contacts source"
        for cp in s.columns.values():
            s.doubts += cp.doubts
        if s.entity == "custom":
            s.doubts.append(f"source '{s.name}': {s.entity_evidence}; it gets a dataset of its own")
    mark = _clock(prof, "record keys", mark)
    contacts_sources = [s for s in plans if s.entity == "contacts"]
    find_relations(prof, plans, "contacts" if contacts_sources else None)
    shared_ids(prof, plans)
    mark = _clock(prof, "relations", mark)

    datasets: list[DatasetPlan] = []
    for entity in (*ENTITIES, "custom"):
        members = [s for s in plans if s.entity == entity]
        if not members:
            continue
        if entity == "custom":
            datasets += [build_dataset(s.name, "custom", [s]) for s in members]
        else:
            datasets.append(build_dataset(entity, entity, members))
    by_name = {d.name: d for d in datasets}
    contacts = by_name.get("contacts")
    if contacts:
        plan_identity(prof, contacts)
        if not contacts.identity_keys:
            doubts.append("contacts: no e-mail, phone, loyalty card or shared customer id: the contacts are not "
                          "deduplicated (one customer per record)")
        orders = by_name.get("orders")
        linked = bool(orders) and any(r["to"].split(".")[0] in ({"contacts"} | {s.name for s in contacts.sources})
                                      for s in orders.sources for r in s.relations)
        plan_scores(contacts, orders, by_name.get("order_items"), by_name.get("products"), linked)
        events = by_name.get("events")
        contact_names = {"contacts"} | {s.name for s in contacts.sources}
        if events and any(r["to"].split(".")[0] in contact_names for s in events.sources for r in s.relations):
            fields = {c["semantic"] for c in events.columns}
            if {"EventTime", "EventName"} <= fields:
                contacts.scores = contacts.scores or {"library": []}
                contacts.scores["library"] = [*contacts.scores["library"], "engagement"]
                contacts.scores_evidence.append("engagement: the events (EventTime, EventName) are linked to the contacts")
        if orders and not linked:
            doubts.append("no column of the orders was found in the contacts' ids, e-mails or phones: orders "
                          "are not linked to contacts, and no score is proposed")
    for s in plans:
        doubts += s.doubts
    for d in datasets:
        doubts += d.doubts
    mark = _clock(prof, "datasets, identity, scores", mark)

    config = _config(plans, datasets, folder, connection)
    text = _render(config, plans, datasets, folder, country, country_ev, doubts, prof)
    if yaml.safe_load(text) != config:  # pragma: no cover - the renderer and the mapping agree
        raise AssertionError("the rendered proposal differs from its configuration")
    parse_config(config, origin="proposed configuration")
    _clock(prof, "YAML with evidence", mark)
    summary = [{"name": s.name, "files": [f.rel for f in s.files], "rows": sum(f.rows_estimate for f in s.files),
                "entity": s.entity, "record_keys": s.record_keys, "relations": [r["to"] for r in s.relations]}
               for s in plans]
    return Proposal(folder, config, text, doubts, summary, len(files), sum(f.rows for f in good),
                    sum(f.rows_estimate for f in good))


def _clock(prof: Profiler, step: str | None, since: float | None = None) -> float:
    now = time.perf_counter()
    if step:
        prof.timings[step] = now - since
    return now


def _locale(prof: Profiler, files: list[FileProfile]) -> tuple[str, str, bool | None]:
    """The default phone country and the date order the data suggests: the most frequent country in
    the country columns, else the calling code of the numbers written in international form."""
    from tessera.setup.columns import semantic_field

    votes: Counter = Counter()
    for f in files:
        for c, p in f.columns.items():
            sem, _ = semantic_field(p)
            if sem != "Country":
                continue
            # distinct spellings are counted in the engine; the few of them are looked up here
            t = prof.table(f.table)
            key = t[c].strip().upper()
            counts = t.select(k=key).filter(lambda x: x.k.notnull() & (x.k != "")).group_by("k").agg(
                n=ibis._.count()).order_by(ibis.desc("n")).limit(100)
            for r in counts.to_pyarrow().to_pylist():
                code = _country(r["k"])
                if code:
                    votes[code] += r["n"]
    how = "most frequent country in the country columns"
    if not votes:
        for f in files:
            for c, p in f.columns.items():
                if semantic_field(p)[0] != "Phone":
                    continue
                t = prof.table(f.table)
                cc = t[c].strip().re_extract(r"^(\+|00)([1-9][0-9]{0,2})", 2)
                counts = t.select(cc=cc).filter(lambda x: x.cc != "").group_by("cc").agg(n=ibis._.count())
                for r in counts.to_pyarrow().to_pylist():
                    for width in (1, 2, 3):
                        region = phonenumbers.region_code_for_country_code(int(r["cc"][:width]))
                        if region != "ZZ":
                            votes[region] += r["n"]
                            break
        how = "most frequent calling code of the phones written with +"
    if not votes:
        return DEFAULT_COUNTRY, "no country column and no international phone number", True
    total = sum(votes.values())
    country, n = votes.most_common(1)[0]
    others = ", ".join(f"{k} {v:,}" for k, v in votes.most_common(4)[1:])
    ev = f"{how}: {country} in {pct(n, total)} values" + (f" (then {others})" if others else "")
    dayfirst = country not in ("US", "CA", "PH")
    return country, ev, dayfirst


def _country(text: str) -> str | None:
    from tessera.normalize.rules import _py_key, country_keys

    return country_keys().get(_py_key(text))


def _config(plans: list[SourcePlan], datasets: list[DatasetPlan], folder: Path, connection: str) -> dict:
    sources = []
    for s in plans:
        f = s.first
        src: dict = {"name": s.name, "connection": connection, "pattern": s.pattern, "format": f.fmt}
        if f.fmt == "csv":
            csv = {"delimiter": f.delimiter or ","}
            if f.decimal_comma:
                csv["decimal_comma"] = True
            src["csv"] = csv
        src["record_keys"] = list(s.record_keys)
        types = {c: cp.declared_type for c, cp in s.columns.items() if cp.declared_type}
        if types:
            src["types"] = types
        rules = {c: list(cp.rules) for c, cp in s.columns.items() if cp.rules}
        if rules:
            src["normalize"] = rules
        if s.relations:
            src["relations"] = [{"column": r["column"], "to": r["to"]} for r in s.relations]
        sources.append(src)
    out_ds = []
    for d in datasets:
        ds: dict = {"name": d.name}
        if d.entity != "custom":
            ds["entity"] = d.entity
        if d.entity == "contacts" and d.identity_keys:
            ds["deduplicate"] = True
            ds["identity_keys"] = [dict(k) for k in d.identity_keys]
            if d.blocked_values:
                ds["blocked_values"] = list(d.blocked_values)
            if d.shared_value_threshold:
                ds["shared_value_threshold"] = d.shared_value_threshold
            if d.date_column:
                ds["date_column"] = d.date_column
        ds["columns"] = [{k: v for k, v in c.items() if k != "evidence"} for c in d.columns]
        ds["mappings"] = [{"source": s.name, "columns": dict(d.mappings[s.name])} for s in d.sources]
        if d.scores:
            ds["scores"] = dict(d.scores)
        out_ds.append(ds)
    return {"connections": [{"name": connection, "type": "local", "path": str(folder)}],
            "sources": sources, "datasets": out_ds}


# ---------------------------------------------------------------------------- YAML with evidence


def _flow(value) -> str:
    return yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=1 << 30).strip()


def _scalar(value) -> str:
    text = yaml.safe_dump(value, allow_unicode=True, width=1 << 30).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


def _comment(text: str) -> str:
    return "  # " + " ".join(text.split()) if text else ""


def _render(config: dict, plans: list[SourcePlan], datasets: list[DatasetPlan], folder: Path, country: str,
            country_ev: str, doubts: list[str], prof: Profiler) -> str:
    by_src = {s.name: s for s in plans}
    lines = [f"# Proposed by `tessera init --from` for {folder}",
             f"# {len(plans)} source(s), {len(datasets)} dataset(s). Every choice carries its evidence as a comment;",
             "# DOUBT lines are what the data did not settle: check them, edit, then `tessera apply` again.",
             f"# Phones: default country {country} ({country_ev}).",
             ]
    lines += [f"# DOUBT: {' '.join(d.split())}" for d in doubts]
    lines.append("connections:")
    for c in config["connections"]:
        lines.append(f"  - {_flow(c)}")
    lines.append("sources:")
    for src in config["sources"]:
        s = by_src[src["name"]]
        f = s.first
        files = f"{len(s.files)} files ({', '.join(x.rel for x in s.files[:3])}{', ...' if len(s.files) > 3 else ''})" \
            if len(s.files) > 1 else f"file {f.rel}"
        about = f"{f.rows_estimate:,} rows" + (f", profiled on the first {f.rows:,}" if f.sampled else "")
        if f.rejected:
            about += (f", {f.rejected:,} unreadable row(s) in the profiled lines (an import keeps such rows in "
                      "rejects with their line)" if f.sampled else f", {f.rejected:,} unreadable row(s) kept in rejects")
        lines.append(f"  # {files}: {about}")
        lines.append(f"  # entity {s.entity}: {s.entity_evidence}")
        lines.append(f"  - name: {src['name']}")
        for key in ("connection", "pattern", "format"):
            ev = ""
            if key == "format":
                ev = f"{'UTF-8 with a BOM' if f.bom else 'UTF-8'}" if f.fmt == "csv" else f"{f.fmt} content"
            lines.append(f"    {key}: {_scalar(src[key])}{_comment(ev)}")
        if "csv" in src:
            ev = f"'{src['csv']['delimiter']}' separates the header's columns"
            if src["csv"].get("decimal_comma"):
                n = sum(p.shapes["dec_comma"] for p in f.columns.values())
                ev += f"; {n:,} numbers written with a decimal comma"
            lines.append(f"    csv: {_flow(src['csv'])}{_comment(ev)}")
        lines.append(f"    record_keys: {_flow(src['record_keys'])}{_comment('record key: ' + s.key_evidence)}")
        if "types" in src:
            lines.append("    types:")
            for c, kind in src["types"].items():
                lines.append(f"      {_scalar(c)}: {kind}{_comment('; '.join(s.columns[c].evidence[:1]))}")
        if "normalize" in src:
            lines.append("    normalize:")
            for c, rules in src["normalize"].items():
                cp = s.columns[c]
                ev = "; ".join(e for e in cp.evidence if not e.startswith(("kept as text", "numbers in")))
                lines.append(f"      {_scalar(c)}: {_flow(rules)}{_comment(ev)}")
        if "relations" in src:
            lines.append("    relations:")
            for r, rp in zip(src["relations"], s.relations):
                lines.append(f"      - {_flow(r)}{_comment('relation: ' + rp['evidence'])}")
    lines.append("datasets:")
    for ds, d in zip(config["datasets"], datasets):
        lines.append(f"  # {d.entity} from {', '.join(s.name for s in d.sources)}")
        lines.append(f"  - name: {ds['name']}")
        if "entity" in ds:
            lines.append(f"    entity: {ds['entity']}")
        if d.entity == "contacts" and d.identity_keys:
            lines.append(f"    deduplicate: true{_comment(key_coverage(prof, d))}")
            lines.append("    identity_keys:")
            for k in ds["identity_keys"]:
                lines.append(f"      - {_flow(k)}{_comment(d.identity_evidence.get(k['column'], ''))}")
            if "blocked_values" in ds:
                lines.append(f"    blocked_values: {_flow(ds['blocked_values'])}"
                             f"{_comment('placeholders carried by many records')}")
            if "shared_value_threshold" in ds:
                lines.append(f"    shared_value_threshold: {ds['shared_value_threshold']}"
                             f"{_comment(d.threshold_evidence)}")
            if "date_column" in ds:
                lines.append(f"    date_column: {ds['date_column']}{_comment('most recent values win by this date')}")
        lines.append("    columns:")
        for c, cd in zip(ds["columns"], d.columns):
            lines.append(f"      - {_flow(c)}{_comment(cd['evidence'])}")
        lines.append("    mappings:")
        for m in ds["mappings"]:
            lines.append(f"      - source: {m['source']}")
            lines.append("        columns:")
            for k, v in m["columns"].items():
                lines.append(f"          {_scalar(k)}: {_scalar(v)}")
        if "scores" in ds:
            lines.append(f"    scores: {_flow(ds['scores'])}")
            lines += [f"    # scores: {' '.join(e.split())}" for e in d.scores_evidence]
        elif d.scores_evidence:
            lines += [f"    # scores: {' '.join(e.split())}" for e in d.scores_evidence]
    return "\n".join(lines) + "\n"
