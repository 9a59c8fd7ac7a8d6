"""Large files are profiled on their first lines, and relations still see every key of the file."""

from __future__ import annotations

import duckdb

from tessera.engine.sample import SAMPLE_BYTES
from tessera.setup import propose_config
from tessera.setup.columns import date_rule
from tessera.setup.profile import ColumnProfile
from tessera.setup.sources import series_key


def test_a_large_file_is_sampled_and_relations_read_its_whole_key(tmp_path):
    con = duckdb.connect()
    con.execute(f"""COPY (SELECT 'C' || lpad(i::VARCHAR, 6, '0') AS customer_id, 'client' || i || '@exemple.fr' AS email,
                           'Nom' || (i % 300) AS last_name FROM range(60000) t(i))
                    TO '{tmp_path / "customers.csv"}' (HEADER)""")
    # every order points at a customer far beyond the sampled first lines
    con.execute(f"""COPY (SELECT 'O' || i AS order_id, 'C' || lpad((59000 + i % 1000)::VARCHAR, 6, '0') AS customer_id,
                           (DATE '2024-01-01' + (i % 300)::INT)::VARCHAR AS order_date, (10 + i % 90)::VARCHAR || '.50'
                           AS amount FROM range(3000) t(i)) TO '{tmp_path / "orders.csv"}' (HEADER)""")
    assert (tmp_path / "customers.csv").stat().st_size > SAMPLE_BYTES
    proposal = propose_config(tmp_path)
    customers = next(s for s in proposal.sources if s["files"] == ["customers.csv"])
    assert 50_000 < customers["rows"] < 70_000  # estimated from the sample
    assert "profiled on the first" in proposal.yaml
    orders = next(s for s in proposal.config["sources"] if s["pattern"] == "orders.csv")
    assert orders["relations"] == [{"column": "customer_id", "to": f"{customers['name']}.customer_id"}]
    assert "100.0% of orders_file.customer_id found in customers.customer_id" in proposal.yaml


def _dates(first_gt12: int, second_gt12: int) -> ColumnProfile:
    p = ColumnProfile("d", filled=100, distinct=100, profiled=100, examples=["01/02/2020"])
    p.shapes = {"dmy": 100, "dmy_date": 100, "first_gt12": first_gt12, "second_gt12": second_gt12}
    return p


def test_day_or_month_first_is_decided_by_the_values_and_a_tie_is_a_doubt():
    assert date_rule(_dates(30, 0), None)[0] == {"date": {"format": "%d/%m/%Y"}}
    assert date_rule(_dates(0, 30), None)[0] == {"date": {"format": "%m/%d/%Y"}}
    rule, _, doubt, _ = date_rule(_dates(0, 0), False)  # nothing above 12: the country decides, and says so
    assert rule == {"date": {"format": "%m/%d/%Y"}} and "no date tells day-first from month-first" in doubt
    assert "mixes day-first and month-first" in date_rule(_dates(20, 3), None)[2]


def test_dated_names_form_series():
    assert series_key("crm/contacts_2024-01.csv") == series_key("crm/contacts_2024-02.csv") \
        == ("crm", "csv", "contacts_#")
    assert series_key("crm/contacts.csv") is None
