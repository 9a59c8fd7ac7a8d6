"""Synthetic CSV files for the "full import + unify" benchmark.

:func:`generate_import_bench` writes, under ``out_dir``:

* ``contacts.csv``: a CRM export as French tools write it: ``;`` separator, UTF-8 BOM, CR LF line
  ends, quoted text, French headers ``id_client;prenom;nom;courriel;telephone;date_naissance;ville``
  and day-first birth dates (``31/12/1980``, a few ``31-12-1980`` / ``31.12.1980``). ``duplicate_rate``
  of the rows are extra rows of an already present person (same person, another ``id_client``);
* ``orders.csv``: an e-shop export, ``,`` separator:
  ``order_id,customer_email,order_date,amount,discount,channel,store_id``. ``customer_email`` is the
  e-mail of a contact with case and space variations, except for ``guest_rate`` of the orders
  (addresses unknown to the CRM) and ``missing_email_rate`` (no address); amounts use ``.`` decimals;
* ``workspace.yaml``: a ``local`` connection, one source per file, a deduplicated ``contacts``
  dataset keyed on e-mail and phone and an ``orders`` dataset whose ``customer_email`` points at
  ``contacts.email``.

Identity keys of a contact row: the e-mail (unique per person, present on ~88% of rows, five
writings) and the French mobile (unique per person, present on ~75% of rows, seven writings). Every
row carries at least one of them and every extra row of a person shares one with the person's first
row, so the rows of a person always form one unified contact and two persons never share a key.

Everything is computed on whole columns with numpy and pyarrow (no Python loop over rows): a million
contacts and five million orders take a few tens of seconds, most of it building and writing text.
"""

from __future__ import annotations

import codecs
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from tessera.demo.generator import CITIES, FIRST_NAMES_F, FIRST_NAMES_M, LAST_NAMES, dump_yaml
from tessera.demo.identity_bench import (
    _MOBILE_SPACE,
    _by_code,
    _email_formats,
    _join,
    _phone_formats,
    persons,
    shuffled_records,
)

CONTACTS_FILE = "contacts.csv"
ORDERS_FILE = "orders.csv"
WORKSPACE_FILE = "workspace.yaml"
CONTACTS_HEADER = ["id_client", "prenom", "nom", "courriel", "telephone", "date_naissance", "ville"]
ORDERS_HEADER = ["order_id", "customer_email", "order_date", "amount", "discount", "channel", "store_id"]
CHANNELS = ("web", "mobile", "store")
CHANNEL_SHARES = (0.55, 0.25, 0.20)
N_STORES = 40
P_EMAIL, P_PHONE, P_BIRTH_DATE, P_CITY = 0.88, 0.75, 0.85, 0.90
GUEST_DOMAINS = ("exemple.fr", "mail.test", "invite.example")


def _text(values: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(values), pa.string())


def _padded(values: np.ndarray, width: int) -> pa.Array:
    return pc.utf8_lpad(_text(values), width, "0")


def _money(cents: np.ndarray) -> pa.Array:
    """Integer cents as ``1234.50``."""
    return _join(_text(cents // 100), ".", _padded(cents % 100, 2))


def _write(path: Path, table: pa.Table, header: list[str], *, delimiter: str, eol: str, bom: bool,
           quoting: str) -> None:
    with pa.OSFile(str(path), "wb") as sink:
        sink.write((codecs.BOM_UTF8 if bom else b"") + (delimiter.join(header) + eol).encode("utf-8"))
        pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=False, delimiter=delimiter, eol=eol,
                                                        quoting_style=quoting, batch_size=1 << 16))


def import_workspace_config() -> dict:
    """The benchmark's Tessera configuration, as a plain dict (``workspace.yaml``)."""
    sources = [
        {
            "name": "crm_contacts",
            "description": "CRM export (French headers, ';' separated, day-first dates)",
            "connection": "bench_files",
            "pattern": CONTACTS_FILE,
            "format": "csv",
            "csv": {"delimiter": ";"},
            "record_keys": ["id_client"],
            "types": {"id_client": "string", "telephone": "string"},
            "normalize": {
                "courriel": ["email"],
                "telephone": [{"phone": {"country": "FR"}}],
                "date_naissance": [{"date": {"dayfirst": True}}],
            },
        },
        {
            "name": "eshop_orders",
            "description": "E-shop orders; customer_email is the address typed at checkout",
            "connection": "bench_files",
            "pattern": ORDERS_FILE,
            "format": "csv",
            "csv": {"delimiter": ","},
            "record_keys": ["order_id"],
            "types": {"order_id": "string", "order_date": "timestamp", "amount": "float", "discount": "float",
                      "store_id": "string"},
            "normalize": {"customer_email": ["email"]},
            "relations": [{"column": "customer_email", "to": "contacts.email"}],
        },
    ]
    contacts = {
        "name": "contacts",
        "entity": "contacts",
        "deduplicate": True,
        "identity_keys": [{"column": "email"}, {"column": "phone"}],
        "columns": [
            {"name": "email", "type": "string", "semantic": "Email", "merge": "most_frequent"},
            {"name": "phone", "type": "string", "semantic": "Phone", "merge": "most_frequent"},
            {"name": "first_name", "type": "string", "semantic": "FirstName", "merge": "most_frequent"},
            {"name": "last_name", "type": "string", "semantic": "LastName", "merge": "most_frequent"},
            {"name": "birth_date", "type": "date", "semantic": "BirthDate", "merge": "non_null_most_recent"},
            {"name": "city", "type": "string", "semantic": "City", "merge": "non_null_most_recent"},
            {"name": "crm_id", "type": "string", "semantic": "CustomerId", "merge": "concat_unique"},
        ],
        "mappings": [{"source": "crm_contacts", "columns": {
            "crm_id": "id_client", "email": "courriel", "phone": "telephone", "first_name": "prenom",
            "last_name": "nom", "birth_date": "date_naissance", "city": "ville"}}],
    }
    orders = {
        "name": "orders",
        "entity": "orders",
        "columns": [
            {"name": "order_id", "type": "string", "semantic": "OrderId"},
            {"name": "order_date", "type": "timestamp", "semantic": "OrderDate"},
            {"name": "amount", "type": "float", "semantic": "OrderAmount"},
            {"name": "discount", "type": "float", "semantic": "DiscountAmount"},
            {"name": "channel", "type": "string", "semantic": "Channel"},
            {"name": "store_id", "type": "string", "semantic": "StoreId"},
            {"name": "customer_email", "type": "string", "semantic": "Email"},
        ],
        "mappings": [{"source": "eshop_orders", "columns": {
            "order_id": "order_id", "order_date": "order_date", "amount": "amount", "discount": "discount",
            "channel": "channel", "store_id": "store_id", "customer_email": "customer_email"}}],
    }
    return {
        "connections": [{"name": "bench_files", "type": "local", "path": "."}],
        "sources": sources,
        "datasets": [contacts, orders],
    }


def generate_import_bench(
    out_dir: str | Path,
    n_contacts: int = 1_000_000,
    n_orders: int = 5_000_000,
    seed: int = 3,
    duplicate_rate: float = 0.2,
    guest_rate: float = 0.02,
    missing_email_rate: float = 0.01,
) -> dict:
    """Write ``contacts.csv``, ``orders.csv`` and ``workspace.yaml`` under ``out_dir``.

    Returns the counts (contact rows, persons, duplicate rows, orders, orders whose e-mail is a
    contact's, guest and e-mail-less orders), the paths written and the generation time in seconds.
    """
    if n_contacts < 10:
        raise ValueError("n_contacts must be at least 10")
    if n_orders < 1:
        raise ValueError("n_orders must be at least 1")
    if not 0.0 <= duplicate_rate < 1.0:
        raise ValueError("duplicate_rate must be in [0, 1)")
    if guest_rate < 0 or missing_email_rate < 0 or guest_rate + missing_email_rate > 1:
        raise ValueError("guest_rate and missing_email_rate must be >= 0 and add up to at most 1")
    started = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n = int(n_contacts)
    n_dup = int(round(n * duplicate_rate))
    n_persons = n - n_dup
    if n_persons > _MOBILE_SPACE:
        raise ValueError("too many persons for distinct mobile numbers")

    # ------------------------------------------------------------ persons
    pid, first_idx, last_idx, email_p, nsn_p = persons(rng, n_persons)
    day0 = np.datetime64("1940-01-01", "D").astype(np.int64)
    birth_days = day0 + rng.integers(0, 66 * 365, n_persons)
    birth_p = pa.array(birth_days * 86400, pa.timestamp("s"))
    cities = [name for _, name in CITIES["FR"]]
    city_idx = rng.integers(0, len(cities), n_persons)

    # ------------------------------------------------------------ contact rows (random order)
    person, is_base = shuffled_records(rng, n_persons, n_dup)

    has_email = rng.random(n) < P_EMAIL
    has_phone = rng.random(n) < P_PHONE
    has_email |= ~(has_email | has_phone)
    # an extra row shares at least one key with the first row of its person
    base_pos = np.empty(n_persons, dtype=np.int64)
    base_pos[person[is_base]] = np.flatnonzero(is_base)
    dup = np.flatnonzero(~is_base)
    base = base_pos[person[dup]]
    shared = (has_email[dup] & has_email[base]) | (has_phone[dup] & has_phone[base])
    fix, fix_base = dup[~shared], base[~shared]
    use_email = has_email[fix_base] & (~has_phone[fix_base] | (rng.random(len(fix)) < 0.5))
    has_email[fix[use_email]] = True
    has_phone[fix[~use_email]] = True
    del base_pos, dup, base, shared, fix, fix_base, use_email

    person_arr = pa.array(person)
    null = pa.scalar(None, pa.string())
    email_code = rng.choice(5, n, p=[0.76, 0.06, 0.06, 0.06, 0.06]).astype(np.int8)
    courriel = pc.if_else(pa.array(has_email), _by_code(email_p.take(person_arr), email_code, _email_formats()), null)
    phone_code = rng.integers(0, 7, n, dtype=np.int8)
    telephone = pc.if_else(pa.array(has_phone), _by_code(nsn_p.take(person_arr), phone_code, _phone_formats()), null)
    del email_code, phone_code, nsn_p
    prenom = pa.array(FIRST_NAMES_F + FIRST_NAMES_M).take(pa.array(first_idx[person]))
    prenom = _by_code(prenom, rng.choice(3, n, p=[0.90, 0.05, 0.05]).astype(np.int8),
                      [lambda s: s, pc.utf8_upper, pc.utf8_lower])
    nom = pa.array(LAST_NAMES).take(pa.array(last_idx[person]))
    nom = _by_code(nom, rng.choice(3, n, p=[0.80, 0.15, 0.05]).astype(np.int8),
                   [lambda s: s, pc.utf8_upper, lambda s: _join(s, " ")])
    birth = birth_p.take(person_arr)
    date_naissance = _by_code(birth, rng.choice(3, n, p=[0.90, 0.05, 0.05]).astype(np.int8),
                              [lambda d: pc.strftime(d, "%d/%m/%Y"), lambda d: pc.strftime(d, "%d-%m-%Y"),
                               lambda d: pc.strftime(d, "%d.%m.%Y")])
    date_naissance = pc.if_else(pa.array(rng.random(n) < P_BIRTH_DATE), date_naissance, null)
    ville = pc.if_else(pa.array(rng.random(n) < P_CITY), pa.array(cities).take(pa.array(city_idx[person])), null)
    width = max(8, len(str(n)))
    contacts = pa.table({
        "id_client": _join("C", _padded(np.arange(1, n + 1, dtype=np.int64), width)),
        "prenom": prenom, "nom": nom, "courriel": courriel, "telephone": telephone,
        "date_naissance": date_naissance, "ville": ville,
    })
    del prenom, nom, telephone, date_naissance, ville, birth
    contacts_path = out / CONTACTS_FILE
    _write(contacts_path, contacts, CONTACTS_HEADER, delimiter=";", eol="\r\n", bom=True, quoting="needed")
    del contacts, courriel

    # ------------------------------------------------------------ orders
    m = int(n_orders)
    known = np.zeros(n_persons, dtype=bool)  # persons whose e-mail is on at least one contact row
    known[person[has_email]] = True
    customers = np.flatnonzero(known)
    del known, person, has_email, has_phone, is_base, person_arr
    kind = rng.choice(3, m, p=[1.0 - guest_rate - missing_email_rate, guest_rate, missing_email_rate])
    kind = kind.astype(np.int8)
    # a few customers order a lot, most order a few times
    buyer = customers[np.minimum((len(customers) * rng.random(m) ** 1.6).astype(np.int64), len(customers) - 1)]
    email_o = email_p.take(pa.array(buyer))
    guests = np.flatnonzero(kind == 1)
    if len(guests):
        guest_email = _join("client", _text(np.arange(len(guests), dtype=np.int64)), "@",
                            pa.array(GUEST_DOMAINS).take(pa.array(rng.integers(0, len(GUEST_DOMAINS), len(guests)))))
        email_o = pc.replace_with_mask(email_o, pa.array(kind == 1), guest_email)
    del buyer, guests, email_p
    code = rng.choice(5, m, p=[0.80, 0.05, 0.05, 0.05, 0.05]).astype(np.int8)
    customer_email = pc.if_else(pa.array(kind == 2), null, _by_code(email_o, code, _email_formats()))
    del email_o, code
    start = np.datetime64("2019-01-01T00:00:00", "s").astype(np.int64)
    order_date = pa.array(np.sort(start + rng.integers(0, 6 * 365 * 86400, m)), pa.timestamp("s"))
    cents = np.round(np.exp(rng.normal(4.0, 0.7, m)) * 100).astype(np.int64) + 99
    discounted = rng.random(m) < 0.3
    discount = np.where(discounted, cents * rng.integers(5, 21, m) // 100, 0)
    channel_idx = rng.choice(len(CHANNELS), m, p=CHANNEL_SHARES).astype(np.int8)
    in_store = channel_idx == CHANNELS.index("store")
    store_id = pc.if_else(pa.array(in_store), _join("S", _padded(rng.integers(1, N_STORES + 1, m), 3)), null)
    width = max(9, len(str(m)))
    orders = pa.table({
        "order_id": _join("W", _padded(np.arange(1, m + 1, dtype=np.int64), width)),
        "customer_email": customer_email,
        "order_date": order_date,
        "amount": _money(cents),
        "discount": _money(discount),
        "channel": pa.array(CHANNELS).take(pa.array(channel_idx)),
        "store_id": store_id,
    })
    del customer_email, order_date, cents, discount, store_id
    orders_path = out / ORDERS_FILE
    _write(orders_path, orders, ORDERS_HEADER, delimiter=",", eol="\n", bom=False, quoting="none")
    del orders

    workspace_path = out / WORKSPACE_FILE
    workspace_path.write_text(
        f"# Import benchmark: {n} contact rows ({n_persons} persons), {m} orders (seed={seed}).\n"
        + dump_yaml(import_workspace_config()),
        encoding="utf-8",
    )
    n_guest = int((kind == 1).sum())
    n_missing = int((kind == 2).sum())
    return {
        "n_contacts": n,
        "n_persons": n_persons,
        "n_duplicates": n_dup,
        "n_orders": m,
        "orders_of_contacts": m - n_guest - n_missing,
        "guest_orders": n_guest,
        "orders_without_email": n_missing,
        "files": {"contacts": str(contacts_path), "orders": str(orders_path)},
        "workspace": str(workspace_path),
        "bytes": contacts_path.stat().st_size + orders_path.stat().st_size,
        "seconds": round(time.perf_counter() - started, 3),
    }
