"""A 20-layer MLP on real MNIST: the paper's init keeps it alive, Kaiming's goes silent.

Measured on this machine (docs/results.md): with T=3, theta=1, beta=0.5 and width 100, a
20-layer MLP did *not* learn within one epoch with any init we tried (paper included), so the
learning half of the claim is recorded as an opt-in expected failure; what the fast test checks
is the mechanism the paper's claim rests on.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from spikeinit.experiments.training import TrainConfig, train

DEPTH = 20


def _run(data_dir: Path, init: str, limit: int, epochs: int = 1):
    config = TrainConfig(data_dir=str(data_dir), depth=DEPTH, width=100, init=init,
                         epochs=epochs, limit_train=limit, limit_test=1000)
    return train(config, None, device="cpu", progress=False, log=None)


def test_deep_mlp_paper_stays_active_kaiming_goes_silent(data_dir: Path,
                                                         one_thread: None) -> None:
    paper = _run(data_dir, "paper", 2000).final
    kaiming = _run(data_dir, "kaiming", 2000).final
    paper_rates = list(paper["firing_rates"].values())
    kaiming_rates = list(kaiming["firing_rates"].values())
    assert len(paper_rates) == DEPTH + 2  # input LIF, 20 hidden, output
    # paper: every layer, the output included, still spikes
    assert min(paper_rates) > 1e-3
    # kaiming: activity dies out with depth and the output is silent: chance level
    assert kaiming_rates[-1] < 1e-4 and max(kaiming_rates[-5:]) < 1e-3
    assert kaiming["test_accuracy"] < 0.2
    # the first layer still receives a gradient with the paper's init, far more than Kaiming's
    first = next(iter(paper["grad_norms"]))
    assert paper["grad_norms"][first] > 1e-4
    assert paper["grad_norms"][first] > 10 * kaiming["grad_norms"][first]


@pytest.mark.slow
@pytest.mark.xfail(strict=False, reason="not reproduced on CPU budgets: a 20-layer MLP at "
                   "T=3, theta=1 stayed at chance after one full MNIST epoch with 'paper' too")
def test_deep_mlp_learns_with_paper_not_kaiming(data_dir: Path, one_thread: None) -> None:
    paper = _run(data_dir, "paper", 60000).final
    kaiming = _run(data_dir, "kaiming", 60000).final
    assert kaiming["test_accuracy"] < 0.2
    assert paper["test_accuracy"] > 0.5
