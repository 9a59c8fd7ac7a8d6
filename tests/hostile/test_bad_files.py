"""One bad file never fails a run: it is refused with its reason and kept aside, the source's
other files and the other sources are imported and published, the run ends "succeeded with
warnings" saying which files were refused and how to retry them."""

from __future__ import annotations

import gzip
import sys

import pytest

from tessera.workspace import Workspace

CONTACTS = "id,email\n1,ann@example.com\n2,bob@example.com\n"
ORDERS = "order_id,amount\no1,10.50\no2,3\n"

BAD_FILES = {
    "binary.csv": bytes(range(256)) * 40,
    "latin1_header.csv": "id,pr\u00e9nom,email\n3,Z\u00e9,zed@example.com\n".encode("latin-1"),
    "truncated.csv.gz": gzip.compress(b"id,email\n" + b"4,x@example.com\n" * 5000)[:200],
    "duplicate_header.csv": b"id,email,email\n5,a@example.com,b@example.com\n",
    "empty.csv": b"",
}


def config(tmp_path) -> dict:
    return {
        "connections": [{"name": "files", "type": "local", "path": str(tmp_path / "data")}],
        "sources": [
            {"name": "crm", "connection": "files", "pattern": "crm/*", "record_keys": ["id"]},
            {"name": "shop", "connection": "files", "pattern": "shop/*.csv", "record_keys": ["order_id"]},
        ],
        "datasets": [
            {"name": "contacts", "mappings": [{"source": "crm", "columns": {"crm_id": "id", "email": "email"}}]},
            {"name": "orders", "mappings": [{"source": "shop", "columns": {"order_id": "order_id",
                                                                           "amount": "amount"}}]},
        ],
    }


@pytest.fixture
def workspace(tmp_path):
    (tmp_path / "data" / "crm").mkdir(parents=True)
    (tmp_path / "data" / "shop").mkdir(parents=True)
    (tmp_path / "data" / "crm" / "contacts.csv").write_text(CONTACTS)
    (tmp_path / "data" / "shop" / "orders.csv").write_text(ORDERS)
    ws = Workspace.init(tmp_path / "ws")
    ws.apply(config(tmp_path))
    yield ws
    ws.close()


def column(ws, table, name):
    return sorted(ws.table(table).to_pyarrow().column(name).to_pylist())


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_a_bad_file_is_refused_and_the_rest_is_published(tmp_path, workspace, name):
    bad = tmp_path / "data" / "crm" / name
    bad.write_bytes(BAD_FILES[name])
    result = workspace.run()
    assert result.status == "succeeded with warnings"
    assert column(workspace, "contacts", "email") == ["ann@example.com", "bob@example.com"]
    assert column(workspace, "orders", "order_id") == ["o1", "o2"]
    [refused] = result.refused
    assert refused["source"] == "crm" and refused["file"] == f"crm/{name}" and refused["reason"]
    kept = tmp_path / "ws" / "archive" / "refused" / "crm"
    assert [p.read_bytes() for p in kept.iterdir()] == [BAD_FILES[name]]
    assert any(f"crm/{name}" in w and "--retry-refused" in w for w in result.warnings)
    # the run is recorded as succeeded, its counts say what was refused
    [run] = [r for r in workspace.runs(5) if r["kind"] == "pipeline"]
    assert run["status"] == "succeeded"
    assert run["counts"]["refused_files"][0]["file"] == f"crm/{name}"
    # the next run does not read it again, still says so, and still publishes
    (tmp_path / "data" / "crm" / "more.csv").write_text("id,email\n7,cy@example.com\n")
    again = workspace.run()
    assert again.status == "succeeded with warnings" and again.refused == []
    assert any("still refused" in w for w in again.warnings)
    assert "cy@example.com" in column(workspace, "contacts", "email")
    # a fixed file (new content) is imported
    if name.endswith(".gz"):
        bad.unlink()  # compressed files may not be read at all: replace it with a plain one
        bad = bad.with_name("fixed.csv")
    bad.write_bytes(b"id,email\n9,fixed@example.com\n")
    fixed = workspace.run()
    assert fixed.status == "succeeded"
    assert "fixed@example.com" in column(workspace, "contacts", "email")


def test_retry_refused_reads_the_file_again(tmp_path, workspace):
    (tmp_path / "data" / "crm" / "dup.csv").write_bytes(BAD_FILES["duplicate_header.csv"])
    assert workspace.run().refused
    counts = workspace.import_sources(["crm"])
    assert "files_refused" not in counts["crm"]  # skipped, not read again
    assert any("still refused" in w for w in counts["crm"]["warnings"])
    counts = workspace.import_sources(["crm"], retry_refused=True)
    assert counts["crm"]["files_refused"] == 1  # read again, refused again, with its reason
    assert "duplicate" in counts["crm"]["warnings"][0]


def test_cli_run_says_which_files_were_refused_and_how_to_retry(tmp_path, workspace, capsys, monkeypatch):
    from tessera.cli import main as cli_main

    (tmp_path / "data" / "crm" / "binary.csv").write_bytes(BAD_FILES["binary.csv"])
    workspace.close()
    monkeypatch.setenv("COLUMNS", "300")
    monkeypatch.setattr(sys, "argv", ["tessera", "-w", str(tmp_path / "ws"), "run"])
    with pytest.raises(SystemExit) as exc:
        cli_main.main()
    assert exc.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "succeeded with warnings" in out
    assert "Warning: Source 'crm': file 'crm/binary.csv' was refused" in out
    assert "tessera import crm --retry-refused" in out


def test_mixed_line_endings_are_read_or_refused_never_fatal(tmp_path, workspace):
    (tmp_path / "data" / "crm" / "mixed.csv").write_bytes(b"id,email\r\n3,cy@example.com\n4,dan@example.com\r\n"
                                                        b"5,eve@example.com\r6,fay@example.com\n")
    result = workspace.run()
    emails = column(workspace, "contacts", "email")
    assert {"ann@example.com", "bob@example.com"} <= set(emails)
    if result.refused:
        assert result.status == "succeeded with warnings"
    else:
        assert {"cy@example.com", "dan@example.com"} <= set(emails)


def test_a_source_whose_only_file_is_refused_does_not_fail_the_run(tmp_path, workspace):
    """A source with no data at all cannot feed its dataset: that dataset keeps its last publication,
    the other sources are published, and the run succeeds with warnings naming the refused file."""
    (tmp_path / "data" / "crm" / "contacts.csv").write_bytes(BAD_FILES["duplicate_header.csv"])
    result = workspace.run()
    assert result.status == "succeeded with warnings"
    assert [r["file"] for r in result.refused] == ["crm/contacts.csv"]
    assert column(workspace, "orders", "order_id") == ["o1", "o2"]
    assert "contacts" not in result.datasets
    text = " ".join(result.warnings)
    assert "Dataset 'contacts' was not rebuilt" in text and "source 'crm' has no data" in text
    assert "crm/contacts.csv" in text and "tessera import crm --retry-refused" in text
    # the next run says it again (the file is still refused) and still publishes the rest
    (tmp_path / "data" / "shop" / "more.csv").write_text("order_id,amount\no3,1\n")
    again = workspace.run()
    assert again.status == "succeeded with warnings" and "o3" in column(workspace, "orders", "order_id")
    assert any("Dataset 'contacts' was not rebuilt" in w for w in again.warnings)
    # a fixed file brings the dataset back
    (tmp_path / "data" / "crm" / "contacts.csv").write_text(CONTACTS)
    assert workspace.run().status == "succeeded"
    assert column(workspace, "contacts", "email") == ["ann@example.com", "bob@example.com"]


def test_datasets_that_need_a_source_without_data_are_left_out_and_the_others_published(tmp_path):
    """Orders related to the contacts and an aggregate of them on the contacts: when the contacts'
    only file is refused, neither dataset can be built; an independent dataset is published."""
    data = tmp_path / "data"
    for d in ("crm", "shop", "web"):
        (data / d).mkdir(parents=True)
    (data / "crm" / "contacts.csv").write_bytes(BAD_FILES["latin1_header.csv"])
    (data / "shop" / "orders.csv").write_text("order_id,amount,email\no1,10.50,ann@example.com\n")
    (data / "web" / "visits.csv").write_text("id,page\nv1,/home\n")
    cfg = config(tmp_path)
    cfg["sources"][1]["relations"] = [{"column": "email", "to": "crm.email"}]
    cfg["sources"].append({"name": "web", "connection": "files", "pattern": "web/*.csv", "record_keys": ["id"]})
    cfg["datasets"][1]["mappings"][0]["columns"]["email"] = "email"
    cfg["datasets"].append({"name": "visits", "mappings": [{"source": "web", "columns": {"id": "id",
                                                                                         "page": "page"}}]})
    with Workspace.init(tmp_path / "ws") as ws:
        ws.apply(cfg)
        result = ws.run()
        assert result.status == "succeeded with warnings"
        assert sorted(result.datasets) == ["visits"]
        assert column(ws, "visits", "page") == ["/home"]
        text = " ".join(result.warnings)
        assert "Dataset 'contacts' was not rebuilt" in text and "source 'crm' has no data" in text
        assert "Dataset 'orders' was not rebuilt" in text and "it needs dataset 'contacts'" in text


def test_a_very_wide_file_is_refused_quickly_and_never_poisons_later_runs(tmp_path, workspace):
    names = ["id", "email"] + [f"c{i}" for i in range(10_000)]
    row = ["3", "wide@example.com"] + ["x"] * 10_000
    (tmp_path / "data" / "crm" / "wide.csv").write_text(",".join(names) + "\n" + ",".join(row) + "\n")
    result = workspace.run()
    [refused] = result.refused
    assert "10,002 columns, more than the 1,000" in refused["reason"]
    assert column(workspace, "contacts", "email") == ["ann@example.com", "bob@example.com"]
    # later runs go on, before and after the pattern changes
    assert workspace.run().status == "succeeded with warnings"
    cfg = config(tmp_path)
    cfg["sources"][0]["pattern"] = "crm/*.csv"
    workspace.apply(cfg)
    (tmp_path / "data" / "crm" / "wide.csv").unlink()
    assert workspace.run().status == "succeeded"
    assert column(workspace, "contacts", "email") == ["ann@example.com", "bob@example.com"]


def test_a_json_object_where_an_array_is_expected_is_refused(tmp_path, workspace):
    (tmp_path / "data" / "crm" / "export.json").write_text(
        '{"data": [\n  {"id": "5", "email": "eve@example.com"},\n  {"id": "6", "email": "fay@example.com"}\n]}\n')
    (tmp_path / "data" / "crm" / "lines.json").write_text('{"id": "7", "email": "gus@example.com"}\n'
                                                          '{"id": "8", "email": "hal@example.com"}\n')
    result = workspace.run()
    [refused] = result.refused
    assert refused["file"] == "crm/export.json" and "holds a JSON object, not an array" in refused["reason"]
    assert column(workspace, "contacts", "email") == ["ann@example.com", "bob@example.com", "gus@example.com",
                                                      "hal@example.com"]


@pytest.mark.parametrize("name, content, line", [
    ("no_newline.csv", b"id,email\n" + b"1,x@example.com," * 200, 2),
    ("long_line.ndjson", b'{"id": "1", "email": "a@example.com"}\n{"id": "2", "email": "' + b"x" * 3000 + b'"}\n', 2),
    ("long_header.csv", b"id," + b"e" * 3000 + b"\n1,2\n", 1),
])
def test_a_line_past_max_line_bytes_refuses_the_file_and_the_rest_goes_on(tmp_path, workspace, name, content, line):
    cfg = config(tmp_path)
    cfg["sources"][0]["max_line_bytes"] = 1000  # the default is 2,000,000: a test file stays small
    workspace.apply(cfg)
    (tmp_path / "data" / "crm" / name).write_bytes(content)
    result = workspace.run()
    [refused] = result.refused
    assert refused["file"] == f"crm/{name}"
    assert f"line {line} is too long (more than 1,000 bytes, the source's max_line_bytes)" in refused["reason"]
    assert column(workspace, "contacts", "email") == ["ann@example.com", "bob@example.com"]
    assert column(workspace, "orders", "order_id") == ["o1", "o2"]


@pytest.mark.parametrize("name", ["bomb.csv.gz", "bomb.zip"])
def test_a_decompression_bomb_is_refused_before_it_fills_the_disk(tmp_path, workspace, monkeypatch, name):
    from tessera.sources import compressed

    monkeypatch.setattr(compressed, "_ALLOWANCE", 0)  # the limit is then 200 times the compressed size
    body = b"id,email\n" + b"0" * 5_000_000
    if name.endswith(".gz"):
        data = gzip.compress(body, compresslevel=9)
    else:
        import io
        import zipfile

        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("a.csv", body)
        data = buf.getvalue()
    (tmp_path / "data" / "crm" / name).write_bytes(data)
    result = workspace.run()
    [refused] = result.refused
    assert refused["file"] == f"crm/{name}" and "looks like a decompression bomb" in refused["reason"]
    assert column(workspace, "contacts", "email") == ["ann@example.com", "bob@example.com"]
