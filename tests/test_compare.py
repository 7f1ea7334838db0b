"""``spikeinit compare``: summary statistics, outputs, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from spikeinit.cli.main import main
from spikeinit.experiments.compare import (
    epochs_to_reach,
    markdown_table,
    run_compare,
    summarize,
    summary_table,
)
from spikeinit.experiments.training import TrainConfig
from test_training import write_fake_mnist


def test_epochs_to_reach() -> None:
    assert epochs_to_reach([0.1, 0.5, 0.9], 0.5) == 2
    assert epochs_to_reach([0.1, 0.2], 0.5) is None


def test_summarize_uses_shared_target() -> None:
    curves = {"paper": [[0.5, 0.8, 0.9], [0.7, 0.8, 0.9]], "kaiming": [[0.1, 0.1, 0.1]]}
    summary = summarize(curves, {"paper": [100.0, 200.0], "kaiming": [50.0]})
    assert summary["best"] == pytest.approx(0.9)
    assert summary["target"] == pytest.approx(0.81)
    paper = summary["inits"]["paper"]
    assert paper["final_mean"] == pytest.approx(0.9) and paper["final_std"] == 0.0
    assert paper["epochs_to_target"] == 3  # mean curve 0.6, 0.8, 0.9
    assert paper["samples_per_second"] == pytest.approx(150.0)
    assert summary["inits"]["kaiming"]["epochs_to_target"] is None
    rows = summary_table(summary)
    assert rows[0][0] == "init" and rows[2][5] == "never"
    table = markdown_table(rows)
    assert table.count("\n") == 4 and table.startswith("| init |")
    with pytest.raises(ValueError, match="curves"):
        summarize({})


def test_run_compare_writes_figure_and_table(tmp_path: Path) -> None:
    data = write_fake_mnist(tmp_path / "data", n_train=64, n_test=32)
    base = TrainConfig(data_dir=str(data), depth=1, width=16, epochs=2, batch=32)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        summary = run_compare(base, ["paper", "kaiming"], seeds=[0, 1], out=tmp_path / "cmp",
                              device="cpu", progress=False, log=None)
    finally:
        torch.set_num_threads(threads)
    for name in ("compare.json", "compare.csv", "compare.md", "compare.png"):
        assert (tmp_path / "cmp" / name).is_file()
    assert (tmp_path / "cmp" / "paper" / "seed-1" / "metrics.json").is_file()
    saved = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert set(saved["inits"]) == {"paper", "kaiming"}
    assert len(saved["inits"]["paper"]["test_accuracy"]) == 2
    assert len(saved["inits"]["paper"]["test_accuracy"][0]) == 2
    assert saved["chance"] == pytest.approx(0.1)
    assert summary["seeds"] == [0, 1]


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--init", "paper", "paper"], "must not repeat"), (["--init", "bogus"], "init must be")],
)
def test_compare_cli_bad_input(tmp_path: Path, capsys, args: list[str], message: str) -> None:
    data = write_fake_mnist(tmp_path / "data", n_train=16, n_test=16)
    code = main(["compare", "--data-dir", str(data), "--device", "cpu", "--out",
                 str(tmp_path / "c"), *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0]
