"""The guided setup on messy exports: French and Spanish headers, a ';' CSV with a BOM and decimal
commas, day-first and month-first dates, a dated series, JSON orders with nested line items."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tessera.cli.main import app
from tessera.setup import propose_config
from tessera.workspace import Workspace

CRM = (
    "N° client;Prénom;Nom;Adresse e-mail;Téléphone;Date de naissance;Pays;Solde\r\n"
    "C001;Marie;DUPONT;marie.dupont@exemple.fr;06 12 34 56 78;25/12/1980;France;12,50\r\n"
    "C002;Jean;Martin;JEAN.MARTIN@exemple.fr ;0612345679;03/04/1975;france;1.234,75\r\n"
    "C003;Luc;BERNARD;luc@exemple.fr;N/A;13/01/1990;Belgique;0,00\r\n"
    "C004;Anne;Petit;anne.petit@exemple.fr;07 11 22 33 44;;FR;5,10\r\n"
    "C005;Paul;DURAND;paul.durand@exemple.fr;N/A;30/06/1969;Francia;8,00\r\n"
    "C006;Lucía;García;lucia@ejemplo.es;+34 612 345 678;21/03/1985;Espagne;3,30\r\n"
)
CLIENTES = [
    {"id_cliente": "E1", "nombre": "Lucía", "apellidos": "García", "correo": "Lucia@Ejemplo.es",
     "telefono": "+34612345678", "fecha_alta": "2023-02-01", "id_crm": "C006"},
    {"id_cliente": "E2", "nombre": "Marie", "apellidos": "Dupont", "correo": "marie.dupont@exemple.fr",
     "telefono": "0612345678", "fecha_alta": "2023-03-15", "id_crm": "C001"},
    {"id_cliente": "E3", "nombre": "Pedro", "apellidos": "López", "correo": "pedro@ejemplo.es",
     "telefono": None, "fecha_alta": "2023-05-20", "id_crm": None},
    # no e-mail, no phone: only the CRM number she carries tells who she is
    {"id_cliente": "E4", "nombre": "Anne", "apellidos": "Petit", "correo": None, "telefono": None,
     "fecha_alta": "2023-06-01", "id_crm": "C004"},
]
PEDIDOS = [
    {"id_pedido": "P1", "correo": "lucia@ejemplo.es", "fecha_pedido": "2024-03-05", "importe": 42.5,
     "lineas": [{"sku": "A1", "cantidad": 2}, {"sku": "B2", "cantidad": 1}]},
    {"id_pedido": "P2", "correo": "marie.dupont@exemple.fr", "fecha_pedido": "2024-03-09", "importe": 10.0,
     "lineas": [{"sku": "A1", "cantidad": 1}]},
    {"id_pedido": "P3", "correo": "pedro@ejemplo.es", "fecha_pedido": "2024-04-01", "importe": 7.25,
     "lineas": [{"sku": "C3", "cantidad": 3}]},
    {"id_pedido": "P4", "correo": "luc@exemple.fr", "fecha_pedido": "2024-04-11", "importe": 99.9, "lineas": []},
]


def _ventes(month: int, first: int) -> str:
    # month-first dates (03/25/2024): the day is above 12 in the second part
    lines = ["numero_ticket;id_client;date_vente;montant"]
    for i in range(6):
        lines.append(f"T{month}{first + i:03d};C00{1 + i % 5};{month:02d}/{14 + i}/2024;{10 + i},{i}0")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("messy") / "exports"
    (root / "crm").mkdir(parents=True)
    (root / "boutique").mkdir()
    (root / "crm" / "clients.csv").write_bytes(b"\xef\xbb\xbf" + CRM.encode("utf-8"))
    (root / "boutique" / "clientes.json").write_text(json.dumps(CLIENTES, ensure_ascii=False), encoding="utf-8")
    (root / "boutique" / "pedidos.json").write_text(json.dumps(PEDIDOS, ensure_ascii=False), encoding="utf-8")
    (root / "crm" / "ventes_2024-01.csv").write_text(_ventes(1, 1), encoding="utf-8")
    (root / "crm" / "ventes_2024-02.csv").write_text(_ventes(2, 1), encoding="utf-8")
    (root / "notes.txt.bak").write_text("not a data file")
    return root


@pytest.fixture(scope="module")
def proposal(folder):
    return propose_config(folder)


def _source(proposal, file: str) -> dict:
    name = next(s["name"] for s in proposal.sources if file in s["files"])
    return next(s for s in proposal.config["sources"] if s["name"] == name)


def test_french_csv_with_bom_semicolons_and_decimal_commas(proposal):
    crm = _source(proposal, "crm/clients.csv")
    assert crm["csv"] == {"delimiter": ";", "decimal_comma": True}
    assert crm["record_keys"] == ["N° client"]
    rules = crm["normalize"]
    assert rules["Adresse e-mail"] == ["email"]
    assert rules["Téléphone"] == [{"null_like": ["N/A"]}, {"phone": {"country": "FR"}}]  # N/A present, FR from Pays
    assert rules["Date de naissance"] == [{"date": {"format": "%d/%m/%Y"}}]
    assert rules["Pays"] == ["country"]
    assert rules["Nom"] == ["trim", "title"]
    assert crm["types"]["Solde"] == "float"  # "1.234,75": a decimal comma and a thousands separator
    assert "UTF-8 with a BOM" in proposal.yaml
    assert "numbers written with a decimal comma" in proposal.yaml


def test_dated_series_is_one_source_with_month_first_dates(proposal):
    ventes = _source(proposal, "crm/ventes_2024-01.csv")
    assert ventes["pattern"] == "crm/ventes_*.csv"
    assert ventes["name"] == next(s["name"] for s in proposal.sources if "crm/ventes_2024-02.csv" in s["files"])
    assert ventes["normalize"]["date_vente"] == [{"date": {"format": "%m/%d/%Y"}}]  # a second part above 12
    # the CRM's key is named 'N° client': the relation is found from the values, not the names
    assert {"column": "id_client", "to": f"{_source(proposal, 'crm/clients.csv')['name']}.N° client"} \
        in ventes["relations"]
    assert "100.0% of crm_ventes.id_client found in crm_clients.N° client" in proposal.yaml


def test_spanish_headers_and_json_orders(proposal):
    clientes = _source(proposal, "boutique/clientes.json")
    pedidos = _source(proposal, "boutique/pedidos.json")
    by_name = {s["name"]: s for s in proposal.sources}
    assert by_name[clientes["name"]]["entity"] == "contacts"
    assert by_name[pedidos["name"]]["entity"] == "orders"
    assert clientes["record_keys"] == ["id_cliente"] and pedidos["record_keys"] == ["id_pedido"]
    assert clientes["normalize"]["correo"] == ["email"]
    assert {"column": "correo", "to": "contacts.email"} in pedidos["relations"]
    contacts = next(d for d in proposal.config["datasets"] if d["name"] == "contacts")
    assert {"column": "email"} in contacts["identity_keys"] and {"column": "phone"} in contacts["identity_keys"]
    mapped = {m["source"]: m["columns"] for m in contacts["mappings"]}
    assert mapped[clientes["name"]]["first_name"] == "nombre"
    # the e-shop carries the CRM's numbers: one column of the dataset, an identity key
    crm = _source(proposal, "crm/clients.csv")["name"]
    assert mapped[clientes["name"]]["crm_clients_n_client"] == "id_crm"
    assert mapped[crm]["crm_clients_n_client"] == "N° client"
    assert {"column": "crm_clients_n_client", "limit": 1} in contacts["identity_keys"]
    assert mapped[clientes["name"]]["last_name"] == "apellidos"


def test_nested_line_items_are_a_doubt_not_a_guess(proposal):
    # nested records are read as JSON text today: the proposal says so instead of guessing
    assert any("'lineas' holds nested records" in d for d in proposal.doubts)
    assert "# DOUBT: file 'boutique/pedidos.json': column 'lineas' holds nested records" in proposal.yaml


def test_init_from_then_run_publishes_unified_datasets(folder, tmp_path):
    runner = CliRunner()
    ws_path = tmp_path / "ws"
    out = runner.invoke(app, ["init", str(ws_path), "--from", str(folder)])
    assert out.exit_code == 0, out.output
    assert "Doubt:" in out.output
    assert (ws_path / "workspace.yaml").read_text(encoding="utf-8").startswith("# Proposed by")
    out = runner.invoke(app, ["-w", str(ws_path), "run"])
    assert out.exit_code == 0, out.output
    # a second `init --from` never replaces the configuration of a workspace
    again = runner.invoke(app, ["init", str(ws_path), "--from", str(folder)])
    assert again.exit_code != 0 and "already has a configuration" in str(again.exception)
    with Workspace.open(ws_path) as ws:
        contacts = ws.adapter.to_arrow(ws.table("contacts")).to_pylist()
        # Marie and Lucía (by e-mail) and Anne (by the CRM number) are in both: 6 + 4 records, 3 merges
        assert len(contacts) == 7
        anne = next(c for c in contacts if c["email"] == "anne.petit@exemple.fr")
        assert anne["boutique_clientes_id_cliente"] == "E4"
        marie = next(c for c in contacts if c["email"] == "marie.dupont@exemple.fr")
        assert marie["phone"] == "+33612345678"
        orders = ws.adapter.to_arrow(ws.table("orders")).to_pylist()
        assert len(orders) == 4 + 12
        linked = [o for o in orders if o["tessera_contacts_id"] is not None]
        assert len(linked) == 4 + 12  # e-shop orders by their e-mail, sales by the client id
        amounts = {o["order_id"]: o["amount"] for o in orders}
        assert amounts["T1001"] == pytest.approx(10.0) and amounts["T1002"] == pytest.approx(11.1)  # decimal comma


def test_a_folder_without_data_files_is_a_clear_error(tmp_path):
    (tmp_path / "readme.md").write_text("nothing here")
    runner = CliRunner()
    out = runner.invoke(app, ["setup", "propose", str(tmp_path)])
    assert out.exit_code != 0
    assert "No readable data file" in str(out.exception) or "No readable data file" in out.output


def test_a_file_that_is_not_utf8_is_left_out_with_the_fix(tmp_path):
    (tmp_path / "clients.csv").write_text("id;nom;email\n1;Zoé;zoe@exemple.fr\n2;Léa;lea@exemple.fr\n",
                                          encoding="utf-8")
    (tmp_path / "ancien.csv").write_bytes("id;nom\n1;Hélène\n2;Zoé\n".encode("cp1252"))
    proposal = propose_config(tmp_path)
    assert [s["files"] for s in proposal.sources] == [["clients.csv"]]
    doubt = next(d for d in proposal.doubts if "ancien.csv" in d)
    assert "not UTF-8" in doubt and "re-save the file as UTF-8" in doubt
    assert "# DOUBT: file 'ancien.csv' left out" in proposal.yaml


def test_setup_propose_writes_the_proposal_without_applying_it(folder, tmp_path):
    out = CliRunner().invoke(app, ["setup", "propose", str(folder), "-o", str(tmp_path / "p.yaml")])
    assert out.exit_code == 0, out.output
    text = (tmp_path / "p.yaml").read_text(encoding="utf-8")
    assert "pattern: crm/ventes_*.csv" in text
    assert "Doubt:" in out.output


def test_events_linked_to_users_get_the_engagement_score(tmp_path):
    data = tmp_path / "exports"
    data.mkdir()
    (data / "users.csv").write_text("user_id,email,phone\nu1,a@x.fr,0612345678\nu2,b@x.fr,0698765432\n")
    (data / "events.ndjson").write_text("".join(
        json.dumps({"user_id": u, "event": e, "timestamp": f"2024-01-0{d}T10:00:00Z", "anonymous_id": f"x{u}"}) + "\n"
        for d, (u, e) in enumerate([("u1", "page_viewed"), ("u2", "order_completed"), ("u1", "page_viewed")], 1)))
    proposal = propose_config(data)
    events = next(s for s in proposal.config["sources"] if s["pattern"] == "events.ndjson")
    assert {"column": "user_id", "to": "users.user_id"} in events["relations"]
    contacts = next(d for d in proposal.config["datasets"] if d["name"] == "contacts")
    assert contacts["scores"]["library"] == ["engagement"]
    ws = Workspace.init(tmp_path / "ws")
    try:
        ws.propose_config(data, apply=True)
        ws.run()
        rows = ws.adapter.to_arrow(ws.table("contacts")).to_pylist()
        assert {r["email"]: r["score_last_seen"] is not None for r in rows} == {"a@x.fr": True, "b@x.fr": True}
    finally:
        ws.close()


CLIENTS = (
    "Client ID;Civilité;Prénom;NOM;E-mail;Tél;Date de naissance;Ville;CA total\n"
    "1;Mme;anne;MARTIN;anne.martin@gmail.com;06 12 34 56 78;12/03/1985;Paris;1234,50\n"
    "2;M.;jean-pierre;dupont;jp.dupont@orange.fr;+33 6 98 76 54 32;31/12/1970;Lyon;99,90\n"
    "3;Mlle;Zoé;Lefèvre;zoe@example.fr;0611111111;45/13/1980;Marseille;\n"
    "4;M;Luis;García;luis@correo.es;+34 612 345 678;1990-05-04;Madrid;12,00\n"
    "5;Mme;Claire;Durand;claire@example.com;0622222222;01/02/1960;Nice;5,00\n"
    "6;?;Bob;Smith;bob@example.com;;;London;7,00\n"
    "7;Mme;Ana;Ruiz;ana@example.com;0633333333;02/03/1999;Lille;8,00\n"
    "1;Mme;Anne;Martin;anne.m@example.com;;;Paris;\n"
)


def test_a_customer_file_with_a_total_spent_and_a_repeated_id(tmp_path):
    (tmp_path / "exports").mkdir()
    (tmp_path / "exports" / "clients.csv").write_text(CLIENTS, encoding="utf-8")
    proposal = propose_config(tmp_path / "exports")
    src = proposal.config["sources"][0]
    # a total spent beside names, e-mails and phones is a customer file, not orders
    assert proposal.sources[0]["entity"] == "contacts"
    # the file's own id, repeated once, rather than the unique e-mail (which changes)
    assert src["record_keys"] == ["Client ID"]
    assert any("record key 'Client ID' is repeated in 1 row(s)" in d for d in proposal.doubts)
    rules = src["normalize"]
    assert rules["Civilité"] == ["gender"]
    assert rules["Prénom"] == ["trim", "title"]  # names in lower case are title-cased too
    assert rules["Date de naissance"] == [{"date": {"dayfirst": True}}]  # day/month/year and one ISO date
    assert not any("mixes day-first and month-first" in d for d in proposal.doubts)  # 45/13 is no date
    contacts = proposal.config["datasets"][0]
    assert next(c for c in contacts["columns"] if c["name"] == "ca_total")["semantic"] == "Other"
