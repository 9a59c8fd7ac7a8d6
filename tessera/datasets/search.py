"""The search index of a customer dataset: normalized search tokens -> ``tessera_id``.

A run publishes ``<dataset>__search`` beside the dataset (one table of ``token`` and
``tessera_id``, distinct, sorted by token) so that the customer search as you type is a range scan
over one sorted column (a prefix ``ada`` is every token from ``ada`` up to, not including,
``adb``) instead of a scan of every name, e-mail and phone of a million customers. The tokens of
a customer, all lower case:

- each word of its name columns (FirstName, LastName, FullName, Company) in the unified record;
- its e-mail addresses, whole and from the ``@`` on (``ada@example.com``, ``example.com``);
- the digits of its phone numbers, and the same past a calling code of one to three digits
  (``33612345678``, ``3612345678``, ``612345678``, ``12345678``): a number written any way
  (``06 12 34 56 78``, ``+33 6 12...``) is found by its digits without the leading zeros;
- its ids: the ``tessera_id``, the identity keys and ids (CustomerId, LoyaltyCard) and the key of
  each of its source records (``C1042`` of ``crm_contacts:C1042``).

E-mails, phones and ids come from every source record of the customer (an old address finds the
customer too). The table is built in the engine by set-based SQL at each publication, so an
incremental run publishes it rebuilt from the records it publishes; an erase deletes the
customer's tokens (:mod:`tessera.privacy.erase`).
"""

from __future__ import annotations

import re

import ibis

TID = "tessera_id"
TOKEN = "token"
NAME_FIELDS = ("FirstName", "LastName", "FullName", "Company")
ID_FIELDS = ("CustomerId", "LoyaltyCard")
PHONE_ENDS = 4  # the digits of a phone number and their ends past a calling code of 1 to 3 digits
MIN_DIGITS = 4  # the shortest run of digits searched as (part of) a phone number
SEARCH_VIEW = "{dataset}__search"
# the tables of a search index built outside a run (Workspace.build_search_index)
SEARCH_TABLE = re.compile(r"^_tessera_search_(.+)_[0-9a-f]{8}$")
PHONE_SIGNS = set("+()-./ ")


def search_view(dataset: str) -> str:
    return SEARCH_VIEW.format(dataset=dataset)


def _text(col: ibis.Value) -> ibis.Value:
    return col if col.type().is_string() else col.cast("string")


def _pairs(t: ibis.Table, token: ibis.Value) -> ibis.Table:
    return t.select(**{TOKEN: token, TID: t[TID]})


def search_tokens(data: ibis.Table, records: ibis.Table | None, fields: dict[str, str],
                  identity_keys: list[str]) -> ibis.Table:
    """The (token, tessera_id) pairs of a customer dataset (see the module's documentation).

    Args:
        data: the unified dataset (one row per ``tessera_id``).
        records: its source records with their ``tessera_id`` (or None).
        fields: semantic field -> column of the dataset.
        identity_keys: the identity key columns of the dataset.
    """
    email = fields.get("Email")
    phone = fields.get("Phone")
    ids = [c for c in dict.fromkeys([*identity_keys, *(fields[f] for f in ID_FIELDS if f in fields)])
           if c not in (email, phone)]
    parts: list[ibis.Table] = []

    # a unified record's e-mail, phone and ids are those of one of its source records
    t = records if records is not None else data
    if email and email in t.columns:
        # each value computed once, in a query of its own (the engine would compute it per use)
        e = t.select(TID, _e=_text(t[email]).strip().lower())
        domain = ibis.ifelse(e._e.contains("@"), e._e.substr(e._e.find("@") + 1), ibis.null("string"))
        parts.append(e.select(**{TOKEN: ibis.array([e._e, domain]).unnest(), TID: e[TID]}))
    if phone and phone in t.columns:
        d = t.select(TID, _d=_text(t[phone]).re_replace("[^0-9]", ""))
        # an end shorter than MIN_DIGITS, or starting with a zero, is never searched (zeros lead
        # a national number)
        ends = [ibis.ifelse((d._d.substr(i).length() >= MIN_DIGITS) & ~d._d.substr(i).startswith("0"),
                            d._d.substr(i), ibis.null("string")) for i in range(1, PHONE_ENDS)]
        parts.append(d.select(**{TOKEN: ibis.array([d._d, *ends]).unnest(), TID: d[TID]}))
    for col in ids:
        if col in t.columns:
            parts.append(_pairs(t, _text(t[col]).strip().lower()))
    for col in [fields[f] for f in NAME_FIELDS if f in fields and fields[f] in data.columns]:
        words = _text(data[col]).lower().re_replace(r"\s+", " ").strip().split(" ")
        parts.append(data.select(**{TOKEN: words.unnest(), TID: data[TID]}))
    parts.append(_pairs(data, data[TID].lower()))
    if records is not None and "_tessera_record" in records.columns:
        key = records["_tessera_record"]
        parts.append(_pairs(records, key.substr(key.find(":") + 1).strip().lower()))
    out = parts[0]
    for p in parts[1:]:
        out = out.union(p, distinct=False)
    out = out.filter(out[TOKEN].notnull() & (out[TOKEN].length() > 0) & out[TID].notnull())
    # Not made distinct (a customer's tokens alike cost less to store than to group): readers
    # count each customer once.
    return out.order_by([TOKEN, TID])


def phone_digits(text: str) -> str | None:
    """The digits of a phone number written any way, without the leading zeros (at least four
    digits, beside ``+ ( ) - . /`` and spaces only), else None."""
    # "+33 (0)6 12...": the trunk zero written after a calling code is not dialled
    digits = "".join(ch for ch in text.replace("(0)", "") if ch.isdigit())
    if len(digits) < MIN_DIGITS or not all(ch.isdigit() or ch in PHONE_SIGNS for ch in text):
        return None
    digits = digits.lstrip("0")
    return digits if len(digits) >= MIN_DIGITS else None


def query_words(text: str) -> list[list[str]]:
    """The ways of reading what was typed, each a list of prefixes that one customer's tokens must
    all start with: the words in lower case, and for a phone number (:func:`phone_digits`) its digits."""
    query = " ".join((text or "").split()).lower()
    if not query:
        return []
    ways = [list(dict.fromkeys(query.split(" ")))]
    phone = phone_digits(query)
    if phone is not None and [phone] != ways[0]:
        ways.append([phone])
    return ways


def prefix_range(prefix: str) -> tuple[str, str]:
    """The tokens starting with ``prefix``: from ``prefix`` up to (not including) the second value,
    in code point order (the order of the engines' text columns)."""
    last = ord(prefix[-1])
    return prefix, (prefix[:-1] + chr(last + 1)) if last < 0x10FFFF else prefix + "\U0010ffff"


def create_search_table(adapter, name: str, data: ibis.Table, records: ibis.Table | None,
                        fields: dict[str, str], identity_keys: list[str]) -> str:
    """Create the table ``name`` of the search tokens of a customer dataset, sorted by token, with
    the engine's index for range reads where it needs one (:meth:`EngineAdapter.range_index`)."""
    adapter.create_table(name, search_tokens(data, records, fields, identity_keys))
    adapter.range_index(name, TOKEN)
    return name
