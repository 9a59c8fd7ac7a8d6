"""Enrichment in a run: aggregates with filters and windows, library scores, on every engine."""

from __future__ import annotations

from datetime import date


CONFIG = """
connections: [{name: files, type: local, path: data}]
sources:
  - name: people
    connection: files
    pattern: people.csv
    record_keys: [id]
    normalize: {email: [email]}
  - name: sales
    connection: files
    pattern: sales.csv
    record_keys: [order_id]
    types: {amount: float, day: date}
    normalize: {email: [email]}
    relations: [{column: email, to: contacts.email}]
datasets:
  - name: contacts
    deduplicate: true
    identity_keys: [{column: email}]
    columns: [{name: email, semantic: Email}]
    mappings: [{source: people, columns: {email: email, name: name}}]
    aggregates:
      - {name: textile_orders_1y, from: orders, function: count, filter: "category = 'Textile'", last: 1, unit: years}
      - {name: spent_2024, from: orders, function: sum, column: amount, between: [2024-01-01, 2024-12-31]}
      - {name: categories, from: orders, function: list, column: category}
    scores:
      library: [order_stats, rfm]
    computed:
      - {name: big_spender, sql: "coalesce(spent_2024, 0) > 100"}
      - {name: segment_label, sql: "score_rfm_segment || ' (' || score_rfm || ')'"}
  - name: orders
    columns:
      - {name: day, semantic: OrderDate}
      - {name: amount, semantic: OrderAmount}
    mappings: [{source: sales, columns: {order_id: order_id, day: day, amount: amount, category: category}}]
"""


def test_aggregates_and_scores_in_a_run(make_workspace, engine):
    ws = make_workspace(CONFIG, {
        "people.csv": "id,name,email\n1,Ana,ana@example.com\n2,Bo,bo@example.com\n3,Cy,cy@example.com\n",
        "sales.csv": (
            "order_id,email,day,amount,category\n"
            "o1,ANA@example.com,2024-12-01,100,Textile\n"
            "o2,ana@example.com,2023-06-01,50,Textile\n"
            "o3,ana@example.com,2024-02-01,20,Cuisine\n"
            "o4,bo@example.com,2024-12-20,10,Jardin\n"
        ),
    })
    result = ws.run(as_of=date(2024, 12, 31))
    assert result.datasets["contacts"]["aggregates"] == 3
    rows = {r["email"]: r for r in ws.adapter.to_arrow(ws.table("contacts")).to_pylist()}
    ana, bo, cy = rows["ana@example.com"], rows["bo@example.com"], rows["cy@example.com"]
    assert ana["textile_orders_1y"] == 1  # o2 is older than a year
    assert ana["spent_2024"] == 120.0 and bo["spent_2024"] == 10.0
    assert ana["categories"] == "Cuisine, Textile"
    assert ana["score_total_order_count"] == 3 and bo["score_total_order_count"] == 1
    assert ana["score_days_since_last_order"] == 30
    assert ana["score_rfm_frequency"] == 5 and bo["score_rfm_recency"] == 5
    assert cy["score_total_order_count"] is None and cy["spent_2024"] is None  # no orders
    assert cy["textile_orders_1y"] == 0  # a count of nothing is zero
    # computed columns may use aggregates and scores
    assert ana["big_spender"] is True and bo["big_spender"] is False and cy["big_spender"] is False
    assert ana["segment_label"] == f"{ana['score_rfm_segment']} ({ana['score_rfm']})"


PREDICTIVE = """
connections: [{name: files, type: local, path: data}]
sources:
  - name: people
    connection: files
    pattern: people.csv
    record_keys: [id]
  - name: sales
    connection: files
    pattern: sales.csv
    record_keys: [order_id]
    types: {amount: float, day: date}
    relations: [{column: email, to: contacts.email}]
datasets:
  - name: contacts
    deduplicate: true
    identity_keys: [{column: email}]
    columns: [{name: email, semantic: Email}]
    mappings: [{source: people, columns: {email: email}}]
    scores:
      library: [order_stats]
      predictive: true
      predictive_settings: {min_repeat_customers: 50SETTING}
  - name: orders
    columns:
      - {name: day, semantic: OrderDate}
      - {name: amount, semantic: OrderAmount}
    mappings: [{source: sales, columns: {order_id: order_id, day: day, amount: amount}}]
"""


def _purchases(n: int, end: date, seed: int = 4) -> str:
    """Orders of ``n`` customers who buy at a rate of their own and may stop after any order."""
    from datetime import timedelta

    import numpy as np

    rng = np.random.default_rng(seed)
    lines, k = ["order_id,email,day,amount"], 0
    for i in range(n):
        day = end - timedelta(days=int(rng.integers(0, 3 * 365)))
        rate, stop = rng.gamma(1.5, 1 / 100), rng.beta(1.2, 3.0)
        while day <= end:
            k += 1
            lines.append(f"o{k},c{i}@example.com,{day.isoformat()},{rng.gamma(4.0, 10.0):.2f}")
            if rng.random() < stop:
                break
            day += timedelta(days=1 + int(rng.exponential(1 / rate)))
    return "\n".join(lines) + "\n"


def test_predictive_scores_and_the_model_setting(make_workspace, tmp_path):
    end = date(2024, 12, 31)
    people = "id,email\n" + "".join(f"{i},c{i}@example.com\n" for i in range(400))
    ws = make_workspace(PREDICTIVE.replace("SETTING", ""), {"people.csv": people, "sales.csv": _purchases(400, end)})

    def one_time_buyers() -> list[tuple[int, float]]:
        ws.run(as_of=end)
        rows = ws.adapter.to_arrow(ws.table("contacts")).to_pylist()
        return sorted((r["score_days_since_last_order"], r["score_probability_alive"]) for r in rows
                      if r["score_total_order_count"] == 1)

    # MBG/NBD, the default: a one-time buyer of long ago is less likely to buy again than a recent one
    mbg = one_time_buyers()
    assert len(mbg) > 50
    assert all(p >= q for (_, p), (_, q) in zip(mbg, mbg[1:])) and mbg[-1][1] < mbg[0][1] < 1
    # BG/NBD on request: every one-time buyer is alive
    (tmp_path / "bgnbd.yaml").write_text(PREDICTIVE.replace("SETTING", ", model: bgnbd"))
    ws.apply(tmp_path / "bgnbd.yaml")
    assert {p for _, p in one_time_buyers()} == {1.0}
