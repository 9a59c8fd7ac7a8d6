"""The guard of a shared value compares the records that share it: their evidence alone is read,
and a refused value becomes one value per person (the records of one person still share theirs)."""

from __future__ import annotations

import pyarrow as pa

from tessera.engine.duckdb import DuckDBAdapter
from tessera.identity.resolve import IdentityKey, guard, key_values

LANDLINE = "+33140000001"


def test_refused_landline_split_by_person_and_evidence_of_its_carriers_only(tmp_path):
    adapter = DuckDBAdapter(str(tmp_path / "w.duckdb"))
    people = [  # first name, e-mail, phone
        ("Ann", "ann@house.fr", LANDLINE), ("ann", "ann@house.fr", LANDLINE), ("Bob", "bob@house.fr", LANDLINE),
        (None, "dan@house.fr", LANDLINE), ("Eve", "eve@else.fr", "+33611111111"), ("Flo", "flo@else.fr", None),
    ]
    staged = adapter.create_table("staged", pa.table({
        "_idx": pa.array(range(len(people)), pa.int64()),
        "first_name": [p[0] for p in people], "email": [p[1] for p in people], "phone": [p[2] for p in people]}))
    keys = [IdentityKey("email", "Email", None), IdentityKey("phone", "Phone", None, guarded=True)]
    kv = adapter.create_table("t_keys", key_values(staged, keys, []), temp=True)
    new_kv, refused = guard(adapter, staged, kv, keys, {"FirstName": "first_name", "Email": "email"}, "t_")
    assert refused.to_pylist() == [{"level": 1, "value": LANDLINE, "records": 4,
                                    "reason": "different first names and different e-mails"}]
    # the evidence of the four records that share the landline, not of the others
    assert sorted(adapter.sql("SELECT _eidx FROM t_evidence").fetchall()) == [(0,), (1,), (2,), (3,)]
    phones = dict(adapter.sql("SELECT idx, value FROM t_keys_guarded WHERE level = 1").fetchall())
    assert phones[0] == phones[1] == f"{LANDLINE}|ann"  # Ann's two records keep sharing it
    assert phones[2] == f"{LANDLINE}|bob" and phones[3] == f"{LANDLINE}|#3"  # no first name: the record alone
    assert phones[4] == "+33611111111" and 5 not in phones
    emails = dict(adapter.sql("SELECT idx, value FROM t_keys_guarded WHERE level = 0").fetchall())
    assert len(emails) == 6 and emails[5] == "flo@else.fr"
    adapter.close()
