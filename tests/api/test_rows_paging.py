"""Pages of a published dataset's rows with a filter and a sort, on every engine: paging through
the cursors gives each row of the filter once, in the order of the sort (ties broken by
``tessera_id``, empty values last), whatever the page size: the page's rows are read by their
ids (through the indexes a server makes) with a query per page size, a short page's ids padded."""

from __future__ import annotations

import pytest

from tessera.browse.rows import dataset_rows

PEOPLE = 130
CONFIG = """\
connections:
  - {name: files, type: local, path: data}
sources:
  - name: crm
    connection: files
    pattern: crm.csv
    record_keys: [id]
    types: {score: integer}
datasets:
  - name: people
    entity: contacts
    deduplicate: true
    identity_keys: [{column: email}]
    columns:
      - {name: email, semantic: Email}
      - {name: last_name}
      - {name: country}
      - {name: score}
    mappings:
      - source: crm
        columns: {email: email, last_name: last_name, country: country, score: score}
"""


def crm() -> str:
    lines = ["id,email,last_name,country,score"]
    for i in range(PEOPLE):
        name = ["Martin", "moreau", "Bernard", "Mercier", "Durand"][i % 5]
        country = ["FR", "BE", "", "CH"][i % 4]
        score = "" if i % 9 == 0 else str(i % 13)  # ties, and empty scores
        lines.append(f"{i},p{i}@example.com,{name},{country},{score}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def ws(make_workspace):
    ws = make_workspace(CONFIG, {"crm.csv": crm()}, run=True)
    ws.index_for_reads()  # as a server does: the page's rows are read through the tessera_id index
    return ws


def pages(ws, limit: int, **query) -> list[dict]:
    rows, cursor = [], None
    for _ in range(PEOPLE + 2):
        page = dataset_rows(ws, "people", limit=limit, cursor=cursor, **query)
        assert page["count"] == len(page["data"]) <= limit
        rows += page["data"]
        cursor = page["next_cursor"]
        if cursor is None:
            return rows
    raise AssertionError("paging did not end")


def expected(ws, keep, desc: bool) -> list[str]:
    """The ids of the rows ``keep`` keeps, by score (empty last), then tessera_id, computed here."""
    everyone = ws.adapter.to_arrow(ws.table("people")).to_pylist()
    kept = [r for r in everyone if keep(r)]
    present = sorted((r for r in kept if r["score"] is not None), key=lambda r: r["tessera_id"])
    present.sort(key=lambda r: r["score"], reverse=desc)  # stable: tessera_id stays ascending in ties
    empty = sorted((r for r in kept if r["score"] is None), key=lambda r: r["tessera_id"])
    return [r["tessera_id"] for r in present + empty]


def test_filtered_sorted_pages_give_each_row_once_in_order(ws, engine):
    conditions = [{"column": "last_name", "op": "starts_with", "value": "M"},
                  {"column": "country", "op": "in", "value": ["FR", "BE"]}]
    sql = "score >= 2"
    everything = dataset_rows(ws, "people", conditions=conditions, sql=sql, limit=1000, total=True)

    def all_of(r):
        return (r["last_name"].lower().startswith("m") and r["country"] in ("FR", "BE")
                and r["score"] is not None and r["score"] >= 2)

    want = expected(ws, all_of, desc=True)
    assert 20 < len(want) < PEOPLE and everything["total"] == len(want)
    emails = {r["tessera_id"]: r["email"] for r in everything["data"]}
    # pages shorter than the queries of their point reads, as long, and read by one list
    for limit in (7, 20, 101):
        got = pages(ws, limit, conditions=conditions, sql=sql, sort="-score")
        assert [r["tessera_id"] for r in got] == want, limit
        assert all({"tessera_id", "email", "last_name", "country", "score"} <= set(r) for r in got)
        assert [r["email"] for r in got] == [emails[t] for t in want]
    # no filter: a first page of more than a hundred rows, then the last ones
    got = pages(ws, 101, sort="-score")
    assert [r["tessera_id"] for r in got] == expected(ws, lambda r: True, desc=True)

    # any of the conditions, some columns only
    conditions = [{"column": "country", "op": "=", "value": "CH"}, {"sql": "score >= 11"}]

    def any_of(r):
        return r["country"] == "CH" or (r["score"] is not None and r["score"] >= 11)

    want = expected(ws, any_of, desc=False)
    got = pages(ws, 5, conditions=conditions, match="any", sort="score", columns=["email"])
    assert len(got) == len(want) > 20
    everyone = {r["tessera_id"]: r["email"] for r in ws.adapter.to_arrow(ws.table("people")).to_pylist()}
    assert [r["email"] for r in got] == [everyone[t] for t in want]
    assert all(set(r) == {"email"} for r in got)
