"""The demo company end to end: unified contacts against the generator's truth, rejects, relations."""

from __future__ import annotations

import pytest

from tessera.demo.generator import generate
from tessera.workspace import Workspace


@pytest.fixture(scope="module", params=["duckdb", pytest.param("spark", marks=pytest.mark.spark)])
def demo(request, tmp_path_factory):
    if request.param == "spark":
        request.getfixturevalue("spark_session")
    tmp_path = tmp_path_factory.mktemp(f"demo-{request.param}")
    info = generate(tmp_path / "company", size=400, seed=11)
    ws = Workspace.init(tmp_path / "ws", warehouse=request.param)
    ws.apply(info.workspace_path)
    result = ws.run()
    yield ws, info, result
    ws.close()


def pair_scores(ws, info):
    """Pairwise precision and recall of the unified contacts against truth.csv (linkable records)."""
    con = ws.adapter
    lineage = con.to_arrow(ws.table("contacts__lineage").select("_tessera_record", "tessera_id")).to_pylist()
    tid = {r["_tessera_record"]: r["tessera_id"] for r in lineage}
    import csv

    excluded = set(map(tuple, info.unlinkable)) | set(map(tuple, info.rejected))
    truth = {}
    with open(info.truth_path, newline="") as fh:
        for row in csv.DictReader(fh):
            key = (row["source"], row["record_key"])
            if key in excluded:
                continue
            truth[f"{row['source']}:{row['record_key']}"] = row["person_id"]
    missing = [r for r in truth if r not in tid]
    assert not missing, f"records lost: {missing[:5]}"

    def pairs(groups):
        return sum(n * (n - 1) // 2 for n in groups.values())

    by_tid, by_person, by_both = {}, {}, {}
    for rec, person in truth.items():
        by_tid[tid[rec]] = by_tid.get(tid[rec], 0) + 1
        by_person[person] = by_person.get(person, 0) + 1
        by_both[(tid[rec], person)] = by_both.get((tid[rec], person), 0) + 1
    tp = pairs(by_both)
    return tp / max(pairs(by_tid), 1), tp / max(pairs(by_person), 1)


def test_demo_contacts_match_the_truth(demo):
    ws, info, result = demo
    precision, recall = pair_scores(ws, info)
    assert precision == 1.0
    assert recall >= 0.995
    # households share a landline: reported as shared values, never merged
    shared = {r["value"] for r in ws.adapter.to_arrow(ws.table("contacts__shared_values")).to_pylist()}
    assert set(info.shared_phones) <= shared


def test_every_malformed_row_is_in_rejects_with_its_line(demo):
    ws, info, _ = demo
    rejects = ws.adapter.to_arrow(ws.table("tessera_rejects")).to_pylist()
    found = {(r["file"], r["line"]) for r in rejects}
    for file, line, _reason in info.malformed:
        rel = file.removeprefix("data/")
        assert (rel, line) in found, f"{file}:{line} not rejected ({_reason})"
    assert all(r["reason"] for r in rejects)


def test_each_source_reports_its_rejected_rows(demo):
    ws, _, result = demo
    rejects = ws.adapter.to_arrow(ws.table("tessera_rejects")).to_pylist()
    per_source: dict[str, int] = {}
    for r in rejects:
        per_source[r["source"]] = per_source.get(r["source"], 0) + 1
    parsed = {r["source"] for r in ws.adapter.to_arrow(ws.adapter.table("_tessera_parse_rejects")).to_pylist()}
    assert parsed  # the demo's files have rows the parser refuses (a count read per source and batch)
    assert {s: c["rejected"] for s, c in result.sources.items() if c.get("rejected")} == per_source


def test_orders_are_linked_to_their_contacts(demo):
    ws, _, _ = demo
    orders = ws.table("orders")
    linked = ws.adapter.execute(orders.tessera_contacts_id.notnull().sum())
    total = ws.adapter.execute(orders.count())
    # e-shop orders carry a customer id, loyalty tickets a card: anonymous tickets stay unlinked
    assert linked / total > 0.8
    contacts = ws.table("contacts")
    dangling = orders.filter(orders.tessera_contacts_id.notnull()).anti_join(
        contacts, orders.tessera_contacts_id == contacts.tessera_id
    )
    assert ws.adapter.execute(dangling.count()) == 0


def test_the_demo_history_ends_today_and_the_predictive_models_fit(tmp_path):
    import datetime as dt
    import json

    info = generate(tmp_path / "company", size=2000, seed=7)
    today = dt.date.today()
    with open(info.out_dir / "data" / "eshop" / "orders.ndjson") as fh:
        days = [json.loads(line)["order_date"][:10] for line in fh if line.strip().endswith("}")]
    assert max(days) <= today.isoformat() and max(days) >= (today - dt.timedelta(days=7)).isoformat()
    ws = Workspace.init(tmp_path / "ws")
    try:
        ws.apply(info.workspace_path)
        result = ws.run()
        assert result.datasets["contacts"]["predictive"] == "fitted"
        rows = ws.adapter.to_arrow(ws.table("contacts")).to_pylist()
        alive = [r["score_probability_alive"] for r in rows if r["score_probability_alive"] is not None]
        assert len(alive) > 1000
        # customers who stopped buying years ago are seen as gone, recent buyers as alive
        assert min(alive) < 0.2 and max(alive) > 0.9
        # one-time buyers too (MBG/NBD): the longer ago their single order, the more likely gone
        one_time = sorted((r["score_days_since_last_order"], r["score_probability_alive"]) for r in rows
                          if r["score_total_order_count"] == 1 and r["score_probability_alive"] is not None)
        assert len(one_time) > 100
        assert all(p >= q for (_, p), (_, q) in zip(one_time, one_time[1:]))
        assert one_time[-1][1] < 0.5 < one_time[0][1] < 1
        # a next order is a date within the year, or none for customers not expected back by then
        days = [r["score_days_to_next_order"] for r in rows if r["score_days_to_next_order"] is not None]
        assert days and max(days) <= 365
        assert any(r["score_days_to_next_order"] is None and r["score_probability_alive"] for r in rows)
        # civilités (Mme, M.) published as F and M
        assert {r["gender"] for r in rows} == {"F", "M", None}
    finally:
        ws.close()


def test_the_demo_is_the_same_for_the_same_day(tmp_path):
    import datetime as dt

    a = generate(tmp_path / "a", size=150, seed=5, end=dt.date(2025, 3, 1))
    b = generate(tmp_path / "b", size=150, seed=5, end=dt.date(2025, 3, 1))
    for name in a.rows:
        assert (a.out_dir / name).read_bytes() == (b.out_dir / name).read_bytes()
    later = generate(tmp_path / "c", size=150, seed=5, end=dt.date(2026, 3, 1))
    assert (later.out_dir / "data" / "pos" / "tickets.csv").read_bytes() != \
        (a.out_dir / "data" / "pos" / "tickets.csv").read_bytes()


def test_the_demo_segments_have_members(demo):
    ws, _info, result = demo
    sizes = {s["name"]: s["size"] for s in ws.segments()}
    assert set(sizes) == {"vip", "at_risk_of_churn", "lapsed", "new_this_month", "cart_abandoners", "omnichannel"}
    assert all(sizes.values()), f"empty demo segments: {sizes}"
    step = next(s for s in result.steps if s["step"] == "segments")
    assert step["members"] == sum(sizes.values())
