"""The import benchmark generator: files as any CSV reader sees them, a valid configuration, and a run.

The CSV files are read back with the csv module only, independently of Tessera's own readers.
"""

from __future__ import annotations

import csv
import re
from collections import Counter

import pytest

from tessera.config.loader import load_yaml
from tessera.demo.import_bench import (
    CONTACTS_FILE,
    CONTACTS_HEADER,
    ORDERS_FILE,
    ORDERS_HEADER,
    generate_import_bench,
)
from tessera.workspace import Workspace

N_CONTACTS, N_ORDERS = 2_000, 10_000


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("import_bench")
    return out, generate_import_bench(out, n_contacts=N_CONTACTS, n_orders=N_ORDERS, seed=3)


def read(path, delimiter, encoding="utf-8"):
    with open(path, encoding=encoding, newline="") as f:
        reader = csv.reader(f, delimiter=delimiter)
        header = next(reader)
        return header, list(reader)


def test_counts(bench):
    _, info = bench
    assert info["n_contacts"] == N_CONTACTS
    assert info["n_duplicates"] == N_CONTACTS // 5
    assert info["n_persons"] == N_CONTACTS - N_CONTACTS // 5
    assert info["n_orders"] == N_ORDERS
    assert info["orders_of_contacts"] + info["guest_orders"] + info["orders_without_email"] == N_ORDERS
    assert info["orders_of_contacts"] > 0.95 * N_ORDERS


def test_contacts_file(bench):
    out, _ = bench
    raw = (out / CONTACTS_FILE).read_bytes()
    assert raw.startswith(b"\xef\xbb\xbfid_client;prenom;nom;courriel;telephone;date_naissance;ville\r\n")
    header, rows = read(out / CONTACTS_FILE, ";", encoding="utf-8-sig")
    assert header == CONTACTS_HEADER
    assert len(rows) == N_CONTACTS
    assert all(len(r) == len(header) for r in rows)
    ids = [r[0] for r in rows]
    assert len(set(ids)) == N_CONTACTS
    emails = [r[3].strip().lower() for r in rows if r[3]]
    phones = [re.sub(r"\D", "", r[4])[-9:] for r in rows if r[4]]
    assert all(r[3] or r[4] for r in rows)  # every row has an identity key
    assert 0.8 < len(emails) / N_CONTACTS < 0.95
    assert 0.65 < len(phones) / N_CONTACTS < 0.85
    # persons appear on several rows (same e-mail or phone), in varied writings
    assert max(Counter(emails).values()) > 1 and max(Counter(phones).values()) > 1
    assert any(r[3] != r[3].strip().lower() for r in rows if r[3])
    assert len({re.sub(r"\d", "9", r[4]) for r in rows if r[4]}) >= 5
    dates = [r[5] for r in rows if r[5]]
    assert dates and all(re.fullmatch(r"\d\d[/.-]\d\d[/.-]\d{4}", d) for d in dates)
    assert any(int(d[:2]) > 12 for d in dates)  # day first


def test_orders_file(bench):
    out, info = bench
    header, rows = read(out / ORDERS_FILE, ",")
    assert header == ORDERS_HEADER
    assert len(rows) == N_ORDERS
    assert len({r[0] for r in rows}) == N_ORDERS
    assert all(re.fullmatch(r"\d+\.\d\d", r[3]) and re.fullmatch(r"\d+\.\d\d", r[4]) for r in rows)
    assert all(float(r[4]) < float(r[3]) for r in rows)
    assert {r[5] for r in rows} == {"web", "mobile", "store"}
    assert all(bool(r[6]) == (r[5] == "store") for r in rows)
    _, contacts = read(out / CONTACTS_FILE, ";", encoding="utf-8-sig")
    known = {r[3].strip().lower() for r in contacts if r[3]}
    emails = [r[1] for r in rows if r[1]]
    assert sum(e.strip().lower() in known for e in emails) == info["orders_of_contacts"]
    assert any(e != e.strip().lower() for e in emails)


def test_workspace_yaml_validates_and_runs(bench, tmp_path):
    out, info = bench
    config = load_yaml(out / "workspace.yaml")
    assert [s.name for s in config.sources] == ["crm_contacts", "eshop_orders"]
    assert [d.name for d in config.datasets] == ["contacts", "orders"]
    assert next(d for d in config.datasets if d.name == "contacts").deduplicate

    ws = Workspace.init(tmp_path / "ws")
    try:
        ws.apply(out / "workspace.yaml")
        result = ws.run()
        assert result.status == "succeeded"
        steps = {s["step"]: s for s in result.steps}
        assert steps["import"]["rows_read"] == N_CONTACTS + N_ORDERS
        assert steps["import"]["rows_rejected"] == 0
        assert steps["stage"]["rows_staged"] == N_CONTACTS + N_ORDERS
        assert result.datasets["contacts"]["unified"] == info["n_persons"]
        orders = ws.table("orders")
        linked = ws.adapter.execute(orders.tessera_contacts_id.notnull().sum())
        assert ws.adapter.count(orders) == N_ORDERS
        assert linked > 0.9 * N_ORDERS
        assert linked == info["orders_of_contacts"]
    finally:
        ws.close()
