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
