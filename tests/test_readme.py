"""README's "Use it" example runs as written (the framework examples: test_adapters_readme)."""

from __future__ import annotations

import contextlib
import io
import math
import re
from pathlib import Path

import torch
from torch import nn

README = Path(__file__).resolve().parents[1] / "README.md"


def test_use_it_example_runs() -> None:
    section = README.read_text().split("## Use it\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks, "README's 'Use it' section has no python example"
    torch.manual_seed(0)
    namespace: dict = {}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(blocks[0], "README.md: Use it", "exec"), namespace)
    spikes = namespace["spikes"]
    assert spikes.shape == (3, 64, 10)
    assert set(spikes.unique().tolist()) <= {0.0, 1.0} and spikes.mean() > 0  # not silent
    # The paper's std, 1 / sqrt(n Q(1)), for the uniform layer and for every Linear fed by
    # spikes of threshold-1 neurons with membrane N(0, 1) (the first one is set from the sample).
    q = 0.5 * math.erfc(1 / math.sqrt(2))
    uniform = namespace["layer"].weight.detach()
    expected = 1 / math.sqrt(1000 * q)
    assert abs(uniform.std().item() / expected - 1) < 5 / math.sqrt(2 * uniform.numel())
    assert uniform.abs().max().item() <= math.sqrt(3) * expected * (1 + 1e-6)
    linears = [m for m in namespace["net"].modules() if isinstance(m, nn.Linear)]
    assert [tuple(m.weight.shape) for m in linears] == [(1000, 784), (1000, 1000), (10, 1000)]
    for linear in linears[1:]:
        weight = linear.weight.detach()
        expected = 1 / math.sqrt(weight.shape[1] * q)
        # within 5 standard errors of a sample std, 1 / sqrt(2 N)
        assert abs(weight.std().item() / expected - 1) < 5 / math.sqrt(2 * weight.numel())
