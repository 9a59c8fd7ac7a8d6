"""Suggest the semantic field of a column from its name (English, French, Spanish).

Names are compared without accents nor case, and with ``_``, ``-``, space, ``.`` and camelCase
boundaries all equivalent: ``E-mail``, ``e_mail``, ``eMail`` and ``EMAIL`` are the same name.
Small words (de, du, la, of, the, del...) are ignored, so ``date_de_naissance`` is
``date_naissance``.

A name that is not a known synonym may contain one (``customer_email``, ``tel_portable``,
``date_naissance_client``); the longest synonym found wins, ties go to the field listed first
in :data:`SYNONYMS`. Plural names are tried in the singular. A ``sample_type`` (the column's
type: string, integer, float, decimal, boolean, date, timestamp) that cannot hold the suggested
field cancels the suggestion (a ``total`` column of dates is not an amount).
"""

from __future__ import annotations

import functools
import re
import unicodedata

from tessera.config.models import SEMANTIC_FIELDS

# Listed by priority: on a tie between two synonyms of the same length, the first field wins.
SYNONYMS: dict[str, list[str]] = {
    "EmailOptIn": [
        "email_optin", "optin_email", "email_opt_in", "opt_in_email", "optin", "opt_in", "newsletter",
        "consentement", "consentement_email", "consent", "email_consent", "marketing_consent", "subscribed",
        "abonne_newsletter",
    ],
    "SmsOptIn": ["sms_optin", "optin_sms", "sms_opt_in", "opt_in_sms", "sms_consent", "consentement_sms"],
    "PhoneOptIn": ["phone_optin", "optin_phone", "phone_opt_in", "call_optin", "phone_consent"],
    "AdsOptIn": ["ads_optin", "optin_ads", "ads_opt_in", "ads_consent", "advertising_consent", "ad_consent"],
    "Email": [
        "email", "e_mail", "mail", "courriel", "correo", "correo_electronico", "email_address",
        "adresse_email", "adresse_mail", "adresse_e_mail", "adresse_courriel", "direccion_correo",
        "direccion_email", "direccion_correo_electronico",
    ],
    "Phone": [
        "phone", "telephone", "tel", "mobile", "portable", "movil", "telefono", "celular", "phone_number",
        "mobile_phone", "cell", "cellphone", "cell_phone", "gsm", "numero_telephone", "num_tel", "telefono_movil",
    ],
    "AnonymousId": ["anonymous_id", "cookie_id", "visitor_id", "device_id"],
    "CustomerId": [
        "customer_id", "client_id", "id_client", "id_cliente", "user_id", "customer_number", "customer_no",
        "client_number", "numero_client", "num_client", "no_client", "code_client", "ref_client", "contact_id",
        "numero_cliente", "codigo_cliente",
    ],
    "LoyaltyCard": [
        "loyalty_card", "carte_fidelite", "tarjeta_fidelidad", "card", "loyalty_card_number", "loyalty_number",
        "loyalty_id", "fidelity_card", "numero_carte", "carte", "tarjeta", "numero_carte_fidelite",
    ],
    "OrderId": [
        "order_id", "id_commande", "numero_commande", "id_pedido", "order_number", "order_no", "num_commande",
        "ref_commande", "numero_pedido", "transaction_id", "ticket_id", "id_ticket", "numero_ticket",
    ],
    "OrderDate": [
        "order_date", "date_commande", "fecha_pedido", "purchase_date", "date_achat", "transaction_date",
        "date_vente", "fecha_compra", "date_ticket", "fecha_venta",
    ],
    "DiscountAmount": [
        "discount", "remise", "descuento", "discount_amount", "montant_remise", "importe_descuento", "reduction",
    ],
    "OrderAmount": [
        "amount", "total", "montant", "importe", "total_amount", "order_total", "order_amount", "montant_total",
        "montant_ttc", "total_ttc", "revenue", "importe_total",
    ],
    "StoreId": ["store_id", "id_magasin", "id_tienda", "code_magasin", "shop_id", "id_boutique", "store_code"],
    "StoreName": ["store_name", "nom_magasin", "nombre_tienda", "shop_name", "nom_boutique"],
    "Store": ["store", "magasin", "boutique", "tienda", "shop", "point_vente"],
    "Channel": ["channel", "canal", "sales_channel", "canal_vente"],
    "ProductId": [
        "product_id", "sku", "id_produit", "ref_produit", "reference_produit", "code_produit", "product_code",
        "id_producto", "ean", "article_id", "id_article",
    ],
    "ProductName": ["product_name", "nom_produit", "libelle", "libelle_produit", "nombre_producto", "designation"],
    "ProductCategory": ["category", "categorie", "categoria", "product_category", "categorie_produit", "famille"],
    "Quantity": ["quantity", "quantite", "cantidad", "qty", "qte", "nb_articles"],
    "UnitPrice": ["unit_price", "prix_unitaire", "precio_unitario", "price", "prix", "precio", "pu"],
    "BirthDate": [
        "birth_date", "birthdate", "date_naissance", "fecha_nacimiento", "dob", "date_of_birth", "birthday",
        "naissance", "ddn", "fecha_nac",
    ],
    "CreatedAt": [
        "created_at", "date_creation", "date_inscription", "fecha_alta", "created", "creation_date",
        "signup_date", "registration_date", "date_created", "fecha_creacion", "fecha_registro",
    ],
    "UpdatedAt": [
        "updated_at", "date_maj", "date_modification", "updated", "last_modified", "modified_at",
        "last_update", "fecha_modificacion", "fecha_actualizacion", "date_mise_a_jour",
    ],
    "FullName": [
        "full_name", "nom_complet", "nombre_completo", "customer_name", "client_name", "contact_name",
        "nombre_cliente",
    ],
    "FirstName": ["first_name", "firstname", "prenom", "nombre", "given_name", "fname"],
    "LastName": ["last_name", "lastname", "nom", "nom_famille", "apellido", "apellidos", "surname", "family_name", "lname"],
    "Gender": ["gender", "sexe", "sex", "civilite", "genero", "civility", "salutation", "sexo"],
    "Address": ["address", "adresse", "direccion", "street", "rue", "calle", "domicilio", "address_line"],
    "PostalCode": ["zip", "zip_code", "zipcode", "postal_code", "postcode", "code_postal", "codigo_postal", "cp"],
    "City": ["city", "ville", "ciudad", "town", "localite", "commune", "localidad"],
    "Country": ["country", "pays", "pais", "country_code", "code_pays"],
    "EventName": ["event_name", "nom_evenement", "nombre_evento"],
    "EventType": ["message_type", "call_type"],
    "EventTime": ["event_time", "event_timestamp", "event_date", "occurred_at", "date_evenement", "fecha_evento"],
}

# Names that mean a field only as the whole column name: inside a longer name they say nothing
# ("product_type" is no event type, "created_timestamp" no event time). These are the columns of
# an event source (see tessera.sources.events).
EXACT: dict[str, str] = {"event": "EventName", "type": "EventType", "timestamp": "EventTime"}

_STOP_WORDS = {"de", "du", "des", "d", "la", "le", "les", "l", "of", "the", "del", "el", "a"}

_TEXT, _INT, _NUM, _BOOL, _DATE, _TS = "string", "integer", ("float", "decimal"), "boolean", "date", "timestamp"
_IDS = {_TEXT, _INT, "decimal"}
_DATES = {_TEXT, _DATE, _TS}
_AMOUNTS = {_TEXT, _INT, *_NUM}
# the column types each field can have; a field not listed here is text only
_TYPES: dict[str, set[str]] = {
    "CustomerId": _IDS, "OrderId": _IDS, "ProductId": _IDS, "StoreId": _IDS, "AnonymousId": _IDS,
    "LoyaltyCard": _IDS, "Store": _IDS, "Phone": _IDS, "PostalCode": _IDS,
    "BirthDate": _DATES, "OrderDate": _DATES, "CreatedAt": _DATES, "UpdatedAt": _DATES,
    "OrderAmount": _AMOUNTS, "DiscountAmount": _AMOUNTS, "UnitPrice": _AMOUNTS, "Quantity": _AMOUNTS,
    "EmailOptIn": {_TEXT, _INT, _BOOL}, "SmsOptIn": {_TEXT, _INT, _BOOL}, "EventTime": _DATES,
    "PhoneOptIn": {_TEXT, _INT, _BOOL}, "AdsOptIn": {_TEXT, _INT, _BOOL},
}
_KNOWN_TYPES = {_TEXT, _INT, *_NUM, _BOOL, _DATE, _TS}


def tokens(name: str) -> list[str]:
    """Lower-case ASCII words of a column name, small words left out."""
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", text)
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    text = re.sub(r"([a-zA-Z])([0-9])|([0-9])([a-zA-Z])", r"\1\3_\2\4", text).lower()
    words = [w for w in re.split(r"[^a-z0-9]+", text) if w]
    kept = [w for w in words if w not in _STOP_WORDS]
    return kept or words


@functools.lru_cache(maxsize=None)
def _index() -> dict[str, str]:
    """Joined synonym ("emailoptin") -> field; the first field listed keeps a shared synonym."""
    out: dict[str, str] = {}
    for field, names in SYNONYMS.items():
        if field not in SEMANTIC_FIELDS:  # pragma: no cover - guarded by the tests
            raise ValueError(f"{field} is not a semantic field")
        for name in names:
            out.setdefault("".join(tokens(name)), field)
    return out


_PRIORITY = {field: i for i, field in enumerate(SYNONYMS)}


def _match(words: list[str]) -> str | None:
    index = _index()
    whole = "".join(words)
    if whole in index:
        return index[whole]
    if "_".join(words) in EXACT:
        return EXACT["_".join(words)]
    best: tuple[int, int, str] | None = None  # (-length, priority, field)
    for i in range(len(words)):
        for j in range(i + 1, len(words) + 1):
            joined = "".join(words[i:j])
            field = index.get(joined)
            if field is not None:
                candidate = (-len(joined), _PRIORITY[field], field)
                if best is None or candidate < best:
                    best = candidate
    return best[2] if best else None


def suggest_semantic(column_name: str, sample_type: str | None = None) -> str | None:
    """The semantic field (one of ``SEMANTIC_FIELDS``) a column name suggests, or None."""
    words = tokens(column_name or "")
    if not words:
        return None
    field = _match(words)
    if field is None:
        singular = [w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w for w in words]
        if singular != words:
            field = _match(singular)
    if field is None:
        return None
    if sample_type is not None:
        kind = sample_type.strip().lower()
        if kind in _KNOWN_TYPES and kind not in _TYPES.get(field, {_TEXT}):
            return None
    return field


def suggest_all(columns: list[str]) -> dict[str, str | None]:
    """``suggest_semantic`` for each column name, in order."""
    return {column: suggest_semantic(column) for column in columns}
