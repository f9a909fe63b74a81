"""The house rules of ARCHITECTURE.md, checked from the imports: a change that breaks one fails here.

- ``state.py`` is the composition root: only ``server/`` and ``cli/`` import it.
- SQL lives in ``store/``; FastAPI only in ``server/``; Lightning only in ``training/``; pydantic only in
  ``settings.py`` and ``server/``.
- No import cycle among the package's modules (imports at module level and inside functions alike).
"""
from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "interpretability_workbench"
NAME = PKG.name


def _modules() -> dict[str, Path]:
    out = {}
    for p in PKG.rglob("*.py"):
        rel = p.relative_to(PKG.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


MODULES = _modules()


def _imports(mod: str, path: Path) -> set[str]:
    """Absolute names of everything ``mod`` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text())
    pkg = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")
                base = base[: len(base) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            out.add(prefix)
            for a in node.names:  # `from . import x` may import a submodule
                if f"{prefix}.{a.name}" in MODULES:
                    out.add(f"{prefix}.{a.name}")
    return out


IMPORTS = {m: _imports(m, p) for m, p in MODULES.items()}


def _in(mod: str, *areas: str) -> bool:
    return any(mod == f"{NAME}.{a}" or mod.startswith(f"{NAME}.{a}.") for a in areas)


def _offenders(third_party: str, allowed: tuple[str, ...]) -> list[str]:
    return sorted(m for m, imps in IMPORTS.items()
                  if not _in(m, *allowed) and any(i == third_party or i.startswith(third_party + ".") for i in imps))


def test_only_the_skins_import_the_composition_root():
    state = f"{NAME}.state"
    bad = sorted(m for m, imps in IMPORTS.items() if state in imps and not _in(m, "server", "cli", "state"))
    assert bad == []


def test_libraries_stay_in_their_rooms():
    assert _offenders("sqlite3", ("store",)) == []
    assert _offenders("fastapi", ("server",)) == []
    assert _offenders("starlette", ("server",)) == []
    assert _offenders("lightning", ("training",)) == []
    assert _offenders("pydantic", ("server", "settings")) == []


def test_no_import_cycles():
    graph = {m: {i for i in imps if i in MODULES and i != m} for m, imps in IMPORTS.items()}
    # a package's __init__ importing its own submodules is not a cycle of the layering
    for m in graph:
        graph[m] = {i for i in graph[m] if not (MODULES[m].name == "__init__.py" and i.startswith(m + "."))
                    and not (MODULES[i].name == "__init__.py" and m.startswith(i + "."))}
    seen: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(m: str) -> None:
        seen[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if seen.get(n) == 1:
                cycles.append(stack[stack.index(n):] + [n])
            elif n not in seen:
                visit(n)
        stack.pop()
        seen[m] = 2

    for m in sorted(graph):
        if m not in seen:
            visit(m)
    assert cycles == []


def test_the_check_sees_real_imports():
    """Guard against a silently empty check: known edges are found."""
    assert f"{NAME}.state" in IMPORTS[f"{NAME}.server.deps"]
    assert f"{NAME}.store.db" in IMPORTS[f"{NAME}.store.features"]
    assert "lightning.pytorch" in IMPORTS[f"{NAME}.training.lit_module"]
