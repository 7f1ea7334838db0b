"""The package layout's arrows point one way, as docs/layout.md says."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "spikeinit"

#: The engine sits at the bottom: it may import only itself and these leaf modules (which
#: import nothing of spikeinit but the exception family, ``errors``, which imports nothing).
BASE_MODULES = ("errors", "io", "machine", "_validation")

#: package -> the spikeinit packages it must never import (directly, at any depth).
FORBIDDEN = {
    "engine": ("neurons", "theory", "init", "network", "adapters", "models", "experiments",
               "data", "cli", "sweep", "calibration", "health", "tables"),
    "neurons": ("theory", "init", "network", "adapters", "models", "experiments"),
    "theory": ("init", "network", "adapters", "models", "experiments"),
    "network": ("init", "models", "experiments"),
    "init": ("adapters", "models", "experiments", "sweep", "cli", "calibration", "health"),
    "experiments": ("sweep", "cli"),
}

DYNAMIC_IMPORTS = {"import_module", "__import__", "find_spec", "spec_from_file_location"}


def _module_name(node: ast.expr) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def imported_modules(path: Path) -> set[str]:
    """Every module the file ``path`` of the package imports (:func:`modules_in`)."""
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    return modules_in(path.read_text(), package)


def modules_in(source: str, package: str) -> set[str]:
    """Every module ``source`` (a module of ``package``) imports: import statements, relative
    imports (resolved) and dynamic imports (``importlib.import_module``, ``__import__`` and the
    like, whose argument must be a literal: anything else is reported as ``<dynamic>``)."""
    tree = ast.parse(source)
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                names.add(".".join([*base, *([node.module] if node.module else [])]))
            elif node.module:
                names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if called in DYNAMIC_IMPORTS:
                name = _module_name(node.args[0]) if node.args else None
                names.add(name or "<dynamic>")
    return names


def packages_of(modules: set[str]) -> set[str]:
    return {name.split(".")[1] if name != "<dynamic>" else name for name in modules
            if name == "<dynamic>" or (name.startswith("spikeinit.") and name.count(".") >= 1)}


def imported_packages(path: Path) -> set[str]:
    return packages_of(imported_modules(path))


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_import_against_the_arrow(package: str) -> None:
    offending = {}
    for path in sorted((PACKAGE / package).rglob("*.py")):
        bad = imported_packages(path) & {*FORBIDDEN[package], "<dynamic>"}
        if bad:
            offending[str(path.relative_to(PACKAGE))] = sorted(bad)
    assert not offending, f"spikeinit.{package} imports {offending}"


def test_the_engine_imports_only_itself_and_the_leaf_modules() -> None:
    allowed = {"engine", *BASE_MODULES}
    assert not imported_packages(PACKAGE / "errors.py")
    for name in BASE_MODULES:
        assert imported_packages(PACKAGE / f"{name}.py") <= {"errors"}, name
    offending = {str(path.relative_to(PACKAGE)): sorted(imported_packages(path) - allowed)
                 for path in sorted((PACKAGE / "engine").rglob("*.py"))
                 if imported_packages(path) - allowed}
    assert not offending, f"spikeinit.engine imports {offending}"


def package_graph() -> dict[str, set[str]]:
    """Each top-level package or module of spikeinit -> the others it imports."""
    graph: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        if name == "__init__":
            continue
        imported = imported_packages(path) - {name, "<dynamic>"}
        graph.setdefault(name, set()).update(imported)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path ``[a, b, ..., a]``, or ``None``."""
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for following in sorted(graph.get(node, ())):
            if state.get(following) == "open":
                return path[path.index(following):] + [following]
            if following not in state and (cycle := visit(following)):
                return cycle
        state[node] = "done"
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycle_between_packages() -> None:
    assert find_cycle(package_graph()) is None, " -> ".join(find_cycle(package_graph()) or [])


def test_a_cycle_is_found() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_dynamic_and_relative_imports_are_seen() -> None:
    source = ("import importlib\nfrom ..models import mlp\nfrom .gemm import linear_nt\n"
              "x = importlib.import_module('spikeinit.init')\ny = __import__(name)\n")
    assert packages_of(modules_in(source, "spikeinit.engine")) == {
        "models", "engine", "init", "<dynamic>"}


def test_theory_holds_no_modules() -> None:
    for path in sorted((PACKAGE / "theory").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "torch":
                assert "nn" not in {alias.name for alias in node.names}, path.name
            if isinstance(node, ast.Attribute) and node.attr == "Module":
                raise AssertionError(f"{path.name} uses nn.Module")


def test_adapters_are_one_module_per_framework_and_their_shared_protocol() -> None:
    names = {path.stem for path in (PACKAGE / "adapters").glob("*.py")}
    assert names == {"__init__", "_common", "description", "registry", "native", "snntorch",
                     "spikingjelly", "norse"}


def test_experiments_do_not_import_the_sweep_that_runs_them() -> None:
    """``sweep -> experiments`` only: the two packages do not import each other."""
    offending = sorted(str(path.relative_to(PACKAGE))
                       for path in (PACKAGE / "experiments").rglob("*.py")
                       if {"sweep", "cli"} & imported_packages(path))
    assert not offending, f"these experiments import the sweep or the CLI: {offending}"
