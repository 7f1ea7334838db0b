"""The "Use it on your model" examples (docs/your-model.md, moved there from README) run as
written, one per framework."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import re
from pathlib import Path

import pytest
import torch

FRAMEWORKS = ("snntorch", "spikingjelly", "norse")
PROJECT_ROOT = Path(__file__).resolve().parents[1]


def examples() -> dict[str, str]:
    section = (PROJECT_ROOT / "docs" / "your-model.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    found = {}
    for block in blocks:
        for name in FRAMEWORKS:
            if re.search(rf"^(import|from) {name}\b|^import torch, {name}\b", block, flags=re.M):
                found[name] = block
    return found


def test_every_framework_has_an_example() -> None:
    assert set(examples()) == set(FRAMEWORKS)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_readme_example_runs(framework: str) -> None:
    if importlib.util.find_spec(framework) is None:
        pytest.skip(f"{framework} is not installed (pip install --no-deps {framework}, .ci/run)")
    torch.manual_seed(0)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    output = io.StringIO()
    try:
        with contextlib.redirect_stdout(output):
            exec(compile(examples()[framework], f"docs/your-model.md ({framework})", "exec"), {})
    finally:
        torch.set_num_threads(previous)
    assert "forward passes" in output.getvalue() or "rate pred" in output.getvalue()
