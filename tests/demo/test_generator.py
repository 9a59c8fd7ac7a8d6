"""The Maison Lumière demo company and the identity benchmark generator.

The files are read back with the csv / json modules only, so these tests check the data
as any loader would see it, independently of Tessera's own readers.
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter, defaultdict
from pathlib import Path

import phonenumbers
import pyarrow.parquet as pq
import pytest
import yaml

from tessera.config.models import WorkspaceConfig
from tessera.demo.generator import (
    CRM_FILE,
    CRM_HEADER,
    ESHOP_CUSTOMERS_FILE,
    ORDER_ITEMS_FILE,
    ORDERS_FILE,
    POS_CUSTOMERS_FILE,
    PRODUCTS_FILE,
    STORES_FILE,
    TICKET_ITEMS_FILE,
    TICKETS_FILE,
    generate,
)
from tessera.demo.identity_bench import generate_identity_bench

SIZE = 300
CONTACT_SOURCES = ("crm_contacts", "eshop_customers", "pos_customers")


# --------------------------------------------------------------------------- readers


def read_csv(path: Path, delimiter: str, encoding: str = "utf-8") -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and ``(physical start line, fields)`` of every row; the header is line 1."""
    with open(path, encoding=encoding, newline="") as f:
        reader = csv.reader(f, delimiter=delimiter)
        header = next(reader)
        rows, last = [], reader.line_num
        for fields in reader:
            rows.append((last + 1, fields))
            last = reader.line_num
    return header, rows


def read_crm(out: Path):
    return read_csv(out / CRM_FILE, ";", encoding="utf-8-sig")


def read_ndjson(path: Path) -> list[tuple[int, dict | None]]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            rows.append((n, json.loads(line)))
        except json.JSONDecodeError:
            rows.append((n, None))
    return rows


def read_truth(out: Path) -> list[dict]:
    with open(out / "truth.csv", encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def malformed_lines(info, file: str) -> set[int]:
    return {line for f, line, _ in info.malformed if f == file}


def e164(raw: str | None) -> str | None:
    if raw is None or not raw.strip():
        return None
    try:
        number = phonenumbers.parse(raw, "FR")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def contact_records(out: Path, info) -> list[dict]:
    """Every contact record not rejected: source, key, raw e-mail and phone."""
    rejected = set(info.rejected)
    records = []
    _, crm = read_crm(out)
    for _, f in crm:
        records.append({"source": "crm_contacts", "key": f[0], "email": f[4], "phone": f[5]})
    for acc in json.loads((out / ESHOP_CUSTOMERS_FILE).read_text(encoding="utf-8")):
        records.append({"source": "eshop_customers", "key": acc["customer_id"], "email": acc["email"],
                        "phone": acc["phone"]})
    _, pos = read_csv(out / POS_CUSTOMERS_FILE, ",")
    bad_pos = malformed_lines(info, POS_CUSTOMERS_FILE)
    for line, f in pos:
        if line in bad_pos and f[0]:  # the second row of a card written twice
            continue
        records.append({"source": "pos_customers", "key": f[0], "email": f[3], "phone": f[4]})
    return [r for r in records if (r["source"], r["key"]) not in rejected]


def all_files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return out, generate(out, size=SIZE, seed=7)


# --------------------------------------------------------------------------- demo company


def test_same_seed_same_bytes(demo, tmp_path):
    out, _ = demo
    again = generate(tmp_path / "again", size=SIZE, seed=7)
    first, second = all_files(out), all_files(again.out_dir)
    assert sorted(first) == sorted(second)
    assert len(first) == 11
    for name in first:
        assert first[name] == second[name], name
    other = generate(tmp_path / "other", size=SIZE, seed=8)
    assert all_files(other.out_dir)[CRM_FILE] != first[CRM_FILE]


def test_workspace_yaml_validates_and_matches_the_files(demo):
    out, info = demo
    config = WorkspaceConfig.model_validate(yaml.safe_load(info.workspace_path.read_text(encoding="utf-8")))
    assert [c.name for c in config.connections] == ["demo_files"]
    assert config.connections[0].path == "data"
    sources = {s.name: s for s in config.sources}
    assert set(sources) == {"crm_contacts", "eshop_customers", "eshop_orders", "eshop_order_items",
                            "pos_customers", "pos_tickets", "pos_ticket_items", "products", "stores"}
    datasets = {d.name: d for d in config.datasets}
    assert set(datasets) == {"contacts", "orders", "order_items", "products", "stores"}

    # the columns each source names exist in its file
    def columns_of(source) -> set[str]:
        [path] = sorted((out / "data").glob(source.pattern))
        if path.suffix == ".json":
            return set(json.loads(path.read_text(encoding="utf-8"))[0])
        if path.suffix == ".ndjson":
            return set(json.loads(path.read_text(encoding="utf-8").splitlines()[0]))
        encoding = "utf-8-sig" if source.name == "crm_contacts" else "utf-8"
        return set(read_csv(path, source.csv.delimiter or ",", encoding)[0])

    for source in config.sources:
        cols = columns_of(source)
        named = set(source.record_keys) | set(source.types) | set(source.normalize)
        named |= {r.column for r in source.relations}
        assert named <= cols, (source.name, named - cols)
        for relation in source.relations:
            target, column = relation.to.split(".")
            if target in sources:
                assert column in columns_of(sources[target])
            else:
                assert column in {c.name for c in datasets[target].columns}
    for dataset in config.datasets:
        names = {c.name for c in dataset.columns}
        assert {k.column for k in dataset.identity_keys} <= names
        assert dataset.date_column is None or dataset.date_column in names
        for mapping in dataset.mappings:
            assert set(mapping.columns) <= names, (dataset.name, set(mapping.columns) - names)
            assert set(mapping.columns.values()) <= columns_of(sources[mapping.source]), mapping.source
        assert set(dataset.source_priority) <= {m.source for m in dataset.mappings}

    contacts = datasets["contacts"]
    assert contacts.deduplicate
    assert [(k.column, k.limit) for k in contacts.identity_keys] == [("email", None), ("phone", None),
                                                                      ("loyalty_card", 1)]
    assert contacts.shared_value_threshold == info.shared_value_threshold
    assert "test@test.com" in contacts.blocked_values
    assert contacts.source_priority == list(CONTACT_SOURCES)
    assert sources["pos_tickets"].types == {"card_number": "string", "ticket_date": "timestamp",
                                            "amount": "float", "discount": "float"}


def test_file_formats(demo):
    out, _ = demo
    crm = (out / CRM_FILE).read_bytes()
    assert crm.startswith(b"\xef\xbb\xbf" + ";".join(CRM_HEADER).encode() + b"\r\n")
    header, rows = read_crm(out)
    assert header == CRM_HEADER
    assert crm.count(b"\r\n") == len(rows) + 1  # CRLF rows; the only bare LF is inside quotes
    assert any(";" in f[8] for _, f in rows if len(f) == len(CRM_HEADER))
    assert any("\n" in f[12] for _, f in rows if len(f) == len(CRM_HEADER))
    assert any(";" in f[12] for _, f in rows if len(f) == len(CRM_HEADER))
    valid = [f for _, f in rows if len(f) == len(CRM_HEADER)]
    assert {"France", "FR", "france", "Belgique", "BE", "Espagne"} <= {f[9] for f in valid}
    assert all(re.fullmatch(r"\d\d/\d\d/\d{4}", f[6]) for f in valid if f[6])
    assert all(re.fullmatch(r"\d\d/\d\d/\d{4} \d\d:\d\d", f[11]) for f in valid)

    pos = (out / POS_CUSTOMERS_FILE).read_bytes()
    assert not pos.startswith(b"\xef\xbb\xbf") and b"\r" not in pos
    assert pos.startswith(b"card_number,first_name,last_name,email,mobile,store_id,signup_date\n")
    accounts = json.loads((out / ESHOP_CUSTOMERS_FILE).read_text(encoding="utf-8"))
    assert set(accounts[0]) == {"customer_id", "email", "first_name", "last_name", "phone", "birthdate",
                                "country", "created_at", "updated_at", "newsletter"}
    assert all(re.fullmatch(r"W\d{6}", a["customer_id"]) for a in accounts)
    assert {a["country"] for a in accounts} <= {"FR", "BE", "ES"}
    orders = [o for _, o in read_ndjson(out / ORDERS_FILE) if o]
    assert set(orders[0]) == {"order_id", "customer_id", "customer_email", "order_date", "total_amount",
                              "discount_amount", "channel", "status"}
    assert {o["channel"] for o in orders} == {"web", "app"}

    # references between files
    customer_ids = {a["customer_id"] for a in accounts}
    assert {o["customer_id"] for o in orders} - customer_ids == {None}  # guest checkouts
    order_ids = {o["order_id"] for o in orders}
    items = [i for _, i in read_ndjson(out / ORDER_ITEMS_FILE)]
    _, products = read_csv(out / PRODUCTS_FILE, ",")
    product_ids = {f[0] for _, f in products}
    assert 140 <= len(products) <= 160
    assert {f[2] for _, f in products} == {"Luminaires", "Textile", "Cuisine", "Décoration", "Mobilier", "Jardin"}
    assert {i["product_id"] for i in items} <= product_ids
    assert len({i["order_id"] for i in items} - order_ids) == 1  # the items of the truncated order
    _, stores = read_csv(out / STORES_FILE, ",")
    store_ids = {f[0] for _, f in stores}
    _, tickets = read_csv(out / TICKETS_FILE, ",")
    _, pos_rows = read_csv(out / POS_CUSTOMERS_FILE, ",")
    cards = {f[0] for _, f in pos_rows}
    assert {f[1] for _, f in tickets} <= cards | {""}
    assert any(f[1] == "" for _, f in tickets)  # anonymous tickets
    assert {f[2] for _, f in tickets} <= store_ids
    _, ticket_items = read_csv(out / TICKET_ITEMS_FILE, ",")
    assert {f[0] for _, f in ticket_items} == {f[0] for _, f in tickets}


def test_truth_covers_every_contact_record(demo):
    out, info = demo
    truth = read_truth(out)
    by_source = defaultdict(set)
    for row in truth:
        by_source[row["source"]].add(row["record_key"])
    assert len(truth) == sum(len(v) for v in by_source.values())  # one row per record
    _, crm = read_crm(out)
    assert by_source["crm_contacts"] == {f[0] for _, f in crm}
    accounts = json.loads((out / ESHOP_CUSTOMERS_FILE).read_text(encoding="utf-8"))
    assert by_source["eshop_customers"] == {a["customer_id"] for a in accounts}
    _, pos = read_csv(out / POS_CUSTOMERS_FILE, ",")
    assert by_source["pos_customers"] == {f[0] for _, f in pos}
    assert "" in by_source["pos_customers"]  # the row without card number is listed too
    assert info.contact_records == {s: len(by_source[s]) for s in CONTACT_SOURCES}
    assert len({row["person_id"] for row in truth}) == SIZE  # every person is somewhere
    for ref in info.rejected + info.unlinkable:
        assert ref[1] in by_source[ref[0]]


def test_malformed_rows_are_where_reported(demo):
    out, info = demo
    files = {f for f, _, _ in info.malformed}
    assert files == {CRM_FILE, ORDERS_FILE, POS_CUSTOMERS_FILE, TICKETS_FILE}
    assert len(info.malformed) == 6

    _, crm = read_crm(out)
    wrong = {line: len(f) for line, f in crm if len(f) != len(CRM_HEADER)}
    assert set(wrong) == malformed_lines(info, CRM_FILE)
    assert sorted(wrong.values()) == [8, len(CRM_HEADER) + 1]
    too_many = next(line for line, n in wrong.items() if n > len(CRM_HEADER))
    assert too_many <= 10  # near the top
    crm_keys = {line: f[0] for line, f in crm}
    assert {("crm_contacts", crm_keys[line]) for line in wrong} <= set(info.rejected)

    orders = read_ndjson(out / ORDERS_FILE)
    assert {n for n, o in orders if o is None} == malformed_lines(info, ORDERS_FILE)

    _, pos = read_csv(out / POS_CUSTOMERS_FILE, ",")
    bad, seen = set(), set()
    for line, f in pos:
        if f[0] == "" or f[0] in seen:
            bad.add(line)
        seen.add(f[0])
    assert bad == malformed_lines(info, POS_CUSTOMERS_FILE)
    assert sum(1 for _, f in pos if f[0] == info.duplicated_card) == 2
    assert ("pos_customers", "") in info.rejected

    _, tickets = read_csv(out / TICKETS_FILE, ",")
    not_numbers = set()
    for line, f in tickets:
        assert len(f) == 6
        try:
            float(f[4])
            float(f[5])
        except ValueError:
            not_numbers.add(line)
            assert f[4] == "12,5O"
    assert not_numbers == malformed_lines(info, TICKETS_FILE)

    # the other files are clean
    for name in (ORDER_ITEMS_FILE,):
        assert all(o is not None for _, o in read_ndjson(out / name))
    for name in (TICKET_ITEMS_FILE, PRODUCTS_FILE, STORES_FILE):
        header, rows = read_csv(out / name, ",")
        assert all(len(f) == len(header) for _, f in rows)


def test_identity_keys_link_persons_and_only_them(demo):
    out, info = demo
    person_of = {(r["source"], r["record_key"]): r["person_id"] for r in read_truth(out)}
    records = contact_records(out, info)
    blocked = set(info.blocked_values)
    emails, phones = [], []
    for r in records:
        r["person"] = person_of[(r["source"], r["key"])]
        email = (r["email"] or "").strip().lower() or None
        r["email_key"] = None if email in blocked else email
        raw_phone = (r["phone"] or "").strip() or None
        r["phone_key"] = e164(raw_phone)
        if raw_phone and raw_phone not in blocked:
            assert r["phone_key"], f"not a valid phone number: {raw_phone!r}"
        emails.append(r["email_key"])
        phones.append(r["phone_key"])

    # shared phones: exactly the reported household landlines, above the threshold
    phone_count = Counter(p for p in phones if p)
    shared = {p: n for p, n in phone_count.items() if n > info.shared_value_threshold}
    assert shared == info.shared_phones
    assert len(shared) == len(info.households) >= 2
    for p in shared:
        owners = {r["person"] for r in records if r["phone_key"] == p}
        assert len(owners) >= 4
        assert len({r["email_key"] for r in records if r["phone_key"] == p and r["email_key"]}) >= len(owners)

    # junk values
    pos_junk = {r["person"] for r in records if r["source"] == "pos_customers"
                and (r["email"] or "").strip().lower() == "test@test.com"}
    assert len(pos_junk) == 3
    assert any(r["phone"] == "0000000000" for r in records)

    # precision: a usable key never belongs to two persons
    owners = defaultdict(set)
    for r in records:
        if r["email_key"]:
            owners["e:" + r["email_key"]].add(r["person"])
        if r["phone_key"] and r["phone_key"] not in shared:
            owners["p:" + r["phone_key"]].add(r["person"])
    assert all(len(v) == 1 for v in owners.values())

    # recall: the records of a person are connected, except the documented ones
    unlinkable = set(info.unlinkable)
    parent = list(range(len(records)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first = {}
    for i, r in enumerate(records):
        for key in ("e:" + r["email_key"] if r["email_key"] else None,
                    "p:" + r["phone_key"] if r["phone_key"] and r["phone_key"] not in shared else None):
            if key:
                if key in first:
                    parent[find(i)] = find(first[key])
                else:
                    first[key] = i
    components = defaultdict(set)
    for i, r in enumerate(records):
        if (r["source"], r["key"]) in unlinkable:
            assert not r["email"] and not r["phone"]
            continue
        components[r["person"]].add(find(i))
    assert all(len(c) == 1 for c in components.values())
    assert len(unlinkable) == max(2, info.size // 500)

    # people with two CRM entries share an e-mail
    crm_email = {r["key"]: r["email_key"] for r in records if r["source"] == "crm_contacts"}
    assert len(info.crm_duplicates) >= 2
    for pid, a, b in info.crm_duplicates:
        assert person_of[("crm_contacts", a)] == person_of[("crm_contacts", b)] == pid
        assert crm_email[a] and crm_email[a] == crm_email[b]


def test_variations_across_systems(demo):
    out, info = demo
    records = contact_records(out, info)
    raw_emails = [r["email"] for r in records if r["email"]]
    assert any(e != e.strip() for e in raw_emails)
    assert any(e.strip() != e.strip().lower() for e in raw_emails)
    raw_phones = [r["phone"] for r in records if r["phone"]]
    assert any(p.startswith("0033") for p in raw_phones)
    assert any("(0)" in p for p in raw_phones)
    assert any(re.fullmatch(r"0\d(\.\d\d){4}", p) for p in raw_phones)
    assert any(re.fullmatch(r"0\d{9}", p) for p in raw_phones)


def test_size_scales_the_data(demo, tmp_path):
    _, small = demo
    big = generate(tmp_path / "big", size=4 * SIZE, seed=7)
    for name in (CRM_FILE, ESHOP_CUSTOMERS_FILE, POS_CUSTOMERS_FILE):
        ratio = big.rows[name] / small.rows[name]
        assert 3.2 < ratio < 4.8, (name, ratio)
    for name in (ORDERS_FILE, ORDER_ITEMS_FILE, TICKETS_FILE, TICKET_ITEMS_FILE):  # more spread
        ratio = big.rows[name] / small.rows[name]
        assert 2.8 < ratio < 5.5, (name, ratio)
    assert sum(big.contact_records.values()) > 3.2 * sum(small.contact_records.values())
    assert big.rows[PRODUCTS_FILE] == small.rows[PRODUCTS_FILE]


def test_proportions(tmp_path):
    info = generate(tmp_path, size=2000, seed=11)
    truth = read_truth(tmp_path)
    persons = defaultdict(set)
    for row in truth:
        persons[row["source"]].add(row["person_id"])
    assert 0.62 < len(persons["crm_contacts"]) / 2000 < 0.78
    assert 0.52 < len(persons["eshop_customers"]) / 2000 < 0.68
    assert 0.42 < len(persons["pos_customers"]) / 2000 < 0.58
    _, pos = read_csv(tmp_path / POS_CUSTOMERS_FILE, ",")
    missing_email = sum(1 for _, f in pos if not f[3]) / len(pos)
    missing_phone = sum(1 for _, f in pos if not f[4]) / len(pos)
    assert 0.3 < missing_email < 0.5
    assert missing_phone < missing_email
    assert len(info.households) == 5 and len(info.crm_duplicates) == 8


def test_small_size_is_refused(tmp_path):
    with pytest.raises(ValueError):
        generate(tmp_path, size=20)


# --------------------------------------------------------------------------- identity benchmark


def test_identity_bench_counts_and_links(tmp_path):
    n = 20_000
    result = generate_identity_bench(tmp_path, n_records=n, seed=3)
    assert result["n_records"] == n and result["n_persons"] == 16_000
    assert result["duplicate_rate"] == pytest.approx(0.2)
    config = WorkspaceConfig.model_validate(yaml.safe_load((tmp_path / "workspace.yaml").read_text()))
    assert [s.name for s in config.sources] == ["src_a", "src_b", "src_c"]
    assert [k.column for k in config.datasets[0].identity_keys] == ["email", "phone", "customer_id"]

    truth = pq.read_table(tmp_path / "truth.parquet").to_pylist()
    assert len(truth) == n
    person_of = {(t["source"], t["record_key"]): t["person_id"] for t in truth}
    assert len(person_of) == n
    assert len(set(person_of.values())) == 16_000

    records = []
    for name in ("src_a", "src_b", "src_c"):
        table = pq.read_table(tmp_path / f"{name}.parquet")
        assert table.num_rows == result["per_source"][name] > 0
        for row in table.to_pylist():
            row["person"] = person_of[(name, row["record_id"])]
            row["source"] = name
            records.append(row)
    assert len(records) == n

    # duplicates inside one source and across sources
    by_person = defaultdict(list)
    for r in records:
        by_person[r["person"]].append(r["source"])
    multi = [s for s in by_person.values() if len(s) > 1]
    assert any(len(set(s)) < len(s) for s in multi)
    assert any(len(set(s)) > 1 for s in multi)
    assert sum(len(s) - 1 for s in multi) == n - 16_000

    # keys: at least one per record, never shared by two persons, connecting each person
    rate = sum(1 for r in records if r["customer_id"]) / n
    assert 0.45 < rate < 0.6
    keys = []
    owners = defaultdict(set)
    for r in records:
        k = []
        if r["email"]:
            k.append("e:" + r["email"].strip().lower())
        if r["phone"]:
            p = e164(r["phone"])
            assert p, r["phone"]
            k.append("p:" + p)
        if r["customer_id"]:
            k.append("c:" + r["customer_id"])
        assert k
        keys.append(k)
        for key in k:
            owners[key].add(r["person"])
    assert all(len(v) == 1 for v in owners.values())
    assert any(r["email"] and r["email"] != r["email"].strip().lower() for r in records)
    parent = list(range(n))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first = {}
    for i, k in enumerate(keys):
        for key in k:
            if key in first:
                parent[find(i)] = find(first[key])
            else:
                first[key] = i
    roots = defaultdict(set)
    for i, r in enumerate(records):
        roots[r["person"]].add(find(i))
    assert all(len(v) == 1 for v in roots.values())
    expected_pairs = sum(len(s) * (len(s) - 1) // 2 for s in by_person.values())
    assert result["true_pairs"] == expected_pairs


def test_identity_bench_csv(tmp_path):
    result = generate_identity_bench(tmp_path, n_records=1000, seed=5, fmt="csv")
    total = 0
    for name in ("src_a", "src_b", "src_c"):
        with open(tmp_path / f"{name}.csv", encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
        assert list(rows[0]) == ["record_id", "first_name", "last_name", "email", "phone", "customer_id",
                                 "updated_at"]
        assert len(rows) == result["per_source"][name]
        total += len(rows)
    assert total == 1000
    assert pq.read_table(tmp_path / "truth.parquet").num_rows == 1000
    config = WorkspaceConfig.model_validate(yaml.safe_load((tmp_path / "workspace.yaml").read_text()))
    assert {s.format for s in config.sources} == {"csv"}
    again = generate_identity_bench(tmp_path / "again", n_records=1000, seed=5, fmt="csv")
    assert again["per_source"] == result["per_source"]
    assert (tmp_path / "src_b.csv").read_bytes() == (tmp_path / "again" / "src_b.csv").read_bytes()
