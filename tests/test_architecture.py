"""The package layout's arrows point one way, as docs/layout.md says."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "spikeinit"

#: package -> the spikeinit packages it must never import (directly, at any depth).
FORBIDDEN = {
    "kernels": ("neurons", "theory", "init", "network", "adapters", "models", "experiments"),
    "neurons": ("theory", "init", "network", "adapters", "models", "experiments"),
    "theory": ("init", "network", "adapters", "models", "experiments"),
    "network": ("init", "models", "experiments"),
}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {name.split(".")[1] for name in names
            if name.startswith("spikeinit.") and len(name.split(".")) > 1}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_import_against_the_arrow(package: str) -> None:
    offending = {}
    for path in sorted((PACKAGE / package).glob("*.py")):
        bad = imported_packages(path) & set(FORBIDDEN[package])
        if bad:
            offending[path.name] = sorted(bad)
    assert not offending, f"spikeinit.{package} imports {offending}"


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
