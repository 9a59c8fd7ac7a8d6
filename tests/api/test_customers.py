"""A customer found by tessera_id or by any identity value, typed as a person types it: the value
is normalized as at import, and found in every source record of the customer."""

from __future__ import annotations


def test_lookup_by_a_differently_written_email_and_phone(shop):
    viewer = shop["clients"]["viewer"]
    # person 3 is in the CRM (person3@example.com, 06 13 23 33 43) and the e-shop (PERSON3@EXAMPLE.COM)
    by_email = viewer.get("/api/customers", params={"email": "  Person3@EXAMPLE.com "}).json()
    assert by_email["count"] == 1 and by_email["searched"] == {"email": ["person3@example.com"]}
    customer = by_email["data"][0]
    assert customer["crm_id"] == "C003" and customer["eshop_id"] == "E003"
    for typed in ("06 13 23 33 43", "+33 6 13 23 33 43", "0613233343", "+33613233343"):
        by_phone = viewer.get("/api/customers", params={"phone": typed}).json()
        assert by_phone["searched"] == {"phone": ["+33613233343"]}, typed
        assert [c["tessera_id"] for c in by_phone["data"]] == [customer["tessera_id"]], typed
    by_id = viewer.get("/api/customers", params={"tessera_id": customer["tessera_id"]}).json()
    assert by_id["data"] == [customer]
    by_record = viewer.get("/api/customers", params={"id": "E003"}).json()
    assert [c["tessera_id"] for c in by_record["data"]] == [customer["tessera_id"]]


def test_no_customer_and_bad_lookups(shop):
    viewer = shop["clients"]["viewer"]
    none = viewer.get("/api/customers", params={"email": "nobody@example.com"}).json()
    assert none == {"data": [], "count": 0, "searched": {"email": ["nobody@example.com"]}}
    assert viewer.get("/api/customers", params={"phone": "not a phone"}).json()["count"] == 0
    both = viewer.get("/api/customers", params={"email": "a@example.com", "phone": "0600000000"})
    assert both.status_code == 400 and "give one of" in both.json()["error"]
    assert viewer.get("/api/customers").status_code == 400
    assert viewer.get("/api/customers", params={"email": "a@example.com", "dataset": "nope"}).status_code == 404


def test_the_python_twins_of_the_rules_agree_with_the_engine(shop):
    """A lookup normalizes one value with the Python twins of the rules; the engine's rules, which
    the import ran, are the reference: one query per chain of rules of the shop, every value at once."""
    import ibis

    from tessera.browse.customers import _in_python
    from tessera.normalize.rules import apply_rules

    ws = shop["app"].state.owner.workspace.reader()
    values = [" Ada@Example.COM ", "mailto:ada@example.com", "a d a@example.com", "N/A", "", "  ", "null",
              "06 12 34 56 78", "+33 6 12 34 56 78", "0033612345678", "612345678", "+44 20 7946 0958",
              "01.23.45.67.89", "12", "not a phone", "\u00a00612345678\u00a0", "+1 (212) 555-0100"]
    chains = [rules for s in ws.config.sources for rules in s.normalize.values()]
    chains.append([{"null_like": True}, {"trim": True}, {"upper": True}, {"lower": True}])
    from tessera.config.models import NormalizationRule

    for chain in chains:
        rules = [r if isinstance(r, NormalizationRule) else NormalizationRule.model_validate(r) for r in chain]
        ok, _ = _in_python("x", rules)
        if not ok:
            continue  # a rule without a twin: lookups ask the engine
        t = ibis.memtable({"v": values})
        engine = ws.adapter.to_arrow(t.select(n=apply_rules(t.v, rules, ws.adapter.dialect))).column("n").to_pylist()
        assert [_in_python(v, rules)[1] for v in values] == engine, [r.kind for r in rules]
