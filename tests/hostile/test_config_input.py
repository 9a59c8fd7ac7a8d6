"""Hostile or careless configuration files: alias bombs, huge files, deep nesting, duplicate keys,
text that is not UTF-8, binary files and empty files. Each is one clear error naming where,
never a traceback or a hang; an empty file never wipes the workspace."""

from __future__ import annotations

import sys
import textwrap

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tessera.config import loader
from tessera.config.loader import load_yaml, parse_config, read_yaml_text
from tessera.errors import ConfigError
from tessera.workspace import Workspace

GOOD = textwrap.dedent("""\
    connections:
      - name: files
        type: local
        path: data
    sources:
      - name: crm
        connection: files
        pattern: "*.csv"
        record_keys: [id]
    datasets:
      - name: contacts
        mappings:
          - source: crm
            columns: {email: email}
    """)

LAUGHS = "".join(
    f"{chr(97 + i)}: &{chr(97 + i)} [" + ",".join([f"*{chr(96 + i)}"] * 9 if i else ['"lol"'] * 9) + "]\n"
    for i in range(9))


def error_of(tmp_path, content: bytes | str) -> str:
    p = tmp_path / "workspace.yaml"
    p.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ConfigError) as exc:
        load_yaml(p)
    return str(exc.value)


def test_billion_laughs_is_refused_at_once(tmp_path):
    assert len(LAUGHS.encode()) < 600
    text = error_of(tmp_path, LAUGHS)
    assert "aliases" in text and "10,000" in text


def test_a_few_aliases_are_fine():
    text = "defaults: &csv {header: true}\n" + GOOD.replace('pattern: "*.csv"', 'pattern: "*.csv"\n    csv: *csv')
    data = read_yaml_text(text)
    assert data["sources"][0]["csv"] == {"header": True}


def test_recursive_alias_is_refused(tmp_path):
    assert "loop" in error_of(tmp_path, "connections: &x [*x]\n")


def test_a_file_past_the_size_limit_is_refused_unread(tmp_path, monkeypatch):
    monkeypatch.setattr(loader, "MAX_CONFIG_BYTES", 10_000)
    text = error_of(tmp_path, GOOD + "# " + "x" * 20_000 + "\n")
    assert "above the limit of 10,000 bytes" in text and "TESSERA_CONFIG_MAX_BYTES" in text


def test_deep_nesting_is_refused_with_its_line(tmp_path):
    text = error_of(tmp_path, "sources: " + "[" * 100_000 + "]" * 100_000 + "\n")
    assert "line 1" in text and "nested more than 64 levels" in text
    assert "nested more than" in error_of(tmp_path, "a:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 80)))


def test_duplicate_keys_are_errors_not_silently_the_last(tmp_path):
    text = error_of(tmp_path, GOOD.replace("    path: data\n", "    path: data\n    path: /etc\n"))
    assert "line 5: the key 'path' appears twice in the same mapping (first on line 4)" in text


def test_merge_keys_may_be_overridden(tmp_path):
    data = read_yaml_text("base: &b {header: true, quote: '\"'}\ncsv:\n  <<: *b\n  header: false\n")
    assert data["csv"] == {"header": False, "quote": '"'}


def test_latin1_file_names_line_and_column(tmp_path):
    text = error_of(tmp_path, GOOD.replace("contacts", "cont\u00e9cts").encode("latin-1"))
    assert "line 11, column 15: the byte 0xe9 is not UTF-8" in text and "save the file as UTF-8" in text


def test_binary_file_is_refused(tmp_path):
    assert "not a text file" in error_of(tmp_path, b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    assert "control character" in error_of(tmp_path, "a: 1\nb: \x07\n")


def test_a_folder_given_as_the_file(tmp_path):
    with pytest.raises(ConfigError, match="is a folder"):
        load_yaml(tmp_path)


@pytest.mark.parametrize("content", ["", "# nothing here\n# at all\n", "connections: []\nsources: []\n"])
def test_an_empty_file_does_not_wipe_the_workspace(tmp_path, content):
    (tmp_path / "ws.yaml").write_text(GOOD)
    (tmp_path / "empty.yaml").write_text(content)
    with Workspace.init(tmp_path / "ws") as ws:
        ws.apply(tmp_path / "ws.yaml")
        with pytest.raises(ConfigError) as exc:
            ws.apply(tmp_path / "empty.yaml")
        assert "would remove all 3 object(s)" in str(exc.value) and "--prune" in str(exc.value)
        assert [s.name for s in ws.config.sources] == ["crm"]
        changes = ws.apply(tmp_path / "empty.yaml", prune=True)
        assert sorted(changes["removed"]) == ["connection files", "dataset contacts", "source crm"]
        assert ws.config.sources == []


def cli(capsys, *args) -> tuple[int, str, str]:
    """Run the command line in this process: (exit code, stdout, stderr)."""
    from tessera.cli import main as cli_main

    capsys.readouterr()
    old = sys.argv
    sys.argv = ["tessera", *map(str, args)]
    try:
        cli_main.main()
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    finally:
        sys.argv = old
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_failures_are_one_error_line(tmp_path, capsys):
    ws = tmp_path / "ws"
    assert cli(capsys, "init", ws)[0] == 0
    (tmp_path / "good.yaml").write_text(GOOD)
    assert cli(capsys, "-w", ws, "apply", tmp_path / "good.yaml")[0] == 0
    cases = {
        "bomb.yaml": (LAUGHS.encode(), "aliases"),
        "latin.yaml": (GOOD.replace("contacts", "cont\u00e9cts").encode("latin-1"), "not UTF-8"),
        "binary.yaml": (bytes(range(256)) * 4, "not a text file"),
        "deep.yaml": (("a: " + "[" * 5000 + "]" * 5000).encode(), "nested more than"),
        "empty.yaml": (b"# nothing\n", "--prune"),
    }
    for name, (content, expected) in cases.items():
        (tmp_path / name).write_bytes(content)
        code, _out, err = cli(capsys, "-w", ws, "apply", tmp_path / name)
        assert code == 1, (name, err)
        assert err.startswith("Error: Invalid configuration in "), (name, err)
        assert "Traceback" not in err and expected in " ".join(err.split()), (name, err)
    code, out, _err = cli(capsys, "-w", ws, "apply", tmp_path / "empty.yaml", "--prune")
    assert code == 0 and "removed: source crm" in out


# -------------------------------------------------------------------------- fuzzing

_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20),
                     st.sampled_from(["local", "files", "crm", "*.csv", "../x", "/etc", "{run}", "id", "email"]))
_keys = st.sampled_from(["connections", "sources", "datasets", "syncs", "pipeline", "name", "type", "path",
                         "pattern", "record_keys", "mappings", "columns", "source", "connection", "filter",
                         "computed", "sql", "folder", "file_name", "dataset", "x"])
_trees = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                          st.dictionaries(_keys, inner, max_size=5)), max_leaves=25)


def _outcome(text: str) -> None:
    try:
        data = read_yaml_text(text)
        parse_config(data, lined=data)
    except ConfigError as exc:
        assert str(exc).startswith("Invalid configuration")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(_keys, _trees, max_size=5))
def test_fuzz_structures_give_a_config_or_a_clear_error(tree):
    _outcome(yaml.safe_dump(tree, allow_unicode=True))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300), st.integers(0, len(GOOD)))
def test_fuzz_garbage_spliced_into_a_good_file(tmp_path_factory, junk, at):
    path = tmp_path_factory.mktemp("fuzz") / "workspace.yaml"
    path.write_bytes(GOOD.encode()[:at] + junk + GOOD.encode()[at:])
    try:
        load_yaml(path)
    except ConfigError as exc:
        assert str(exc).startswith("Invalid configuration")


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("[]{}:,-&*!|>'\"#\n ?ab1")), max_size=200))
def test_fuzz_yaml_punctuation(text):
    _outcome(text)
