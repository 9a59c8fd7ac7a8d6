"""Contact records with known truth for probabilistic matching: typos, variants and traps.

:func:`generate_matching_set` writes ``crm.csv`` and ``shop.csv`` (columns ``id, first_name,
last_name, email, phone, birth_date, postal_code``), ``truth.csv`` (``source, id, person``) and a
``workspace.yaml`` whose ``contacts`` dataset is keyed on e-mail and phone, with or without a
``matching:`` block. Of the records, ``duplicate_rate`` are extra records of a person, each with
one or two of these changes:

* a typo in the e-mail's local part (``jean.dupont@`` -> ``jean.dupond@``) or a new e-mail;
* accents dropped or case changed in the first name (Hélène -> HELENE), a typo in a name;
* first and last name swapped; a typo in the birth date (one digit, or day and month swapped);
* the phone or the e-mail left out.

Traps that must stay apart: households of 2 to 4 people with the same last name and postal
code who share one landline (different first names, e-mails and birth dates), and twins (a
household pair with the same birth date). The generator is seeded: the same arguments write
the same files.
"""

from __future__ import annotations

import csv
import random
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from tessera.demo.generator import (
    CITIES,
    EMAIL_DOMAINS,
    FIRST_NAMES_F,
    FIRST_NAMES_M,
    FR_LANDLINE_PREFIXES,
    FR_MOBILE_PREFIXES,
    LAST_NAMES,
)

COLUMNS = ["id", "first_name", "last_name", "email", "phone", "birth_date", "postal_code"]

MATCHING_BLOCK = """    matching:
      blocking:
        - [first_name, last_name, postal_code]
        - [last_name, birth_date]
        - [first_name, birth_date]
        - [birth_date, postal_code]
      comparisons:
        - {column: first_name, method: levenshtein}
        - {column: last_name, method: levenshtein}
        - {column: email, method: email}
        - {column: birth_date, method: date}
        - {column: postal_code}
      merge: 0.99
      review: 0.8
"""

WORKSPACE = """connections:
  - {{name: files, type: local, path: .}}
sources:
  - name: crm
    connection: files
    pattern: crm.csv
    record_keys: [id]
    normalize:
      email: [email]
      phone: [{{phone: {{country: FR}}}}]
      birth_date: [{{date: {{format: "%Y-%m-%d"}}}}]
  - name: shop
    connection: files
    pattern: shop.csv
    record_keys: [id]
    normalize:
      email: [email]
      phone: [{{phone: {{country: FR}}}}]
      birth_date: [{{date: {{format: "%Y-%m-%d"}}}}]
datasets:
  - name: contacts
    deduplicate: true
    identity_keys: [{{column: email}}, {{column: phone}}]
    columns:
      - {{name: first_name, semantic: FirstName}}
      - {{name: last_name, semantic: LastName}}
      - {{name: email, semantic: Email}}
      - {{name: phone, semantic: Phone}}
      - {{name: birth_date, semantic: BirthDate}}
      - {{name: postal_code, semantic: PostalCode}}
{matching}    mappings:
      - source: crm
        columns: {{first_name: first_name, last_name: last_name, email: email, phone: phone, birth_date: birth_date, postal_code: postal_code}}
      - source: shop
        columns: {{first_name: first_name, last_name: last_name, email: email, phone: phone, birth_date: birth_date, postal_code: postal_code}}
"""


@dataclass
class MatchingSet:
    path: Path
    records: int
    persons: int
    truth: dict[str, int]  # record id (source:id) -> person


def _fold(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c)).lower()


def _typo(rng: random.Random, text: str) -> str:
    """One letter replaced, dropped or doubled (never the first one)."""
    if len(text) < 3:
        return text + "e"
    i = rng.randrange(1, len(text))
    kind = rng.randrange(3)
    if kind == 0:
        return text[:i] + rng.choice("aeioudnrst".replace(text[i].lower(), "")) + text[i + 1:]
    if kind == 1:
        return text[:i] + text[i + 1:]
    return text[:i] + text[i] + text[i:]


def _person(rng: random.Random, pid: int, last: str | None = None, postal: str | None = None) -> dict:
    first = rng.choice(FIRST_NAMES_F + FIRST_NAMES_M)
    last = last or rng.choice(LAST_NAMES)
    postal = postal or rng.choice(CITIES["FR"])[0]
    y, m, d = rng.randint(1940, 2005), rng.randint(1, 12), rng.randint(1, 28)
    local = f"{_fold(first)}.{_fold(last)}".replace(" ", "").replace("'", "")
    email = f"{local}{pid}@{rng.choice(EMAIL_DOMAINS['FR'])}"  # the person id: two people never share one
    prefix = rng.choice(FR_MOBILE_PREFIXES)
    mobile = f"0{prefix}{rng.randint(0, 10 ** (9 - len(prefix)) - 1):0{9 - len(prefix)}d}"
    return {"person": pid, "first_name": first, "last_name": last, "email": email, "phone": mobile,
            "birth_date": f"{y:04d}-{m:02d}-{d:02d}", "postal_code": postal}


def _variant(rng: random.Random, p: dict) -> dict:
    r = dict(p)
    for change in rng.sample(range(9), rng.choice((1, 1, 2))):
        if change == 0 and "@" in r["email"]:  # e-mail typo in the local part
            local, domain = r["email"].split("@")
            r["email"] = f"{_typo(rng, local)}@{domain}"
        elif change in (0, 1):  # a new e-mail
            r["email"] = f"{_fold(r['first_name'])[:1]}{_fold(r['last_name'])}.{r['person']}@work.example"
        elif change == 2:  # accents and case of the first name
            r["first_name"] = rng.choice((_fold(r["first_name"]).upper(), _fold(r["first_name"]).capitalize()))
        elif change == 3:  # typo in a name
            key = rng.choice(("first_name", "last_name"))
            r[key] = _typo(rng, r[key])
        elif change == 4:  # first and last name swapped
            r["first_name"], r["last_name"] = r["last_name"], r["first_name"]
        elif change == 5:  # birth date typo
            y, m, d = r["birth_date"].split("-")
            if int(d) <= 12 and d != m and rng.random() < 0.5:
                r["birth_date"] = f"{y}-{d}-{m}"
            else:
                r["birth_date"] = f"{y}-{m}-{(int(d) % 28) + 1:02d}"
        elif change == 6:
            r["phone"] = ""
        elif change == 7:
            r["email"] = ""
        elif change == 8:  # the phone written another way
            r["phone"] = "+33 " + r["phone"][1:] if r["phone"] else ""
    return r


def generate_matching_set(path: str | Path, *, records: int = 1000, duplicate_rate: float = 0.2,
                          household_rate: float = 0.04, seed: int = 7, matching: bool = True) -> MatchingSet:
    """Write the two source files, the truth and ``workspace.yaml`` into ``path``."""
    rng = random.Random(seed)
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    n_persons = max(2, int(records * (1 - duplicate_rate)))
    people: list[dict] = []
    while len(people) < n_persons:
        pid = len(people)
        if rng.random() < household_rate and n_persons - pid >= 2:
            size = min(rng.choice((2, 2, 3, 4)), n_persons - pid)
            head = _person(rng, pid)
            prefix = rng.choice(FR_LANDLINE_PREFIXES)
            landline = f"0{prefix}{rng.randint(0, 10 ** (9 - len(prefix)) - 1):0{9 - len(prefix)}d}"
            twins = rng.random() < 0.3
            for k in range(size):
                member = head if k == 0 else _person(rng, pid + k, head["last_name"], head["postal_code"])
                while k and member["first_name"] in {m["first_name"] for m in people[pid:]}:
                    member = _person(rng, pid + k, head["last_name"], head["postal_code"])
                if twins and k == 1:
                    member["birth_date"] = head["birth_date"]
                member["phone"] = landline
                people.append(member)
        else:
            people.append(_person(rng, pid))
    rows = [dict(p) for p in people]
    while len(rows) < records:
        rows.append(_variant(rng, rng.choice(people)))
    rng.shuffle(rows)
    truth: dict[str, int] = {}
    files = {"crm": [], "shop": []}
    for i, r in enumerate(rows):
        source = "crm" if rng.random() < 0.6 else "shop"
        rid = f"{source[0].upper()}{i}"
        files[source].append({"id": rid, **{c: r[c] for c in COLUMNS[1:]}})
        truth[f"{source}:{rid}"] = r["person"]
    for source, out in files.items():
        with open(path / f"{source}.csv", "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, COLUMNS)
            w.writeheader()
            w.writerows(out)
    with open(path / "truth.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["record", "person"])
        w.writerows(sorted(truth.items()))
    (path / "workspace.yaml").write_text(WORKSPACE.format(matching=MATCHING_BLOCK if matching else ""))
    return MatchingSet(path, len(rows), n_persons, truth)


def pairwise_scores(clusters: dict[str, str], truth: dict[str, int]) -> dict[str, float]:
    """Pairwise precision, recall and F1 of ``clusters`` (record -> unified id) against ``truth``."""
    from collections import Counter

    def pairs(counter: Counter) -> int:
        return sum(n * (n - 1) // 2 for n in counter.values())

    both = Counter((clusters[r], truth[r]) for r in truth if r in clusters)
    tp = pairs(both)
    predicted = pairs(Counter(clusters[r] for r in truth if r in clusters))
    actual = pairs(Counter(truth.values()))
    precision = tp / predicted if predicted else 1.0
    recall = tp / actual if actual else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "true_pairs": actual, "predicted_pairs": predicted}
