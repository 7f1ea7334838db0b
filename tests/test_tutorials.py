"""Every tutorial runs top to bottom (jupytext + nbclient), in full (no part skipped, no
warning printed), and shows its figures.

Marked ``slow`` and ``docs``: ``python -m pytest`` leaves them out; ``.ci/run`` runs
``SPIKEINIT_TUTORIAL_SIZE=ci python -m pytest -m docs tests/test_tutorials.py`` before
``mkdocs build --strict``, which then reuses the executed notebooks (build/tutorials/). The size
is ``$SPIKEINIT_TUTORIAL_SIZE``, ``ci`` when unset.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HOOK = ROOT / "docs" / "hooks" / "tutorials.py"
TUTORIALS = sorted((ROOT / "docs" / "tutorials").glob("[0-9][0-9]_*.py"))

pytestmark = [pytest.mark.slow, pytest.mark.docs]


def runner():
    missing = [name for name in ("jupytext", "nbclient", "nbformat", "ipykernel")
               if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (pip install -e '.[docs]')")
    spec = importlib.util.spec_from_file_location("docs_tutorials", HOOK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("source", TUTORIALS, ids=[path.stem for path in TUTORIALS])
def test_tutorial_runs_and_shows_its_figures(source: Path) -> None:
    tutorials = runner()
    size = os.environ.get(tutorials.ENV_SIZE) or "ci"
    notebook, seconds = tutorials.execute(source, size)  # a failing cell raises here
    errors = [output for cell in notebook.cells for output in cell.get("outputs", [])
              if output.get("output_type") == "error"]
    assert not errors
    assert not tutorials.problems(notebook), "the tutorial skipped a part or warned"
    markdown, figures = tutorials.render(notebook, source)
    assert markdown.startswith("# "), "a tutorial opens with its title"
    assert figures, f"{source.name} shows no figure"
    assert all(data.startswith(b"\x89PNG") for data in figures.values())
    print(f"{source.name} ({size}): {seconds:.1f} s, {len(figures)} figures")
