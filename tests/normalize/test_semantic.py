"""Semantic field suggestions from column names."""

from __future__ import annotations

import pytest

from tessera.config.models import SEMANTIC_FIELDS
from tessera.normalize.semantic import SYNONYMS, suggest_all, suggest_semantic, tokens

EXPECTED = {
    "Email": ["email", "E-mail", "e_mail", "eMail", "EMAIL", "mail", "courriel", "correo", "correo_electronico",
              "Correo Electrónico", "customer_email", "adresse_email", "email_address", "Adresse e-mail", "emails"],
    "Phone": ["phone", "telephone", "téléphone", "Téléphone", "tel", "mobile", "portable", "movil", "móvil",
              "teléfono", "celular", "phone_number", "tel_portable", "numero_de_telephone", "PhoneNumber"],
    "FirstName": ["first_name", "firstname", "FirstName", "first name", "prenom", "prénom", "Prénom", "nombre",
                  "customer_first_name"],
    "LastName": ["last_name", "lastname", "nom", "NOM", "nom_de_famille", "apellido", "apellidos", "surname",
                 "nom_client"],
    "BirthDate": ["birth_date", "birthdate", "date_naissance", "date_de_naissance", "Date de naissance",
                  "fecha_nacimiento", "fecha_de_nacimiento", "dob", "DOB", "date_naissance_client"],
    "CustomerId": ["customer_id", "CustomerID", "client_id", "id_client", "id_cliente", "user_id", "userId",
                   "numero_client"],
    "LoyaltyCard": ["loyalty_card", "carte_fidelite", "carte_fidélité", "tarjeta_fidelidad", "card"],
    "OrderDate": ["order_date", "date_commande", "date_de_commande", "fecha_pedido", "OrderDate"],
    "OrderAmount": ["amount", "total", "montant", "importe", "total_amount", "montant_ttc", "prix_total",
                    "total_price"],
    "DiscountAmount": ["discount", "remise", "descuento", "montant_remise"],
    "Store": ["store", "magasin", "boutique", "tienda"],
    "StoreName": ["store_name", "nom_magasin"],
    "StoreId": ["store_id", "id_magasin", "code_magasin"],
    "Channel": ["channel", "canal"],
    "ProductCategory": ["category", "categorie", "catégorie", "categoria", "categoría", "product_category"],
    "Quantity": ["quantity", "quantite", "quantité", "cantidad", "qty", "QTY"],
    "UnitPrice": ["unit_price", "prix_unitaire", "precio_unitario", "price", "prix"],
    "Country": ["country", "pays", "pais", "país", "Country Code"],
    "City": ["city", "ville", "ciudad"],
    "PostalCode": ["zip", "postal_code", "code_postal", "codigo_postal", "código postal", "cp", "CP", "zip.code"],
    "Address": ["address", "adresse", "direccion", "dirección", "address_line1", "adresse2"],
    "Gender": ["gender", "sexe", "civilite", "civilité", "genero", "género"],
    "EmailOptIn": ["optin", "opt_in", "opt-in", "newsletter", "email_optin", "optin_email", "consentement"],
    "SmsOptIn": ["sms_optin", "optin_sms", "SMS opt-in"],
    "CreatedAt": ["created_at", "createdAt", "date_creation", "date_de_création", "date_inscription",
                  "fecha_alta"],
    "UpdatedAt": ["updated_at", "date_maj", "date_modification", "updatedAt"],
    "OrderId": ["order_id", "id_commande", "numero_commande", "numéro de commande", "id_pedido"],
    "ProductId": ["product_id", "sku", "SKU", "id_produit", "ref_produit"],
    "ProductName": ["product_name", "nom_produit", "libelle", "libellé"],
    "AnonymousId": ["anonymous_id", "anonymousId"],
    "FullName": ["full_name", "nom_complet"],
}


@pytest.mark.parametrize(
    "name,field", [pytest.param(n, f, id=f"{f}-{n}") for f, names in EXPECTED.items() for n in names]
)
def test_suggest(name, field):
    assert suggest_semantic(name) == field


@pytest.mark.parametrize("name", ["", "id", "foo", "x1", "comment", "notes", "___", "date", "value"])
def test_unknown(name):
    assert suggest_semantic(name) is None


def test_sample_type():
    assert suggest_semantic("total", "float") == "OrderAmount"
    assert suggest_semantic("total", "date") is None
    assert suggest_semantic("email", "integer") is None
    assert suggest_semantic("date_naissance", "date") == "BirthDate"
    assert suggest_semantic("date_naissance", "timestamp") == "BirthDate"
    assert suggest_semantic("date_naissance", "float") is None
    assert suggest_semantic("newsletter", "boolean") == "EmailOptIn"
    assert suggest_semantic("customer_id", "integer") == "CustomerId"
    assert suggest_semantic("phone", "integer") == "Phone"
    assert suggest_semantic("email", "string") == "Email"
    assert suggest_semantic("email", "something-else") == "Email"


def test_suggest_all():
    assert suggest_all(["Email", "Prénom", "xyz"]) == {"Email": "Email", "Prénom": "FirstName", "xyz": None}


def test_every_field_is_a_semantic_field():
    assert set(SYNONYMS) <= set(SEMANTIC_FIELDS)
    for field, names in SYNONYMS.items():
        for name in names:
            assert suggest_semantic(name) == field, (name, field)


def test_tokens():
    assert tokens("Date de Naissance") == ["date", "naissance"]
    assert tokens("customerID") == ["customer", "id"]
    assert tokens("address_line1") == ["address", "line", "1"]
    assert tokens("e-mail.address") == ["e", "mail", "address"]
