"""Maison Lumière: a deterministic demo company for Tessera.

Maison Lumière is a French home decor retailer with a CRM, an e-shop, eight shops with a
point of sale (POS) system and a product catalog. :func:`generate` writes one export per
system, with the usual defects of real exports, plus the ground truth of who is who:

* ``data/crm/contacts_crm.csv``   ``;`` separated, UTF-8 with BOM, CRLF, French headers,
  day-first dates, quoted fields holding ``;`` or a line break, two malformed rows.
* ``data/eshop/customers.json``   JSON array of e-shop accounts.
* ``data/eshop/orders.ndjson``    one order per line (one truncated line).
* ``data/eshop/order_items.ndjson``
* ``data/pos/customers_pos.csv``  loyalty card holders (one row without card number,
  one card number written twice).
* ``data/pos/tickets.csv``        receipts, some anonymous (one amount is not a number).
* ``data/pos/ticket_items.csv``
* ``data/catalog/products.csv``, ``data/catalog/stores.csv``
* ``truth.csv``                   ``source,record_key,person_id`` for every contact record.
* ``workspace.yaml``              the Tessera configuration of all of the above.

Same ``size`` and ``seed`` give byte-identical files.

Identity guarantees (checked at generation time):

* two different persons never share an e-mail (after trim + lower-case) except the junk
  value ``test@test.com``, nor a phone number (after E.164) except household landlines,
  which are carried by more contact records than ``shared_value_threshold``, and the junk
  value ``0000000000``;
* the contact records of one person are connected through e-mails and non-shared phone
  numbers, except the records listed in :attr:`DemoInfo.unlinkable` (POS records with
  neither e-mail nor phone) and :attr:`DemoInfo.rejected` (contact records on malformed rows).
"""

from __future__ import annotations

import csv
import io
import json
import random
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path

import yaml

COMPANY = "Maison Lumière"

CRM_FILE = "data/crm/contacts_crm.csv"
ESHOP_CUSTOMERS_FILE = "data/eshop/customers.json"
ORDERS_FILE = "data/eshop/orders.ndjson"
ORDER_ITEMS_FILE = "data/eshop/order_items.ndjson"
POS_CUSTOMERS_FILE = "data/pos/customers_pos.csv"
TICKETS_FILE = "data/pos/tickets.csv"
TICKET_ITEMS_FILE = "data/pos/ticket_items.csv"
PRODUCTS_FILE = "data/catalog/products.csv"
STORES_FILE = "data/catalog/stores.csv"
TRUTH_FILE = "truth.csv"
WORKSPACE_FILE = "workspace.yaml"

CRM_HEADER = [
    "id_client", "civilite", "prenom", "nom", "courriel", "telephone", "date_naissance",
    "code_postal", "ville", "pays", "optin_email", "date_maj", "commentaire",
]
POS_HEADER = ["card_number", "first_name", "last_name", "email", "mobile", "store_id", "signup_date"]
TICKET_HEADER = ["ticket_id", "card_number", "store_id", "ticket_date", "amount", "discount"]
TICKET_ITEM_HEADER = ["ticket_id", "line_no", "product_id", "quantity", "unit_price"]

JUNK_EMAIL = "test@test.com"
JUNK_PHONE = "0000000000"
JUNK_PHONE_E164 = "+33000000000"
# A value carried by more contact records than this is treated as shared (household landline).
# One person carries its own e-mail / mobile on at most 4 records (CRM, e-shop, POS and one
# duplicate), a household landline on at least 8.
SHARED_VALUE_THRESHOLD = 5

# The company's history: seven years ending on the day the demo is generated (``generate(end=...)``).
HISTORY = timedelta(days=7 * 365)
CLOSING = time(20, 0)  # the last orders of the last day
# Purchases follow the process the predictive models assume (MBG/NBD): each customer buys at a
# rate of their own, and after each purchase (the first one included) may stop buying for good.
PURCHASE_RATE = (1.5, 1 / 150)  # Gamma(shape, scale): purchases per day (mean one every 100 days)
DROP_OUT = (1.2, 3.0)  # Beta(a, b): the chance of stopping after a purchase (mean 0.29)

# --------------------------------------------------------------------------- reference data

FIRST_NAMES_M = [
    "Jean", "Pierre", "Michel", "André", "Philippe", "Alain", "Jacques", "Bernard", "Patrick",
    "Daniel", "Nicolas", "Christophe", "Stéphane", "Frédéric", "Sébastien", "Laurent", "Olivier",
    "Thierry", "Éric", "François", "Julien", "Guillaume", "Mathieu", "Antoine", "Jérôme", "Romain",
    "Maxime", "Thomas", "Alexandre", "Vincent", "Benoît", "Clément", "Hugo", "Lucas", "Théo",
    "Louis", "Gabriel", "Raphaël", "Arthur", "Léo", "Noé", "Mathéo", "Enzo", "Loïc", "Joël",
    "Gaël", "Hervé", "Rémi", "Cédric", "Grégory", "Jérémy", "Yannick", "Bruno", "Didier", "Gérard",
]
FIRST_NAMES_F = [
    "Marie", "Nathalie", "Isabelle", "Sylvie", "Catherine", "Françoise", "Valérie", "Sandrine",
    "Christine", "Céline", "Stéphanie", "Aurélie", "Émilie", "Julie", "Camille", "Léa", "Manon",
    "Chloé", "Sarah", "Laura", "Pauline", "Mathilde", "Inès", "Zoé", "Jade", "Louise", "Alice",
    "Lina", "Anaïs", "Océane", "Maëlle", "Noémie", "Élodie", "Hélène", "Agnès", "Cécile",
    "Thérèse", "Brigitte", "Mégane", "Juliette", "Margaux", "Clémence", "Amélie", "Solène",
    "Gaëlle", "Lucie", "Emma", "Capucine", "Bérénice", "Héloïse",
]
LAST_NAMES = [
    "Martin", "Bernard", "Thomas", "Petit", "Robert", "Richard", "Durand", "Dubois", "Moreau",
    "Laurent", "Simon", "Michel", "Lefèvre", "Leroy", "Roux", "David", "Bertrand", "Morel",
    "Fournier", "Girard", "Bonnet", "Dupont", "Lambert", "Fontaine", "Rousseau", "Vincent",
    "Muller", "Lefebvre", "Faure", "André", "Mercier", "Blanc", "Guérin", "Boyer", "Garnier",
    "Chevalier", "François", "Legrand", "Gauthier", "Garcia", "Perrin", "Robin", "Clément",
    "Morin", "Nicolas", "Henry", "Roussel", "Mathieu", "Gautier", "Masson", "Marchand", "Duval",
    "Denis", "Dumont", "Lemaire", "Noël", "Meyer", "Dufour", "Meunier", "Brun", "Blanchard",
    "Giraud", "Joly", "Rivière", "Lucas", "Brunet", "Gaillard", "Barbier", "Arnaud", "Martinez",
    "Gérard", "Roche", "Renard", "Schmitt", "Roy", "Leroux", "Colin", "Vidal", "Caron", "Picard",
    "Roger", "Fabre", "Aubert", "Lemoine", "Renaud", "Dumas", "Lacroix", "Olivier", "Philippe",
    "Bourgeois", "Pierre", "Benoît", "Rey", "Leclerc", "Payet", "Rolland", "Leclercq",
    "Guillaume", "Lecomte", "Lopez", "Dupuy", "Guillot", "Hubert", "Berger", "Carpentier",
    "Sanchez", "Dupuis", "Moulin", "Deschamps", "Huet", "Vasseur", "Perez", "Boucher", "Fleury",
    "Royer", "Klein", "Jacquet", "Adam", "Poirier", "Marty", "Aubry", "Guyot", "Carré",
    "Charpentier", "Ménard", "Maillard", "Baron", "Bertin", "Bailly", "Hervé", "Schneider",
    "Fernandez", "Le Gall", "Collet", "Léger", "Bouvier", "Prévost", "Millet", "Perrot",
    "Le Roux", "Cousin", "Germain", "Breton", "Besson", "Langlois", "Rémy", "Pelletier",
    "Lévêque", "Le Goff", "Hébert", "Bégué", "Lemaître", "N'Diaye", "Da Silva", "De La Fontaine",
    "Dupont-Moreau",
]

SAINT_DENIS = ("93210", "Saint-Denis; La Plaine")
CITIES = {
    "FR": [
        ("75011", "Paris"), ("75015", "Paris"), ("75018", "Paris"), ("69003", "Lyon"),
        ("13008", "Marseille"), ("59000", "Lille"), ("33000", "Bordeaux"), ("44000", "Nantes"),
        ("31000", "Toulouse"), ("67000", "Strasbourg"), ("35000", "Rennes"), ("06000", "Nice"),
        ("34000", "Montpellier"), ("38000", "Grenoble"), ("21000", "Dijon"), ("49000", "Angers"),
        ("51100", "Reims"), ("76600", "Le Havre"), ("42000", "Saint-Étienne"), ("83000", "Toulon"),
        ("13100", "Aix-en-Provence"), ("63000", "Clermont-Ferrand"), ("37000", "Tours"),
        ("87000", "Limoges"), ("80000", "Amiens"), ("57000", "Metz"), ("25000", "Besançon"),
        ("45000", "Orléans"), ("76000", "Rouen"), ("14000", "Caen"), ("54000", "Nancy"),
        ("74000", "Annecy"), ("01000", "Bourg-en-Bresse"), ("78000", "Versailles"),
        ("92100", "Boulogne-Billancourt"), SAINT_DENIS,
    ],
    "BE": [("1000", "Bruxelles"), ("4000", "Liège"), ("5000", "Namur"), ("6000", "Charleroi"), ("9000", "Gand")],
    "ES": [("28001", "Madrid"), ("08001", "Barcelona"), ("46001", "Valencia"), ("41001", "Sevilla")],
}
CRM_COUNTRY_SPELLINGS = {"FR": ["France", "France", "FR", "france"], "BE": ["Belgique", "BE"], "ES": ["Espagne"]}

EMAIL_DOMAINS = {
    "FR": ["gmail.com"] * 8 + ["orange.fr"] * 4 + ["free.fr"] * 3 + ["hotmail.fr"] * 2
    + ["yahoo.fr", "laposte.net", "sfr.fr", "outlook.com", "wanadoo.fr", "icloud.com"],
    "BE": ["gmail.com", "gmail.com", "skynet.be", "telenet.be", "hotmail.com"],
    "ES": ["gmail.com", "gmail.com", "hotmail.es", "yahoo.es"],
}

STORES = [
    ("S01", "Maison Lumière Paris Rivoli", "Paris", "FR"),
    ("S02", "Maison Lumière Lyon Part-Dieu", "Lyon", "FR"),
    ("S03", "Maison Lumière Lille Centre", "Lille", "FR"),
    ("S04", "Maison Lumière Bordeaux Sainte-Catherine", "Bordeaux", "FR"),
    ("S05", "Maison Lumière Nantes Graslin", "Nantes", "FR"),
    ("S06", "Maison Lumière Marseille Prado", "Marseille", "FR"),
    ("S07", "Maison Lumière Toulouse Capitole", "Toulouse", "FR"),
    ("S08", "Maison Lumière Bruxelles Louise", "Bruxelles", "BE"),
]

CATEGORIES = {
    "Luminaires": (["Lampe à poser", "Suspension", "Applique murale", "Lampadaire", "Guirlande lumineuse",
                    "Lampe de chevet", "Plafonnier", "Bougie LED"], 19, 249),
    "Textile": (["Coussin", "Plaid", "Rideau", "Nappe", "Tapis", "Housse de couette", "Torchon",
                 "Jeté de canapé"], 9, 129),
    "Cuisine": (["Mug", "Assiette plate", "Bol", "Carafe", "Planche à découper", "Théière", "Saladier",
                 "Verre à eau"], 4, 59),
    "Décoration": (["Vase", "Miroir", "Cadre photo", "Bougie parfumée", "Horloge murale", "Photophore",
                    "Statuette", "Corbeille"], 7, 149),
    "Mobilier": (["Table basse", "Étagère", "Chaise", "Console", "Tabouret", "Banc", "Commode",
                  "Fauteuil"], 59, 699),
    "Jardin": (["Pot de fleurs", "Lanterne solaire", "Transat", "Jardinière", "Arrosoir",
                "Coussin d'extérieur", "Table de jardin", "Hamac"], 9, 299),
}
FINISHES = [
    "Céleste", "lin naturel", "terracotta", "laiton", "rotin", "chêne clair", "bleu nuit", "ivoire",
    "sauge", "ocre", "marbre", "noyer", "grès", "velours", "bambou",
]
PRODUCTS_PER_CATEGORY = 25

# Number ranges that are really allocated (so that strict phone validation accepts them)
FR_MOBILE_PREFIXES = (
    [f"6{i:02d}" for i in range(100) if i // 10 in (0, 1, 2, 4, 5, 6, 7, 8)]
    + [f"63{i}" for i in range(9)] + ["695", "698", "699"] + [f"7{i}" for i in range(30, 100)]
)
FR_LANDLINE_PREFIXES = (
    [f"1{i}" for i in range(10)] + [f"2{i}" for i in (0, 1, 2, 3, 4, 5, 7, 8, 9)] + [f"3{i}" for i in range(10)]
    + [f"4{i}" for i in range(1, 10)] + [f"5{i}" for i in range(9)]
)

CRM_NOTES = [
    "Client fidèle depuis l'ouverture",
    "Préfère être contacté par courriel",
    "Ne pas appeler; préfère les SMS",
    "Livraison au gardien",
    "Ancienne adresse: 12 rue des Lilas",
]
CRM_NOTE_MULTILINE = "Adresse de livraison:\n3 rue de la Paix, bâtiment B"

# --------------------------------------------------------------------------- results


@dataclass
class DemoInfo:
    """What :func:`generate` wrote, and what a test needs to score identity resolution.

    Record references are ``(source, record_key)`` with the source names of ``workspace.yaml``
    and the record key exactly as written in the file.
    """

    out_dir: Path
    workspace_path: Path
    truth_path: Path
    size: int
    seed: int
    # data rows per file (records, not physical lines), malformed rows included
    rows: dict[str, int] = field(default_factory=dict)
    # contact records per source, as listed in truth.csv
    contact_records: dict[str, int] = field(default_factory=dict)
    # (file relative to out_dir, physical 1-based line number, reason); the header is line 1
    malformed: list[tuple[str, int, str]] = field(default_factory=list)
    # contact records on malformed rows: a loader is expected to reject them
    rejected: list[tuple[str, str]] = field(default_factory=list)
    # contact records that share no e-mail or phone with the other records of their person
    unlinkable: list[tuple[str, str]] = field(default_factory=list)
    # household landlines (E.164) -> number of contact records carrying them (rejected rows excluded)
    shared_phones: dict[str, int] = field(default_factory=dict)
    # the shared_value_threshold of workspace.yaml: every shared phone is above it
    shared_value_threshold: int = SHARED_VALUE_THRESHOLD
    # junk identity values, written as-is in the files (normalized forms in blocked_values)
    junk_values: list[str] = field(default_factory=list)
    blocked_values: list[str] = field(default_factory=list)
    # persons with two CRM records: (person_id, id_client, duplicate id_client)
    crm_duplicates: list[tuple[str, str, str]] = field(default_factory=list)
    # person ids of each household sharing a landline
    households: list[list[str]] = field(default_factory=list)
    # pos_customers card number written twice (the second row is the bad one)
    duplicated_card: str = ""


# --------------------------------------------------------------------------- internals


@dataclass
class _Person:
    idx: int
    pid: str
    first: str
    gender: str
    last: str
    country: str
    postal: str
    city: str
    birth: date
    optin: bool
    email: str = ""
    mobile_nsn: str = ""
    mobile_e164: str = ""
    landline_nsn: str = ""
    landline_e164: str = ""
    in_crm: bool = False
    in_eshop: bool = False
    in_pos: bool = False
    role: str = ""
    store: str = ""


@dataclass
class _Contact:
    source: str
    person: _Person
    email: str | None = None
    phone: str | None = None  # as written
    phone_e164: str | None = None  # canonical form of the written phone, None for junk/absent
    key: str = ""
    linkable: bool = True
    rejected: bool = False
    email_junk: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def email_key(self) -> str | None:
        if self.email is None or self.email_junk:
            return None
        return self.email.strip().lower()

    @property
    def phone_key(self) -> str | None:
        # landlines are shared inside a household: not a linking key
        if self.phone_e164 is None or self.phone_e164 == self.person.landline_e164:
            return None
        return self.phone_e164


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    return "".join(c for c in text.lower() if c.isalnum() or c == "-")


def _purchases(rng: random.Random, since: datetime, end: datetime, first: bool) -> list[datetime]:
    """A customer's purchase times from ``since`` to ``end`` (a purchase at ``since`` when ``first``):
    waits drawn at the customer's own rate, and after each purchase a chance of stopping for good."""
    rate = rng.gammavariate(*PURCHASE_RATE)  # purchases per day
    stop = rng.betavariate(*DROP_OUT)
    out = [since] if first else []
    when = since
    while not out or rng.random() >= stop:
        when = when + timedelta(days=rng.expovariate(rate))
        if when >= end:
            break
        out.append(when.replace(microsecond=0))
    return out


def _dt(rng: random.Random, start: datetime, end: datetime) -> datetime:
    span = int((end - start).total_seconds())
    return start + timedelta(seconds=rng.randrange(max(span, 1)))


def _iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S")


def _money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def _typo(rng: random.Random, text: str) -> str:
    letters = [i for i in range(len(text) - 1) if text[i].isalpha() and text[i + 1].isalpha()]
    if len(text) < 4 or not letters:
        return text
    i = rng.choice(letters[1:] or letters)
    if rng.random() < 0.5 and text[i] != text[i + 1]:
        return text[:i] + text[i + 1] + text[i] + text[i + 2:]
    return text[:i] + text[i + 1:]


def _style_email(rng: random.Random, email: str, p: float) -> str:
    if rng.random() >= p:
        return email
    local, domain = email.split("@")
    capitalized = ".".join(w.capitalize() for w in local.split(".")) + "@" + domain.capitalize()
    variant = rng.randrange(4)
    if variant == 0:
        return capitalized
    if variant == 1:
        return email.upper()
    if variant == 2:
        return "  " + email + " "
    return "  " + capitalized + " "


def _format_phone(rng: random.Random, country: str, nsn: str, styles: list[str] | None = None) -> str:
    if country == "FR":
        pairs = [nsn[i:i + 2] for i in range(1, 9, 2)]
        choices = styles or ["intl", "intl00", "dots", "compact", "intl0", "spaced", "e164"]
        style = rng.choice(choices)
        if style == "intl":
            return f"+33 {nsn[0]} " + " ".join(pairs)
        if style == "intl00":
            return "0033" + nsn
        if style == "dots":
            return f"0{nsn[0]}." + ".".join(pairs)
        if style == "compact":
            return "0" + nsn
        if style == "intl0":
            return f"+33 (0){nsn[0]} " + " ".join(pairs)
        if style == "spaced":
            return f"0{nsn[0]} " + " ".join(pairs)
        return "+33" + nsn
    code = "32" if country == "BE" else "34"
    style = rng.randrange(3)
    if style == 0:
        if country == "BE":
            return f"+32 {nsn[:3]} {nsn[3:5]} {nsn[5:7]} {nsn[7:]}"
        return f"+34 {nsn[:3]} {nsn[3:6]} {nsn[6:]}"
    if style == 1:
        return f"00{code}{nsn}"
    return f"+{code}{nsn}"


def _e164_prefix(country: str) -> str:
    return {"FR": "+33", "BE": "+32", "ES": "+34"}[country]


def _title_or_upper(rng: random.Random, text: str, p_upper: float) -> str:
    if rng.random() < p_upper:
        return text.upper()
    if rng.random() < 0.03:
        return text.lower()
    return text


def _pad(rng: random.Random, text: str, p: float = 0.04) -> str:
    return text + " " if rng.random() < p else text


# --------------------------------------------------------------------------- people


def _make_people(rng: random.Random, size: int) -> list[_Person]:
    people: list[_Person] = []
    for i in range(size):
        gender = "F" if rng.random() < 0.56 else "M"
        first = rng.choice(FIRST_NAMES_F if gender == "F" else FIRST_NAMES_M)
        last = rng.choice(LAST_NAMES)
        r = rng.random()
        country = "FR" if r < 0.86 else ("BE" if r < 0.95 else "ES")
        cities = CITIES[country]
        postal, city = rng.choice(cities[:-1] if country == "FR" else cities)  # Saint-Denis is placed on purpose
        birth = date(1945, 1, 1) + timedelta(days=rng.randrange(61 * 365))
        people.append(_Person(i, f"P{i + 1:06d}", first, gender, last, country, postal, city, birth,
                              optin=rng.random() < 0.55))
    return people


def _assign_emails_and_phones(rng: random.Random, people: list[_Person]) -> None:
    used_emails: set[str] = set()
    used_numbers: set[str] = set()
    for p in people:
        f, l = _fold(p.first), _fold(p.last)
        yy = f"{p.birth.year % 100:02d}"
        patterns = [f"{f}.{l}", f"{f}{l}", f"{f[0]}.{l}", f"{l}.{f}", f"{f}_{l}", f"{f}.{l}{yy}",
                    f"{f}{l}{rng.randrange(1, 99)}", f"{f[0]}{l}"]
        local = rng.choice(patterns)
        domain = rng.choice(EMAIL_DOMAINS[p.country])
        email = f"{local}@{domain}"
        n = 2
        while email in used_emails:
            email = f"{local}{n}@{domain}"
            n += 1
        used_emails.add(email)
        p.email = email
        # mobiles start with 6/7 (FR, ES) or 4 (BE), household landlines with 1-5: never equal
        while True:
            if p.country == "FR":
                nsn = rng.choice(FR_MOBILE_PREFIXES) + f"{rng.randrange(10 ** 6):06d}"
            elif p.country == "BE":
                nsn = "4" + rng.choice("789") + f"{rng.randrange(10 ** 7):07d}"
            else:
                nsn = "6" + f"{rng.randrange(10 ** 8):08d}"
            e164 = _e164_prefix(p.country) + nsn
            if e164 not in used_numbers:
                break
        used_numbers.add(e164)
        p.mobile_nsn, p.mobile_e164 = nsn, e164


def _pick(rng: random.Random, people: list[_Person], k: int, cond=lambda p: True) -> list[_Person]:
    candidates = [p for p in people if not p.role and cond(p)]
    if len(candidates) < k:
        raise ValueError("size is too small for the demo company; use size >= 100")
    return rng.sample(candidates, k)


def _assign_roles(rng: random.Random, people: list[_Person]) -> list[list[_Person]]:
    size = len(people)
    used_numbers: set[str] = set()

    # households: 4 to 6 persons, same last name and town, one landline; all in CRM and e-shop
    households: list[list[_Person]] = []
    for _ in range(max(2, size // 400)):
        members = _pick(rng, people, rng.randint(4, 6), lambda p: p.country == "FR")
        head = members[0]
        while True:
            nsn = rng.choice(FR_LANDLINE_PREFIXES) + f"{rng.randrange(10 ** 7):07d}"
            if "+33" + nsn not in used_numbers:
                break
        used_numbers.add("+33" + nsn)
        for m in members:
            m.role = "household"
            m.last, m.postal, m.city = head.last, head.postal, head.city
            m.landline_nsn, m.landline_e164 = nsn, "+33" + nsn
        households.append(members)

    # memberships: ~70% CRM, ~60% e-shop, ~50% POS, everybody somewhere
    for p in people:
        if p.role == "household":
            p.in_crm = p.in_eshop = True
            p.in_pos = rng.random() < 0.5
            continue
        p.in_crm, p.in_eshop, p.in_pos = rng.random() < 0.68, rng.random() < 0.58, rng.random() < 0.48
        if not (p.in_crm or p.in_eshop or p.in_pos):
            which = rng.randrange(3)
            p.in_crm, p.in_eshop, p.in_pos = which == 0, which == 1, which == 2

    def role(name: str, k: int, crm=None, eshop=None, pos=None, cond=lambda p: True) -> list[_Person]:
        chosen = _pick(rng, people, k, cond)
        for p in chosen:
            p.role = name
            if crm is not None:
                p.in_crm = crm
            if eshop is not None:
                p.in_eshop = eshop
            if pos is not None:
                p.in_pos = pos
        return chosen

    role("junk_email", 3, eshop=True, pos=True)
    role("junk_phone_crm", max(2, size // 600), crm=True)
    role("junk_phone_pos", 1, pos=True)
    role("crm_dup", max(2, size // 250), crm=True)
    for p in role("unlinkable", max(2, size // 500), pos=True):
        if not (p.in_crm or p.in_eshop):
            p.in_eshop = True
    for p in role("bad_crm_extra", 1, crm=True, eshop=False, pos=False, cond=lambda p: p.country == "FR"):
        p.postal, p.city = SAINT_DENIS
    role("bad_crm_short", 1, crm=True, eshop=False, pos=False)
    role("bad_pos_key", 1, crm=False, eshop=False, pos=True)
    role("pos_dup", 1, pos=True)
    for p in role("crm_semicolon", 2, crm=True, cond=lambda p: p.country == "FR"):
        p.postal, p.city = SAINT_DENIS
    role("crm_multiline", 1, crm=True)
    role("crm_semicolon_note", 1, crm=True)

    by_city = {s[2]: s[0] for s in STORES}
    for p in people:
        p.store = by_city.get(p.city) or ("S08" if p.country == "BE" else rng.choice(STORES[:7])[0])
        if rng.random() < 0.15:
            p.store = rng.choice(STORES)[0]
    return households


# --------------------------------------------------------------------------- contact records


def _make_contacts(rng: random.Random, people: list[_Person], start: datetime, end: datetime
                   ) -> tuple[list[_Contact], list[_Contact], list[_Contact]]:
    crm: list[_Contact] = []
    eshop: list[_Contact] = []
    pos: list[_Contact] = []

    def phone_for(p: _Person, c: _Contact, present: bool, styles: list[str] | None = None) -> None:
        if p.landline_nsn and c.source != "pos_customers":
            c.phone = _format_phone(rng, "FR", p.landline_nsn, styles)
            c.phone_e164 = p.landline_e164
        elif present:
            c.phone = _format_phone(rng, p.country, p.mobile_nsn, styles)
            c.phone_e164 = p.mobile_e164

    for p in people:
        if p.in_crm:
            copies = 2 if p.role == "crm_dup" else 1
            for copy in range(copies):
                c = _Contact("crm_contacts", p)
                forced_email = p.role in ("household", "junk_phone_crm", "crm_dup")
                if forced_email or rng.random() < 0.9:
                    c.email = _style_email(rng, p.email, 0.3)
                if p.role == "junk_phone_crm" and copy == 0:
                    c.phone = JUNK_PHONE
                else:
                    phone_for(p, c, rng.random() < 0.72)
                typo = copy == 1 or rng.random() < 0.04
                c.extra = {
                    "first": _pad(rng, _typo(rng, p.first) if typo and rng.random() < 0.5 else p.first),
                    "last": _pad(rng, _title_or_upper(rng, _typo(rng, p.last) if typo else p.last, 0.6)),
                    "copy": copy,
                    # the duplicate entry is an old one nobody updates any more
                    "updated": _dt(rng, start + timedelta(days=365),
                                   end if copy == 0 else start + timedelta(days=3 * 365 + 180)),
                }
                crm.append(c)
        if p.in_eshop:
            c = _Contact("eshop_customers", p)
            c.email = _style_email(rng, p.email, 0.12)
            phone_for(p, c, p.role == "junk_email" or rng.random() < 0.66,
                      ["intl", "e164", "compact", "spaced", "e164"])
            typo = rng.random() < 0.05
            first = _typo(rng, p.first) if typo and rng.random() < 0.5 else p.first
            last = _typo(rng, p.last) if typo else p.last
            if rng.random() < 0.08:
                first, last = first.lower(), last.lower()
            created = _dt(rng, start, end - timedelta(days=30))
            c.extra = {"first": first, "last": last, "created": created,
                       "updated": _dt(rng, created, end)}
            eshop.append(c)
        if p.in_pos:
            copies = 2 if p.role == "pos_dup" else 1
            for copy in range(copies):
                c = _Contact("pos_customers", p)
                if p.role == "junk_email":
                    c.email, c.email_junk = JUNK_EMAIL, True
                    phone_for(p, c, True)
                elif p.role == "unlinkable":
                    c.linkable = False
                elif p.role == "junk_phone_pos":
                    c.email = _style_email(rng, p.email, 0.3)
                    c.phone = JUNK_PHONE
                else:
                    if rng.random() < 0.52:
                        c.email = _style_email(rng, p.email, 0.3)
                    phone_for(p, c, rng.random() < 0.85)
                    if c.email is None and c.phone is None:
                        phone_for(p, c, True)
                typo = rng.random() < 0.06
                c.extra = {
                    "first": _title_or_upper(rng, _typo(rng, p.first) if typo and rng.random() < 0.5 else p.first, 0.4),
                    "last": _title_or_upper(rng, _typo(rng, p.last) if typo else p.last, 0.5),
                    "signup": _dt(rng, start, end).date(),
                    "copy": copy,
                }
                if copy == 1:  # the second row of a card written twice: filled in after linking
                    c.linkable = False
                    c.extra["signup"] = pos[-1].extra["signup"]
                pos.append(c)
    return crm, eshop, pos


def _connect(records: list[_Contact]) -> list[list[_Contact]]:
    """Components of the records of one person linked by e-mail or non-shared phone."""
    parent = list(range(len(records)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_with: dict[str, int] = {}
    for i, r in enumerate(records):
        for k in (r.email_key and "e:" + r.email_key, r.phone_key and "p:" + r.phone_key):
            if not k:
                continue
            if k in first_with:
                parent[find(i)] = find(first_with[k])
            else:
                first_with[k] = i
    groups: dict[int, list[_Contact]] = {}
    for i, r in enumerate(records):
        groups.setdefault(find(i), []).append(r)
    return [groups[k] for k in sorted(groups)]


def _repair_links(rng: random.Random, people: list[_Person], contacts: list[_Contact]) -> None:
    """Give an e-mail to one record of every component that has none, so that the linkable
    records of every person end up connected."""
    by_person: dict[int, list[_Contact]] = {}
    for c in contacts:
        if c.linkable and not c.rejected:
            by_person.setdefault(c.person.idx, []).append(c)
    for idx in sorted(by_person):
        records = by_person[idx]
        if len(records) < 2:
            continue
        comps = _connect(records)
        if len(comps) == 1:
            continue
        has_email = [any(r.email_key for r in comp) for comp in comps]
        for comp, ok in zip(comps, has_email):
            if ok:
                continue
            target = next((r for r in comp if r.email is None), None)
            if target is None:
                raise AssertionError(f"cannot link the records of {people[idx].pid}")
            target.email = _style_email(rng, people[idx].email, 0.3)
        if len(_connect(records)) != 1:
            raise AssertionError(f"cannot link the records of {people[idx].pid}")


# --------------------------------------------------------------------------- writers


def _csv_row(values: list[str], delimiter: str, terminator: str) -> str:
    buf = io.StringIO()
    csv.writer(buf, delimiter=delimiter, lineterminator=terminator, quoting=csv.QUOTE_MINIMAL).writerow(values)
    return buf.getvalue()


class _LineWriter:
    """Collects rendered rows and tracks the physical line each row starts on."""

    def __init__(self, header: str):
        self.parts = [header]
        self.next_line = 1 + header.count("\n")
        self.rows = 0

    def add(self, text: str) -> int:
        line = self.next_line
        self.parts.append(text)
        self.next_line += text.count("\n")
        self.rows += 1
        return line

    def text(self) -> str:
        return "".join(self.parts)


def _write(path: Path, text: str, bom: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((("\ufeff" if bom else "") + text).encode("utf-8"))


def _products(rng: random.Random) -> list[tuple[str, str, str, int]]:
    products = []
    n = 1
    for category, (nouns, low, high) in CATEGORIES.items():
        combos = [(noun, finish) for noun in nouns for finish in FINISHES]
        for noun, finish in sorted(rng.sample(combos, PRODUCTS_PER_CATEGORY)):
            euros = rng.randint(low, high)
            cents = euros * 100 - rng.choice([1, 10, 1, 1])
            products.append((f"PRD{n:04d}", f"{noun} {finish}", category, cents))
            n += 1
    return products


def _basket(rng: random.Random, products, max_lines: int, level: float | None = None) -> list[tuple[str, int, int]]:
    """Order lines; ``products`` sorted by price. A customer's ``level`` (0-1) is where in the price
    range they usually buy, so that customers differ in what they spend per order."""
    n_lines = rng.choices(range(1, max_lines + 1), [50, 28, 13, 6, 3][:max_lines])[0]
    chosen: list[tuple] = []
    while len(chosen) < n_lines:
        if level is None:
            prod = rng.choice(products)
        else:
            at = min(max(level + rng.uniform(-0.15, 0.15), 0.0), 0.999)
            prod = products[int(at * len(products))]
        if prod in chosen or (prod[2] == "Mobilier" and rng.random() < 0.6):  # furniture sells less
            continue
        chosen.append(prod)
    lines = []
    for prod in chosen:
        qty = 1 if prod[2] == "Mobilier" else rng.choice([1, 1, 1, 2, 2, 3, 4])
        lines.append((prod[0], qty, prod[3]))
    return lines


# --------------------------------------------------------------------------- main entry


def generate(out_dir: str | Path, size: int = 2000, seed: int = 7, end: date | None = None) -> DemoInfo:
    """Write the Maison Lumière demo company under ``out_dir`` and return what was written.

    ``size`` is the number of real persons (at least 100): about 70% of them are in the CRM,
    60% have an e-shop account and 50% a loyalty card. The history covers the seven years up to
    ``end`` (default: today), so that scores and predictions computed today see a living company
    whose customers buy at their own pace and some of them stop. Same ``size``, ``seed`` and
    ``end``, same bytes.
    """
    if size < 100:
        raise ValueError("size must be at least 100")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed * 1_000_003 + size)
    history_end = datetime.combine(end or date.today(), CLOSING)
    history_start = history_end - HISTORY

    people = _make_people(rng, size)
    households = _assign_roles(rng, people)
    _assign_emails_and_phones(rng, people)
    crm, eshop, pos = _make_contacts(rng, people, history_start, history_end)
    info = DemoInfo(out_dir=out, workspace_path=out / WORKSPACE_FILE, truth_path=out / TRUTH_FILE,
                    size=size, seed=seed)

    # ---------------------------------------------------------------- CRM: order, ids, bad rows
    rng.shuffle(crm)
    extra_bad = next(c for c in crm if c.person.role == "bad_crm_extra")
    short_bad = next(c for c in crm if c.person.role == "bad_crm_short")
    crm.remove(extra_bad)
    crm.remove(short_bad)
    crm.insert(3, extra_bad)
    crm.insert(len(crm) // 2, short_bad)
    # a duplicate CRM entry is created after the original one
    for c in [c for c in crm if c.extra["copy"] == 1]:
        crm.remove(c)
        original = next(i for i, o in enumerate(crm) if o.person is c.person)
        crm.insert(rng.randint(original + 1, len(crm)), c)
    number = 100000
    for c in crm:
        number += rng.randint(1, 3)
        c.key = f"CL{number}"
    extra_bad.rejected = short_bad.rejected = True

    # ---------------------------------------------------------------- e-shop and POS keys
    eshop.sort(key=lambda c: (c.extra["created"], c.person.idx))
    number = 100
    for c in eshop:
        number += rng.randint(1, 4)
        c.key = f"W{number:06d}"
    pos.sort(key=lambda c: (c.extra["signup"], c.person.idx, c.extra["copy"]))
    used_cards: set[str] = set()
    for c in pos:
        if c.extra["copy"] == 1:
            continue
        while True:
            card = f"2900{rng.randrange(10 ** 9):09d}"
            if card not in used_cards:
                break
        used_cards.add(card)
        c.key = card
    dup_first = next(c for c in pos if c.person.role == "pos_dup" and c.extra["copy"] == 0)
    dup_second = next(c for c in pos if c.person.role == "pos_dup" and c.extra["copy"] == 1)
    dup_second.key = dup_first.key
    pos.remove(dup_second)
    at = pos.index(dup_first)
    pos.insert(min(len(pos), at + rng.randint(3, 12)), dup_second)
    info.duplicated_card = dup_first.key
    bad_key = next(c for c in pos if c.person.role == "bad_pos_key")
    bad_key.key = ""  # the card number was not captured
    bad_key.rejected = True

    _repair_links(rng, people, crm + eshop + pos)
    dup_second.email, dup_second.phone, dup_second.phone_e164 = dup_first.email, dup_first.phone, dup_first.phone_e164
    dup_second.email_junk = dup_first.email_junk

    # ---------------------------------------------------------------- write CRM
    crm_writer = _LineWriter(_csv_row(CRM_HEADER, ";", "\r\n"))
    country_seen: dict[str, int] = {}
    for c in crm:
        p = c.person
        spellings = CRM_COUNTRY_SPELLINGS[p.country]
        # every spelling shows up: the first rows of a country go through all of them
        n_seen = country_seen[p.country] = country_seen.get(p.country, -1) + 1
        country = spellings[n_seen] if n_seen < len(spellings) else rng.choice(spellings)
        civ = "" if rng.random() < 0.05 else ("Mme" if p.gender == "F" else "M.")
        birth = p.birth.strftime("%d/%m/%Y") if rng.random() < 0.8 else ""
        has_address = rng.random() < 0.88 or p.role in ("crm_semicolon", "bad_crm_extra")
        city = p.city.upper() if has_address and rng.random() < 0.2 and ";" not in p.city else p.city
        note = ""
        if p.role == "crm_multiline":
            note = CRM_NOTE_MULTILINE
        elif p.role == "crm_semicolon_note":
            note = CRM_NOTES[2]
        elif p.role not in ("bad_crm_extra", "bad_crm_short") and rng.random() < 0.05:
            note = rng.choice(CRM_NOTES[:2] + CRM_NOTES[3:])
        values = [
            c.key, civ, c.extra["first"], c.extra["last"], c.email or "", c.phone or "", birth,
            p.postal if has_address else "", city if has_address else "",
            country if n_seen < len(spellings) or rng.random() < 0.97 else "",
            "1" if p.optin else "0", c.extra["updated"].strftime("%d/%m/%Y %H:%M"), note,
        ]
        if c is extra_bad:
            text = ";".join(values) + "\r\n"  # the town's ';' is not quoted: one column too many
            line = crm_writer.add(text)
            info.malformed.append((CRM_FILE, line, "too many columns: unquoted ';' in ville"))
        elif c is short_bad:
            text = ";".join(values[:8]) + "\r\n"
            line = crm_writer.add(text)
            info.malformed.append((CRM_FILE, line, "too few columns: row cut after code_postal"))
        else:
            crm_writer.add(_csv_row(values, ";", "\r\n"))
    _write(out / CRM_FILE, crm_writer.text(), bom=True)
    info.rows[CRM_FILE] = crm_writer.rows

    # ---------------------------------------------------------------- write e-shop customers
    accounts = []
    for c in eshop:
        p = c.person
        accounts.append({
            "customer_id": c.key,
            "email": c.email,
            "first_name": c.extra["first"],
            "last_name": c.extra["last"],
            "phone": c.phone,
            "birthdate": p.birth.isoformat() if rng.random() < 0.55 else None,
            "country": p.country,
            "created_at": _iso(c.extra["created"]),
            "updated_at": _iso(c.extra["updated"]),
            "newsletter": p.optin if rng.random() < 0.9 else not p.optin,
        })
    _write(out / ESHOP_CUSTOMERS_FILE, json.dumps(accounts, ensure_ascii=False, indent=2) + "\n")
    info.rows[ESHOP_CUSTOMERS_FILE] = len(accounts)

    # ---------------------------------------------------------------- catalog
    products = _products(rng)
    text = _csv_row(["product_id", "name", "category", "unit_price"], ",", "\n")
    text += "".join(_csv_row([pid, name, cat, _money(cents)], ",", "\n") for pid, name, cat, cents in products)
    _write(out / PRODUCTS_FILE, text)
    info.rows[PRODUCTS_FILE] = len(products)
    text = _csv_row(["store_id", "name", "city", "country"], ",", "\n")
    text += "".join(_csv_row(list(s), ",", "\n") for s in STORES)
    _write(out / STORES_FILE, text)
    info.rows[STORES_FILE] = len(STORES)

    # ---------------------------------------------------------------- e-shop orders
    orders = []  # (date, customer_id, customer_email, lines, discount, channel, status)
    for c in eshop:
        # a third of the accounts never order
        for when in _purchases(rng, c.extra["created"], history_end, first=False) if rng.random() < 0.67 else []:
            orders.append([when, c.key, _style_email(rng, c.person.email, 0.15), c.person.idx])
    guests = [c for c in crm if not c.person.in_eshop and c.email and not c.rejected]
    for c in rng.sample(guests, min(len(guests), max(3, len(people) // 60))):
        orders.append([_dt(rng, history_start, history_end), None, _style_email(rng, c.person.email, 0.15), c.person.idx])
    orders.sort(key=lambda o: (o[0], o[3]))
    order_lines: list[str] = []
    item_lines: list[str] = []
    truncated_at = len(orders) // 3
    by_price = sorted(products, key=lambda p: (p[3], p[0]))
    levels: dict = {}  # a customer's usual price level (see _basket)

    def level_of(who) -> float:
        if who not in levels:
            levels[who] = rng.betavariate(1.5, 2.5)
        return levels[who]

    for n, (when, customer_id, email, idx) in enumerate(orders):
        order_id = f"CMD{n + 1:07d}"
        basket = _basket(rng, by_price, 4, level_of(idx))
        gross = sum(q * cents for _, q, cents in basket)
        discount = 0
        if rng.random() < 0.15:
            discount = rng.choice([500, 1000, gross // 10])
        record = {
            "order_id": order_id,
            "customer_id": customer_id,
            "customer_email": email,
            "order_date": _iso(when),
            "total_amount": (gross - discount) / 100,
            "discount_amount": discount / 100,
            "channel": "app" if rng.random() < 0.3 else "web",
            "status": rng.choices(["delivered", "shipped", "cancelled", "returned"], [82, 6, 7, 5])[0],
        }
        line = json.dumps(record, ensure_ascii=False)
        if n == truncated_at:
            line = line[: len(line) // 2]
            info.malformed.append((ORDERS_FILE, n + 1, "truncated JSON line"))
        order_lines.append(line + "\n")
        for line_no, (product_id, qty, cents) in enumerate(basket, start=1):
            item_lines.append(json.dumps({"order_id": order_id, "line_no": line_no, "product_id": product_id,
                                          "quantity": qty, "unit_price": cents / 100}, ensure_ascii=False) + "\n")
    _write(out / ORDERS_FILE, "".join(order_lines))
    _write(out / ORDER_ITEMS_FILE, "".join(item_lines))
    info.rows[ORDERS_FILE] = len(order_lines)
    info.rows[ORDER_ITEMS_FILE] = len(item_lines)

    # ---------------------------------------------------------------- POS customers
    pos_writer = _LineWriter(_csv_row(POS_HEADER, ",", "\n"))
    for c in pos:
        p = c.person
        values = [c.key, c.extra["first"], c.extra["last"], c.email or "", c.phone or "", p.store,
                  c.extra["signup"].isoformat()]
        line = pos_writer.add(_csv_row(values, ",", "\n"))
        if c is bad_key:
            info.malformed.append((POS_CUSTOMERS_FILE, line, "empty card_number (record key)"))
        elif c is dup_second:
            info.malformed.append((POS_CUSTOMERS_FILE, line, f"duplicated card_number {c.key} (second occurrence)"))
    _write(out / POS_CUSTOMERS_FILE, pos_writer.text())
    info.rows[POS_CUSTOMERS_FILE] = pos_writer.rows

    # ---------------------------------------------------------------- POS tickets
    tickets = []  # (date, card, store)
    for c in pos:
        if c.extra["copy"] == 1 or not c.key:
            continue
        start = datetime.combine(c.extra["signup"], datetime.min.time()) + timedelta(hours=10)
        # a loyalty card is usually taken at a purchase
        for when in _purchases(rng, start, history_end, first=rng.random() < 0.8):
            store = c.person.store if rng.random() < 0.85 else rng.choice(STORES)[0]
            tickets.append((when, c.key, store))
    for _ in range(max(10, len(tickets) // 3)):
        tickets.append((_dt(rng, history_start, history_end), "", rng.choice(STORES)[0]))
    tickets.sort(key=lambda t: (t[0], t[1], t[2]))
    ticket_writer = _LineWriter(_csv_row(TICKET_HEADER, ",", "\n"))
    item_text = [_csv_row(TICKET_ITEM_HEADER, ",", "\n")]
    bad_amount_at = (2 * len(tickets)) // 3
    n_items = 0
    for n, (when, card, store) in enumerate(tickets):
        ticket_id = f"T{n + 1:07d}"
        basket = _basket(rng, by_price, 5, level_of(("card", card)) if card else None)
        gross = sum(q * cents for _, q, cents in basket)
        discount = gross // 20 if card and rng.random() < 0.2 else 0
        amount = _money(gross - discount)
        if n == bad_amount_at:
            amount = "12,5O"
        line = ticket_writer.add(_csv_row([ticket_id, card, store, when.strftime("%Y-%m-%d %H:%M:%S"),
                                           amount, _money(discount)], ",", "\n"))
        if n == bad_amount_at:
            info.malformed.append((TICKETS_FILE, line, "amount '12,5O' is not a number"))
        for line_no, (product_id, qty, cents) in enumerate(basket, start=1):
            item_text.append(_csv_row([ticket_id, str(line_no), product_id, str(qty), _money(cents)], ",", "\n"))
            n_items += 1
    _write(out / TICKETS_FILE, ticket_writer.text())
    _write(out / TICKET_ITEMS_FILE, "".join(item_text))
    info.rows[TICKETS_FILE] = ticket_writer.rows
    info.rows[TICKET_ITEMS_FILE] = n_items

    # ---------------------------------------------------------------- truth and identity facts
    truth = [_csv_row(["source", "record_key", "person_id"], ",", "\n")]
    seen: set[tuple[str, str]] = set()
    for c in crm + eshop + pos:
        if (c.source, c.key) in seen:  # the card written twice is one record of one person
            continue
        seen.add((c.source, c.key))
        truth.append(_csv_row([c.source, c.key, c.person.pid], ",", "\n"))
        info.contact_records[c.source] = info.contact_records.get(c.source, 0) + 1
        if c.rejected:
            info.rejected.append((c.source, c.key))
        elif not c.linkable:
            info.unlinkable.append((c.source, c.key))
    _write(out / TRUTH_FILE, "".join(truth))

    for members in households:
        e164 = members[0].landline_e164
        info.shared_phones[e164] = sum(1 for c in crm + eshop + pos if c.phone_e164 == e164 and not c.rejected)
        if info.shared_phones[e164] <= SHARED_VALUE_THRESHOLD + 2:
            raise AssertionError("a household landline must be carried by more records than the threshold")
        info.households.append([m.pid for m in members])
    info.crm_duplicates = []
    for p in people:
        if p.role == "crm_dup":
            keys = [c.key for c in crm if c.person is p]
            info.crm_duplicates.append((p.pid, keys[0], keys[1]))
    info.junk_values = [JUNK_EMAIL, JUNK_PHONE]
    info.blocked_values = [JUNK_EMAIL, JUNK_PHONE, JUNK_PHONE_E164]
    info.malformed.sort()

    text = (f"# {COMPANY} demo workspace (size={size}, seed={seed}).\n"
            "# Files are read from ./data; truth.csv holds the real person behind every contact record.\n")
    text += dump_yaml(workspace_config(info.blocked_values, SHARED_VALUE_THRESHOLD, as_of=history_end.date()))
    _write(out / WORKSPACE_FILE, text)
    return info


# --------------------------------------------------------------------------- workspace.yaml


class _PlainDumper(yaml.SafeDumper):
    """Writes shared sub-objects in full instead of YAML anchors and aliases."""

    def ignore_aliases(self, data) -> bool:
        return True


def dump_yaml(config: dict) -> str:
    return yaml.dump(config, Dumper=_PlainDumper, sort_keys=False, allow_unicode=True,
                     default_flow_style=False, width=110)


def _col(name: str, semantic: str | None = None, merge: str | None = None, type: str | None = None,
         normalize: list | None = None) -> dict:
    col: dict = {"name": name}
    if type:
        col["type"] = type
    if semantic:
        col["semantic"] = semantic
    if merge:
        col["merge"] = merge
    if normalize:
        col["normalize"] = normalize
    return col


def workspace_config(blocked_values: list[str], shared_value_threshold: int, *, as_of: date) -> dict:
    """The Tessera configuration of the demo company, as a plain dict (``workspace.yaml``)."""
    phone_fr = {"phone": {"country": "FR"}}
    junk_phone = {"null_like": ["", JUNK_PHONE, "00 00 00 00 00"]}
    names = {"first_name": ["trim", "title"], "last_name": ["trim", "title"]}
    sources = [
        {
            "name": "crm_contacts",
            "description": "CRM export (French headers, ';' separated, day-first dates)",
            "connection": "demo_files",
            "pattern": "crm/contacts_*.csv",
            "format": "csv",
            "csv": {"delimiter": ";"},
            "record_keys": ["id_client"],
            "types": {"id_client": "string", "code_postal": "string", "telephone": "string",
                      "optin_email": "boolean"},
            "normalize": {
                "courriel": ["email"],
                "telephone": [junk_phone, phone_fr],
                "date_naissance": [{"date": {"format": "%d/%m/%Y"}}],
                "pays": ["country"],
                "prenom": ["trim", "title"],
                "nom": ["trim", "title"],
                "ville": ["trim", "title"],
                "civilite": ["gender"],
                "commentaire": [{"null_like": True}],
            },
        },
        {
            "name": "eshop_customers",
            "description": "E-shop accounts",
            "connection": "demo_files",
            "pattern": "eshop/customers.json",
            "format": "json",
            "record_keys": ["customer_id"],
            "types": {"birthdate": "date", "newsletter": "boolean"},
            "normalize": {"email": ["email"], "phone": [junk_phone, phone_fr], "country": ["country"], **names},
        },
        {
            "name": "eshop_orders",
            "description": "E-shop orders; customer_email is the address typed at checkout",
            "connection": "demo_files",
            "pattern": "eshop/orders.ndjson",
            "format": "ndjson",
            "record_keys": ["order_id"],
            "types": {"order_date": "timestamp", "total_amount": "float", "discount_amount": "float"},
            "normalize": {"customer_email": ["email"]},
            "relations": [
                {"column": "customer_id", "to": "eshop_customers.customer_id"},
                {"column": "customer_email", "to": "contacts.email"},
            ],
        },
        {
            "name": "eshop_order_items",
            "connection": "demo_files",
            "pattern": "eshop/order_items.ndjson",
            "format": "ndjson",
            "record_keys": ["order_id", "line_no"],
            "types": {"line_no": "integer", "quantity": "integer", "unit_price": "float"},
            "relations": [{"column": "order_id", "to": "eshop_orders.order_id"},
                          {"column": "product_id", "to": "products.product_id"}],
        },
        {
            "name": "pos_customers",
            "description": "Loyalty card holders registered in the shops",
            "connection": "demo_files",
            "pattern": "pos/customers_pos.csv",
            "format": "csv",
            "csv": {"delimiter": ","},
            "record_keys": ["card_number"],
            # the shops' system writes a card twice when it is re-linked: the first row is the card holder
            "on_duplicate_key": "first",
            "types": {"card_number": "string", "mobile": "string", "signup_date": "date"},
            "normalize": {"email": [{"null_like": True}, "email"], "mobile": [junk_phone, phone_fr], **names},
        },
        {
            "name": "pos_tickets",
            "description": "Shop receipts; card_number is empty for anonymous purchases",
            "connection": "demo_files",
            "pattern": "pos/tickets.csv",
            "format": "csv",
            "csv": {"delimiter": ","},
            "record_keys": ["ticket_id"],
            "types": {"card_number": "string", "ticket_date": "timestamp", "amount": "float", "discount": "float"},
            "normalize": {"card_number": [{"null_like": True}]},
            "relations": [{"column": "card_number", "to": "pos_customers.card_number"}],
        },
        {
            "name": "pos_ticket_items",
            "connection": "demo_files",
            "pattern": "pos/ticket_items.csv",
            "format": "csv",
            "csv": {"delimiter": ","},
            "record_keys": ["ticket_id", "line_no"],
            "types": {"line_no": "integer", "quantity": "integer", "unit_price": "float"},
            "relations": [{"column": "ticket_id", "to": "pos_tickets.ticket_id"},
                          {"column": "product_id", "to": "products.product_id"}],
        },
        {
            "name": "products",
            "connection": "demo_files",
            "pattern": "catalog/products.csv",
            "format": "csv",
            "csv": {"delimiter": ","},
            "record_keys": ["product_id"],
            "types": {"unit_price": "float"},
        },
        {
            "name": "stores",
            "connection": "demo_files",
            "pattern": "catalog/stores.csv",
            "format": "csv",
            "csv": {"delimiter": ","},
            "record_keys": ["store_id"],
            "normalize": {"country": ["country"]},
        },
    ]
    timestamp_rule = [{"date": {"dayfirst": True}}]
    contacts = {
        "name": "contacts",
        "entity": "contacts",
        "deduplicate": True,
        "identity_keys": [{"column": "email"}, {"column": "phone"}, {"column": "loyalty_card", "limit": 1}],
        "blocked_values": list(blocked_values),
        "shared_value_threshold": shared_value_threshold,
        "date_column": "updated_at",
        "source_priority": ["crm_contacts", "eshop_customers", "pos_customers"],
        "columns": [
            _col("email", "Email", "most_recent", "string", ["email"]),
            _col("phone", "Phone", "most_recent", "string"),
            _col("first_name", "FirstName", "most_frequent", "string"),
            _col("last_name", "LastName", "most_frequent", "string"),
            _col("gender", "Gender", "non_null_most_recent", "string"),
            _col("birth_date", "BirthDate", "non_null_most_recent", "date"),
            _col("postal_code", "PostalCode", "non_null_most_recent", "string"),
            _col("city", "City", "non_null_most_recent", "string"),
            _col("country", "Country", "most_frequent", "string"),
            _col("email_optin", "EmailOptIn", "most_recent", "boolean"),
            _col("loyalty_card", "LoyaltyCard", "concat_unique", "string"),
            _col("crm_id", "CustomerId", "concat_unique", "string"),
            _col("eshop_id", "Other", "concat_unique", "string"),
            _col("updated_at", "UpdatedAt", "max", "timestamp", timestamp_rule),
            _col("created_at", "CreatedAt", "min", "timestamp", timestamp_rule),
        ],
        "mappings": [
            {"source": "crm_contacts", "columns": {
                "crm_id": "id_client", "email": "courriel", "phone": "telephone", "first_name": "prenom",
                "last_name": "nom", "gender": "civilite", "birth_date": "date_naissance",
                "postal_code": "code_postal", "city": "ville", "country": "pays", "email_optin": "optin_email",
                "updated_at": "date_maj"}},
            {"source": "eshop_customers", "columns": {
                "eshop_id": "customer_id", "email": "email", "phone": "phone", "first_name": "first_name",
                "last_name": "last_name", "birth_date": "birthdate", "country": "country",
                "email_optin": "newsletter", "created_at": "created_at", "updated_at": "updated_at"}},
            {"source": "pos_customers", "columns": {
                "loyalty_card": "card_number", "email": "email", "phone": "mobile", "first_name": "first_name",
                "last_name": "last_name", "created_at": "signup_date", "updated_at": "signup_date"}},
        ],
        "aggregates": [
            {"name": "orders_last_2_years", "from": "orders", "function": "count", "last": 2, "unit": "years"},
            {"name": "eshop_revenue", "from": "orders", "function": "sum", "column": "amount",
             "filter": "eshop_customer_id IS NOT NULL"},
        ],
        "scores": {
            "library": ["rfm", "purchase_timing", "order_stats", "discounts", "stores", "channels", "categories",
                        "items"],
            "predictive": True,
        },
    }
    orders = {
        "name": "orders",
        "entity": "orders",
        "deduplicate": False,
        "columns": [
            _col("order_id", "OrderId", type="string"),
            _col("order_date", "OrderDate", type="timestamp"),
            _col("amount", "OrderAmount", type="float"),
            _col("discount", "DiscountAmount", type="float"),
            _col("web_channel", "Other", type="string"),
            _col("status", "Other", type="string"),
            _col("store_id", "Store", type="string"),
            _col("eshop_customer_id", "Other", type="string"),
            _col("customer_email", "Other", type="string"),
            _col("loyalty_card", "LoyaltyCard", type="string"),
        ],
        "mappings": [
            {"source": "eshop_orders", "columns": {
                "order_id": "order_id", "order_date": "order_date", "amount": "total_amount",
                "discount": "discount_amount", "web_channel": "channel", "status": "status",
                "eshop_customer_id": "customer_id", "customer_email": "customer_email"}},
            {"source": "pos_tickets", "columns": {
                "order_id": "ticket_id", "order_date": "ticket_date", "amount": "amount", "discount": "discount",
                "store_id": "store_id", "loyalty_card": "card_number"}},
        ],
        # The e-shop says web or app; a ticket of a shop is the channel "store".
        "computed": [{"name": "channel", "semantic": "Channel",
                      "sql": "coalesce(web_channel, CASE WHEN store_id IS NOT NULL THEN 'store' END)"}],
    }
    item_columns = {"order_id": "order_id", "line_no": "line_no", "product_id": "product_id",
                    "quantity": "quantity", "unit_price": "unit_price"}
    order_items = {
        "name": "order_items",
        "entity": "order_items",
        "columns": [
            _col("order_id", "OrderId", type="string"),
            _col("line_no", "Other", type="integer"),
            _col("product_id", "ProductId", type="string"),
            _col("quantity", "Quantity", type="integer"),
            _col("unit_price", "UnitPrice", type="float"),
        ],
        "mappings": [
            {"source": "eshop_order_items", "columns": dict(item_columns)},
            {"source": "pos_ticket_items", "columns": {**item_columns, "order_id": "ticket_id"}},
        ],
    }
    products = {
        "name": "products",
        "entity": "products",
        "columns": [
            _col("product_id", "ProductId", type="string"),
            _col("name", "ProductName", type="string"),
            _col("category", "ProductCategory", type="string"),
            _col("unit_price", "UnitPrice", type="float"),
        ],
        "mappings": [{"source": "products", "columns": {
            "product_id": "product_id", "name": "name", "category": "category", "unit_price": "unit_price"}}],
    }
    stores = {
        "name": "stores",
        "entity": "stores",
        "columns": [
            _col("store_id", "StoreId", type="string"),
            _col("name", "StoreName", type="string"),
            _col("city", "City", type="string"),
            _col("country", "Country", type="string"),
        ],
        "mappings": [{"source": "stores", "columns": {
            "store_id": "store_id", "name": "name", "city": "city", "country": "country"}}],
    }
    return {
        "connections": [{"name": "demo_files", "type": "local", "path": "data"}],
        "sources": sources,
        "datasets": [contacts, orders, order_items, products, stores],
        "segments": demo_segments(),
        # The company's data ends on END: scores, windows and segments are computed at that day.
        "pipeline": {"as_of": as_of.isoformat()},
    }


def demo_segments() -> list[dict]:
    """The demo company's segments (see docs/segments.md)."""
    return [
        {"name": "vip", "description": "Best customers: RFM champions, or 1,000 EUR spent in two years",
         "match": "any", "conditions": [
             {"column": "score_rfm_segment", "op": "=", "value": "Champions"},
             {"aggregate": "sum", "from": "orders", "column": "amount", "op": ">=", "value": 1000, "last": 2,
              "unit": "years", "filter": "status IS NULL OR status NOT IN ('cancelled', 'returned')"}]},
        {"name": "at_risk_of_churn", "description": "Repeat customers late for their next order, not lapsed yet",
         "conditions": [
             {"column": "score_total_order_count", "op": ">=", "value": 2},
             {"any": [{"column": "score_purchase_timing", "op": "in", "value": ["overdue", "significantly overdue"]},
                      {"column": "score_days_since_last_order", "op": ">", "value": 180}],
              "label": "late for their next order, or no order for 6 months"},
             {"not": {"segment": "lapsed"}, "label": "not lapsed"}]},
        {"name": "lapsed", "description": "Customers without an order for a year",
         "conditions": [
             {"column": "score_last_order_date", "op": "more_than_ago", "value": 12, "unit": "months"}]},
        {"name": "new_this_month", "description": "Signed up or first ordered in the last month",
         "match": "any", "conditions": [
             {"column": "created_at", "op": "in_last", "value": 1, "unit": "months"},
             {"column": "score_first_order_date", "op": "in_last", "value": 1, "unit": "months"}]},
        {"name": "cart_abandoners", "description": "An order cancelled in the last 90 days and none completed since "
                                                   "(the demo collects no web events; with events, use did: "
                                                   "Added to Cart)",
         "conditions": [
             {"aggregate": "count", "from": "orders", "filter": "status = 'cancelled'", "op": ">=", "value": 1,
              "last": 90, "label": "cancelled an order in the last 90 days"},
             {"not": {"aggregate": "count", "from": "orders", "filter": "status IN ('delivered', 'shipped')",
                      "op": ">=", "value": 1, "last": 30},
              "label": "no completed order in the last 30 days"}]},
        {"name": "omnichannel", "description": "Customers who buy both online and in the shops",
         "conditions": [
             {"aggregate": "count", "from": "orders", "filter": "channel IN ('web', 'app')", "op": ">=", "value": 1,
              "label": "ordered online"},
             {"aggregate": "count", "from": "orders", "filter": "store_id IS NOT NULL", "op": ">=", "value": 1,
              "label": "bought in a shop"}]},
    ]
