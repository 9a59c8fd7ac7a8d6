"""The packages form layers: a module imports only from its own package or from a lower layer.

Every import of every module counts, the ones inside functions too (an import inside a
function does not dodge a cycle, it hides one). ARCHITECTURE.md draws the same layers.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "tessera"

#: lowest first; the packages of one layer do not import each other
LAYERS: list[tuple[str, ...]] = [
    ("errors",),
    ("sqlcheck", "httperrors", "demo"),
    ("config", "store"),
    ("engine", "connectors", "secrets", "users"),
    ("normalize",),
    ("sources",),
    ("identity",),
    ("datasets",),
    ("enrich",),
    ("segments",),
    ("syncs", "analytics", "privacy", "profiles", "setup", "browse", "overview"),
    ("pipeline", "jobs", "schedule"),
    ("workspace",),
    ("collect",),
    ("api",),
    ("web", "cli"),
]

#: imports against the order that are being moved away, with the reason
KNOWN = {
    # behaviour conditions of segments are checked with the segments' resolution of related
    # datasets (tessera.segments.related.related_info); it is to move into tessera/config
    ("tessera.config.loader", "tessera.segments.related"),
    # the server application mounts the web app at / (create_app(web=True)); the web app's pages
    # sign in with the API's sessions (tessera.api.auth), so it stands above the API
    ("tessera.api.app", "tessera.web"),
}

LEVEL = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, source: str | None = None) -> list[tuple[str, int]]:
    """(imported tessera module, line) for every import in the file, at any depth."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text() if source is None else source, str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names if a.name.split(".")[0] == "tessera"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            if target.split(".")[0] != "tessera":
                continue
            if target == "tessera":  # from tessera import workspace
                out += [(f"tessera.{a.name}", node.lineno) for a in node.names]
            else:
                out.append((target, node.lineno))
    return out


def top(module: str) -> str | None:
    """``tessera.sources.staging`` -> ``sources``; the root package ``tessera`` -> None."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts)


def test_every_package_has_a_layer():
    missing = sorted({top(module_name(p)) for p in modules()} - set(LEVEL) - {None})
    assert not missing, (f"packages without a layer: {', '.join(missing)}; add each to LAYERS in "
                         "tests/test_layers.py and to the drawing in ARCHITECTURE.md")


def test_imports_follow_the_layers():
    wrong = []
    for path in modules():
        importer = module_name(path)
        src = top(importer)
        if src is None:  # tessera/__init__.py: the public API, above everything
            continue
        for target, line in imports(path):
            dst = top(target)
            if dst is None or dst == src or (importer, target) in KNOWN:
                continue
            if dst not in LEVEL:
                wrong.append(f"{path.relative_to(ROOT)}:{line}: imports {target}, a package without a layer")
            elif LEVEL[dst] >= LEVEL[src]:
                where = "the same layer" if LEVEL[dst] == LEVEL[src] else "a higher layer"
                wrong.append(f"{path.relative_to(ROOT)}:{line}: {src} imports {target} ({dst} is in {where}); "
                             "move the code it needs down, or pass it in")
    assert not wrong, "imports against the layers (tests/test_layers.py):\n" + "\n".join(wrong)


def test_known_exceptions_still_exist():
    """An exception that is no longer needed is taken off the list."""
    found = {(module_name(p), t) for p in modules() for t, _ in imports(p)}
    assert KNOWN <= found, f"no longer imported, remove from KNOWN: {sorted(KNOWN - found)}"


def drawing() -> str:
    return "\n".join("  " + " | ".join(layer) for layer in reversed(LAYERS))


def test_architecture_draws_the_layers():
    text = (ROOT / "ARCHITECTURE.md").read_text()
    assert drawing() in text, ("ARCHITECTURE.md's layer drawing differs from LAYERS in tests/test_layers.py; "
                               "its Packages section should hold (highest first):\n" + drawing())


@pytest.mark.parametrize("source, expected", [
    ("from tessera.sources.staging import stage\n", "tessera.sources.staging"),
    ("def f():\n    from tessera.enrich import runner\n", "tessera.enrich"),
    ("import tessera.workspace\n", "tessera.workspace"),
    ("from tessera import workspace\n", "tessera.workspace"),
    ("from ..sources import staging\n", "tessera.sources"),
])
def test_imports_are_found_inside_functions_and_relative(source, expected):
    assert [t for t, _ in imports(PACKAGE / "config" / "loader.py", source)] == [expected]
