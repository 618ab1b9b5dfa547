"""The package's layout rules (README "Where things are"), read from the source with `ast`:

* the import stack is one-way: each part imports only the parts below it (Hub files only each other), and no
  module imports itself back through a chain of imports;
* no private name (`_x`) is imported from another module;
* every module of a subpackage is listed in its `__init__.py` (the one-hop map);
* no module is longer than 800 lines (the modeling file excepted, as in transformers) and no class than 250.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "modeling_tvtsv2"

# What each part may import (besides itself). Lower parts never import higher ones.
ALLOWED = {
    "hub": set(),
    "from_clip": {"hub"},
    "tools": {"hub"},
    "convert": {"hub", "tools"},
    "data": {"hub", "tools"},
    "evaluation": {"hub", "tools", "data"},
    "pretraining": {"hub", "from_clip", "tools", "data", "evaluation"},
    "cli": {"hub", "from_clip", "tools", "convert", "data", "evaluation", "pretraining"},
}
MAX_MODULE_LINES = 800
MAX_CLASS_LINES = 250


def _modules() -> dict[str, Path]:
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if "evaluate_metrics" in path.parts:  # a standalone `evaluate` module folder, loaded by path
            continue
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


MODULES = _modules()


def _part(module: str) -> str | None:
    """The part of the stack a module belongs to; None for the package root and its data (presets)."""
    parts = module.split(".")
    if len(parts) == 1 or parts[1] == "presets":
        return None
    if len(parts) > 2 or parts[1] in ("data", "evaluation", "pretraining", "tools"):
        return parts[1]
    name = parts[1]
    if name.endswith("_tvtsv2"):
        return "hub"
    if name.startswith("convert_"):
        return "convert"
    if name == "from_clip":
        return "from_clip"
    return "cli"  # cli, __main__


def _imports(module: str, path: Path) -> list[tuple[str, list[str], int]]:
    """`(imported module, imported names, line)` for every import of the package, also inside functions."""
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "modeling_tvtsv2":
                continue
            names = [alias.name for alias in node.names]
            # `from . import x` / `from .pkg import module`: the names are modules
            submodules = [f"{target}.{name}" for name in names if f"{target}.{name}" in MODULES]
            if submodules:
                found.extend((sub, [], node.lineno) for sub in submodules)
            else:
                found.append((target, names, node.lineno))
        elif isinstance(node, ast.Import):
            found.extend((alias.name, [], node.lineno) for alias in node.names if alias.name.startswith("modeling_"))
    return found


def test_the_import_stack_is_one_way():
    wrong = []
    for module, path in MODULES.items():
        source = _part(module)
        for target, _, line in _imports(module, path):
            if target not in MODULES:
                continue
            if source == "hub" and path.read_text(encoding="utf-8").find("from modeling_tvtsv2") >= 0:
                wrong.append(f"{module}:{line} imports the package absolutely (Hub files import siblings with '.')")
            imported = _part(target)
            if imported is None or imported == source or source is None:
                continue
            if imported not in ALLOWED[source]:
                wrong.append(f"{module}:{line} ({source}) imports {target} ({imported})")
    assert not wrong, "\n".join(wrong)


def test_no_module_imports_itself_back():
    graph = {
        module: {target for target, _, _ in _imports(module, path) if target in MODULES and target != module}
        for module, path in MODULES.items()
    }
    # The package roots (`__init__`) are where names are re-exported; a cycle through one is still a cycle.
    cycles = []
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt) :] + [node, nxt]) if nxt in stack else f"{node} -> {nxt}")
            elif nxt not in state:
                visit(nxt, stack + [node])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])
    assert not cycles, "\n".join(cycles)


def test_no_private_name_crosses_a_module_boundary():
    wrong = [
        f"{module}:{line} imports {', '.join(n for n in names if n.startswith('_'))} from {target}"
        for module, path in MODULES.items()
        for target, names, line in _imports(module, path)
        if target != module and any(name.startswith("_") and not name.startswith("__") for name in names)
    ]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("subpackage", ["data", "evaluation", "pretraining", "tools"])
def test_each_subpackage_lists_its_modules(subpackage):
    init = PACKAGE / subpackage / "__init__.py"
    doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
    assert "May import" in doc, f"{init} does not say what its modules may import"
    modules = sorted(p.stem for p in init.parent.glob("*.py") if p.stem not in ("__init__", "__main__"))
    missing = [name for name in modules if f"`{name}`" not in doc]
    assert not missing, f"{init} does not list {missing}"


def test_modules_and_classes_stay_small():
    too_long = []
    for module, path in MODULES.items():
        text = path.read_text(encoding="utf-8")
        lines = text.count("\n") + 1
        if lines > MAX_MODULE_LINES and module != "modeling_tvtsv2.modeling_tvtsv2":
            too_long.append(f"{module}: {lines} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES:
                too_long.append(f"{module}.{node.name}: {node.end_lineno - node.lineno + 1} lines")
    assert not too_long, "\n".join(too_long)
