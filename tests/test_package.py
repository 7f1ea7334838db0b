"""The built distributions: what ``pip install spikeinit`` gets, and what the sdist ships.

The wheel and the sdist are built once per session with ``python -m build --no-isolation``
(the wheel from the sdist, as PyPI users' tools do), into a temporary folder; the test extra
installs ``build`` and ``twine``. Without them the tests skip.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

import spikeinit

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "spikeinit"


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """The wheel, the sdist and the build's output."""
    for tool in ("build", "twine"):
        if importlib.util.find_spec(tool) is None:
            pytest.skip(f"{tool} not installed (pip install -e '.[test]')")
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir",
                             str(out), str(ROOT)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")
    return wheel, sdist, result.stdout + result.stderr


def wheel_names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def wheel_metadata(wheel: Path):  # noqa: ANN201 - an email.message.Message
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        return Parser().parsestr(archive.read(name).decode())


def test_the_build_says_nothing_is_deprecated(dist: tuple[Path, Path, str]) -> None:
    assert "deprecat" not in dist[2].lower()


def test_the_wheel_holds_the_package_its_kernels_license_and_type_marker(
        dist: tuple[Path, Path, str]) -> None:
    names = wheel_names(dist[0])
    sources = {str(path.relative_to(PACKAGE.parent)) for path in PACKAGE.rglob("*.py")
               if "__pycache__" not in path.parts}
    assert sources <= names, sorted(sources - names)[:5]
    assert {"spikeinit/py.typed", "spikeinit/engine/kernels/lif_kernel.cpp",
            "spikeinit/engine/kernels/event_kernel.cpp"} <= names
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)
    assert not any(name.startswith(("tests/", "docs/", "benchmarks/")) for name in names)


def test_the_wheel_metadata_is_complete(dist: tuple[Path, Path, str]) -> None:
    metadata = wheel_metadata(dist[0])
    assert metadata["Name"] == "spikeinit"
    assert metadata["Version"] == spikeinit.__version__
    assert metadata["License-Expression"] == "MIT"
    assert "License" not in metadata  # the deprecated free-text field
    assert metadata["Requires-Python"] == ">=3.10"
    assert metadata["Keywords"] and "spiking neural networks" in metadata["Keywords"]
    classifiers = metadata.get_all("Classifier")
    assert "Typing :: Typed" in classifiers
    assert not any(c.startswith("License ::") for c in classifiers)  # the expression says it
    urls = dict(value.split(", ", 1) for value in metadata.get_all("Project-URL"))
    assert {"Homepage", "Documentation", "Source", "Issues", "Changelog", "Paper"} <= set(urls)
    assert all(url.startswith("https://") for url in urls.values())
    assert metadata["Description-Content-Type"] == "text/markdown"
    description = metadata.get_payload()
    # The long description is the PyPI page: no link that only works inside a clone.
    assert "](docs/" not in description and "](http" in description


def test_the_console_script_is_declared(dist: tuple[Path, Path, str]) -> None:
    with zipfile.ZipFile(dist[0]) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt"))
        entry_points = archive.read(name).decode()
    assert "spikeinit = spikeinit.cli.main:main" in entry_points


def test_the_sdist_ships_license_changelog_citation_docs_and_tests(
        dist: tuple[Path, Path, str]) -> None:
    with tarfile.open(dist[1]) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {"LICENSE", "CHANGELOG.md", "CITATION.cff", "README.md", "pyproject.toml",
            "mkdocs.yml", "docs/index.md", "docs/tutorials/tutorial_data.py",
            "docs/tutorials/01_silence.py", "tests/test_package.py",
            "src/spikeinit/py.typed"} <= names
    assert not any("__pycache__" in name for name in names)


def test_twine_accepts_both(dist: tuple[Path, Path, str]) -> None:
    result = subprocess.run([sys.executable, "-m", "twine", "check", "--strict",
                             str(dist[0]), str(dist[1])], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_citation_names_the_paper_and_the_version() -> None:
    text = (ROOT / "CITATION.cff").read_text()
    assert "arXiv:2410.00580" in text
    assert "Deep activity propagation via weight initialization in spiking neural networks" in text
    assert f"version: {spikeinit.__version__}" in text
