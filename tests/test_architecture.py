"""The import graph of the library keeps the layers of docs/architecture.md: a module imports only
modules of its own layer or below, never one above, and no two modules import each other, even
for type checking alone (issue 14). The graph is read from the source with ``ast``, imports inside
functions and ``TYPE_CHECKING`` blocks included."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "iranpki"

# docs/architecture.md, "The layers": the top-level module or package of iranpki and its layer.
LAYERS = {
    0: {"iranpki", "_data", "errors", "clock", "der", "names", "keycheck", "keys", "profiles", "policy", "identity", "store",
        "x509parts", "pagestyle", "httpserve", "inputs", "verdict", "audit"},
    1: {"ca", "validation", "signing"},
    2: {"ocsp", "tsa", "crl", "compliance", "conformance", "verify", "ra", "publish"},
    3: {"workspace", "ceremony"},
}
LAYER_OF = {name: layer for layer, names in LAYERS.items() for name in names}


def _modules() -> dict[str, Path]:
    out = {}
    for f in SRC.rglob("*.py"):
        parts = f.relative_to(SRC.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = f
    return out


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    edges: dict[str, set[str]] = {}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                named = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in mods]
                found.update(named or ([target] if target in mods else []))
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name in mods)
        found.discard(name)
        edges[name] = found
    return edges


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "iranpki"


def test_every_module_has_a_layer() -> None:
    unplaced = sorted({_top(m) for m in _modules()} - set(LAYER_OF))
    assert not unplaced, f"add these to LAYERS and to docs/architecture.md: {unplaced}"


def test_no_module_imports_a_layer_above_its_own() -> None:
    upward = sorted(f"{m} -> {t}" for m, targets in _graph().items() for t in targets
                    if LAYER_OF[_top(t)] > LAYER_OF[_top(m)])
    assert not upward, upward


def test_the_import_graph_has_no_cycle() -> None:
    edges = _graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for start in sorted(edges):
        if start not in state:
            visit(start, [start])
    assert not cycles, cycles


def test_every_relative_import_names_a_module_that_exists() -> None:
    """An import inside a function runs only when the function does: a relative import that names
    no module (left behind when a module moved) fails here, not in an operator's hands."""
    mods = _modules()
    broken = []
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                if target not in mods and not all(f"{target}.{a.name}" in mods for a in node.names):
                    broken.append(f"{name}: from {'.' * node.level}{node.module or ''} ({target})")
    assert not broken, broken


def test_the_library_imports_no_client_framework() -> None:
    banned = ("click", "rich", "django", "flask", "fastapi", "aiohttp.web")
    found = []
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            modules = ([a.name for a in node.names] if isinstance(node, ast.Import)
                       else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            found += [f"{name}: {m}" for m in modules if m.split(".")[0] in banned or m in banned]
    assert not found, found


def test_one_loader_one_input_type_one_dispatcher() -> None:
    """Certificates are read by one loader of one input type, and files are told apart by one
    dispatcher (issue 14, item 5): a second definition in the library or the command fails."""
    wanted = {"load_certificates": "iranpki.inputs", "load_crls": "iranpki.inputs", "CertificateInput": "iranpki.inputs",
              "detect_kind": "iranpki.verify", "verify_file": "iranpki.verify"}
    cli = Path(__file__).resolve().parent.parent / "cli" / "iranpki_cli"
    files = {**{name: path for name, path in _modules().items()},
             **{f"cli.{p.stem}": p for p in cli.glob("*.py")}}
    defined: dict[str, list[str]] = {}
    for name, path in files.items():
        for node in ast.parse(path.read_text("utf-8")).body:
            names = ([node.name] if isinstance(node, (ast.FunctionDef, ast.ClassDef)) else
                     [t.id for t in node.targets if isinstance(t, ast.Name)] if isinstance(node, ast.Assign) else
                     [node.target.id] if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) else [])
            for n in names:
                if n in wanted or n in ("detect_signed_kind", "verify_signed", "KINDS", "SignatureInvalid"):
                    defined.setdefault(n, []).append(name)
    assert defined == {n: [m] for n, m in wanted.items()}, defined
