"""README's "Use it" example runs as written (the framework examples: test_adapters_readme)."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def test_use_it_example_runs() -> None:
    section = README.read_text().split("## Use it\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks, "README's 'Use it' section has no python example"
    torch.manual_seed(0)
    namespace: dict = {}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(blocks[0], "README.md: Use it", "exec"), namespace)
    assert namespace["spikes"].shape == (3, 64, 10)
