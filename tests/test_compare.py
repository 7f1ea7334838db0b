"""``spikeinit compare``: summary statistics over seeds, paired comparisons, outputs, CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

import spikeinit.cli.train as cli_train
from spikeinit.cli.main import main
from spikeinit.experiments.compare import (
    compare_markdown,
    comparison_table,
    epochs_to_reach,
    markdown_table,
    paired_comparison,
    run_compare,
    summarize,
    summary_table,
)
from spikeinit.experiments.training import TrainConfig
from test_training import write_fake_mnist

# Three seeds per init. paper: mean curve 0.60, 0.85, 0.94 with std 0.10, 0.05, 0.04.
PAPER = {0: [0.50, 0.80, 0.90], 1: [0.60, 0.85, 0.94], 2: [0.70, 0.90, 0.98]}
# kaiming: mean curve 0.40, 0.75, 0.87; given out of seed order on purpose.
KAIMING = {2: [0.30, 0.75, 0.86], 0: [0.40, 0.70, 0.85], 1: [0.50, 0.80, 0.90]}
# Paired final differences paper - kaiming by seed 0, 1, 2: 0.05, 0.04, 0.12 (mean 0.07).
DIFFERENCES = [0.05, 0.04, 0.12]


def two_inits() -> dict[str, dict[int, list[float]]]:
    return {"kaiming": KAIMING, "paper": PAPER}


def test_epochs_to_reach() -> None:
    assert epochs_to_reach([0.1, 0.5, 0.9], 0.5) == 2
    assert epochs_to_reach([0.1, 0.2], 0.5) is None


def test_summarize_mean_std_curves_and_finals() -> None:
    summary = summarize(two_inits(), {"paper": [100.0, 200.0, 300.0], "kaiming": [50.0] * 3})
    paper, kaiming = summary["inits"]["paper"], summary["inits"]["kaiming"]
    assert paper["seeds"] == [0, 1, 2] and paper["n_seeds"] == 3
    assert paper["mean_curve"] == pytest.approx([0.60, 0.85, 0.94])
    assert paper["std_curve"] == pytest.approx([0.10, 0.05, 0.04])  # ddof=1
    assert paper["final_mean"] == pytest.approx(0.94)
    assert paper["final_std"] == pytest.approx(0.04)
    assert (paper["final_min"], paper["final_max"]) == pytest.approx((0.90, 0.98))
    assert paper["samples_per_second"] == pytest.approx(200.0)
    assert kaiming["seeds"] == [2, 0, 1]
    assert kaiming["test_accuracy"][0] == pytest.approx(KAIMING[2])  # aligned with "seeds"
    assert kaiming["mean_curve"] == pytest.approx([0.40, 0.75, 0.87])
    assert kaiming["std_curve"][0] == pytest.approx(0.10)


def test_summarize_epochs_to_90_and_97_percent_of_shared_best() -> None:
    summary = summarize(two_inits())
    assert summary["best"] == pytest.approx(0.94)
    assert summary["fractions"] == [0.9, 0.97]
    assert summary["targets"]["0.9"] == pytest.approx(0.846)
    assert summary["targets"]["0.97"] == pytest.approx(0.9118)
    # paper mean 0.60, 0.85, 0.94: reaches 90% of best at epoch 2, 97% only at epoch 3.
    assert summary["inits"]["paper"]["epochs_to"] == {"0.9": 2, "0.97": 3}
    # kaiming mean 0.40, 0.75, 0.87: 90% of the *shared* best at epoch 3, 97% never.
    assert summary["inits"]["kaiming"]["epochs_to"] == {"0.9": 3, "0.97": None}


def test_summarize_paired_difference_sign_and_p_value() -> None:
    summary = summarize(two_inits())
    assert summary["reference"] == "paper"  # default even though not the first init
    assert set(summary["comparisons"]) == {"kaiming"}
    comparison = summary["comparisons"]["kaiming"]
    assert comparison["reference"] == "paper"
    assert comparison["seeds"] == [0, 1, 2] and comparison["n"] == 3
    assert comparison["differences"] == pytest.approx(DIFFERENCES)  # paired by seed number
    assert comparison["mean_difference"] == pytest.approx(0.07)  # paper better: positive
    sd = math.sqrt((0.02**2 + 0.03**2 + 0.05**2) / 2)
    assert comparison["std_difference"] == pytest.approx(sd)
    assert comparison["t_statistic"] == pytest.approx(0.07 / (sd / math.sqrt(3)))
    expected = stats.ttest_rel([0.90, 0.94, 0.98], [0.85, 0.90, 0.86])
    assert comparison["p_value"] == pytest.approx(float(expected.pvalue), rel=1e-12)
    assert 0.05 < comparison["p_value"] < 0.2  # t ≈ 2.78 on 2 degrees of freedom
    assert comparison["p_value_note"] is None
    flipped = summarize(two_inits(), reference="kaiming")["comparisons"]["paper"]
    assert flipped["mean_difference"] == pytest.approx(-0.07)
    assert flipped["p_value"] == pytest.approx(comparison["p_value"])
    assert flipped["ci_low"] == pytest.approx(-comparison["ci_high"])


def test_summarize_default_reference_without_paper_is_first_init() -> None:
    summary = summarize({"xavier": [[0.5, 0.6]], "kaiming": [[0.4, 0.5]]})
    assert summary["reference"] == "xavier" and set(summary["comparisons"]) == {"kaiming"}
    with pytest.raises(ValueError, match="reference init 'bogus'"):
        summarize({"xavier": [[0.5, 0.6]]}, reference="bogus")


def test_bootstrap_ci_contains_mean_and_is_deterministic() -> None:
    first = summarize(two_inits())["comparisons"]["kaiming"]
    second = summarize(two_inits())["comparisons"]["kaiming"]
    assert (first["ci_low"], first["ci_high"]) == (second["ci_low"], second["ci_high"])
    assert first["ci_low"] < 0.07 < first["ci_high"]
    assert min(DIFFERENCES) - 1e-12 <= first["ci_low"] and first["ci_high"] <= max(DIFFERENCES)
    assert first["confidence"] == 0.95 and first["n_resamples"] == 10_000


def test_bootstrap_ci_matches_normal_approximation_with_more_seeds() -> None:
    rng = np.random.default_rng(123)
    reference = {seed: 0.9 + 0.01 * float(rng.standard_normal()) for seed in range(40)}
    other = {seed: acc - 0.02 + 0.01 * float(rng.standard_normal())
             for seed, acc in reference.items()}
    result = paired_comparison(reference, other)
    d = np.array(result["differences"])
    half = 1.96 * d.std() / math.sqrt(d.size)
    assert result["ci_low"] == pytest.approx(d.mean() - half, abs=0.15 * half)
    assert result["ci_high"] == pytest.approx(d.mean() + half, abs=0.15 * half)
    assert paired_comparison(reference, other) == result  # seeded: same CI on every call
    reseeded = paired_comparison(reference, other, bootstrap_seed=1)
    assert (reseeded["ci_low"], reseeded["ci_high"]) != (result["ci_low"], result["ci_high"])


def test_one_seed_gives_no_p_value_and_no_ci() -> None:
    summary = summarize({"paper": [[0.5, 0.9]], "kaiming": [[0.4, 0.8]]})
    assert summary["inits"]["paper"]["std_curve"] == [0.0, 0.0]
    assert summary["inits"]["paper"]["final_std"] == 0.0
    comparison = summary["comparisons"]["kaiming"]
    assert comparison["n"] == 1 and comparison["mean_difference"] == pytest.approx(0.1)
    assert comparison["p_value"] is None and comparison["t_statistic"] is None
    assert "1 common seed" in comparison["p_value_note"]
    assert comparison["ci_low"] is None and comparison["ci_high"] is None
    row = comparison_table(summary)[1]
    assert row[2] == "+0.1000" and row[3].startswith("n/a") and row[4].startswith("n/a")


def test_zero_variance_of_differences_gives_no_p_value() -> None:
    comparison = paired_comparison({0: 0.9, 1: 0.8, 2: 0.7}, {0: 0.85, 1: 0.75, 2: 0.65})
    assert comparison["mean_difference"] == pytest.approx(0.05)
    assert comparison["p_value"] is None and "zero variance" in comparison["p_value_note"]
    assert comparison["ci_low"] == pytest.approx(0.05) == comparison["ci_high"]


def test_only_common_seeds_are_paired() -> None:
    comparison = paired_comparison({0: 0.9, 1: 0.8, 5: 0.7}, {1: 0.5, 5: 0.6, 7: 0.1})
    assert comparison["seeds"] == [1, 5] and comparison["differences"] == pytest.approx([0.3, 0.1])
    empty = paired_comparison({0: 0.9}, {1: 0.5})
    assert empty["n"] == 0 and empty["mean_difference"] is None and empty["p_value"] is None


def test_summarize_rejects_bad_curves() -> None:
    with pytest.raises(ValueError, match="curves"):
        summarize({})
    with pytest.raises(ValueError, match="kaiming seed 1: 2"):
        summarize({"paper": {0: [0.1, 0.2, 0.3], 1: [0.1, 0.2, 0.3]},
                   "kaiming": {0: [0.1, 0.2, 0.3], 1: [0.1, 0.2]}})
    with pytest.raises(ValueError, match="2 curves for 3 seeds"):
        summarize({"paper": [[0.1], [0.2]]}, seeds=[0, 1, 2])
    with pytest.raises(ValueError, match="no runs"):
        summarize({"paper": []})


def test_tables_and_markdown() -> None:
    summary = summarize(two_inits(), {"paper": [100.0] * 3, "kaiming": [50.0] * 3})
    rows = summary_table(summary)
    assert rows[0] == ["init", "final test acc: mean ± std (n seeds)", "min-max",
                       "epochs to 90% of best (0.846)", "epochs to 97% of best (0.912)",
                       "samples/s"]
    kaiming = rows[1]
    assert kaiming[0] == "kaiming" and kaiming[1] == "0.8700 ± 0.0265 (3 seeds)"
    assert kaiming[3:] == ["3", "never", "50"]
    comparisons = comparison_table(summary)
    assert len(comparisons) == 2
    assert comparisons[1][:3] == ["paper − kaiming", "3", "+0.0700"]
    assert comparisons[1][3].startswith("[+0.04")
    text = compare_markdown(summary)
    assert text.startswith(markdown_table(rows)) and text.endswith(markdown_table(comparisons))
    single = summarize({"paper": [[0.5]]})
    assert comparison_table(single) == comparison_table(single)[:1]
    assert compare_markdown(single) == markdown_table(summary_table(single))


def test_compare_cli_prints_both_tables(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(cli_train, "run_compare", lambda *args, **kwargs: summarize(two_inits()))
    code = main(["compare", "--device", "cpu", "--out", str(tmp_path / "c"),
                 "--init", "paper", "kaiming"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "| paper − kaiming | 3 | +0.0700 |" in printed
    assert printed.index("| init |") < printed.index("| comparison (paired by seed) |")


def test_run_compare_writes_figure_and_tables(tmp_path: Path) -> None:
    data = write_fake_mnist(tmp_path / "data", n_train=64, n_test=32)
    base = TrainConfig(data_dir=str(data), depth=1, width=16, epochs=2, batch=32)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        summary = run_compare(base, ["kaiming", "paper"], seeds=[3, 1], out=tmp_path / "cmp",
                              device="cpu", progress=False, log=None)
    finally:
        torch.set_num_threads(threads)
    for name in ("compare.json", "compare.csv", "compare.md", "compare.png"):
        assert (tmp_path / "cmp" / name).is_file()
    assert (tmp_path / "cmp" / "paper" / "seed-1" / "metrics.json").is_file()
    saved = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert set(saved["inits"]) == {"paper", "kaiming"}
    paper = saved["inits"]["paper"]
    assert paper["seeds"] == [3, 1] and len(paper["test_accuracy"]) == 2
    assert len(paper["test_accuracy"][0]) == 2 and len(paper["mean_curve"]) == 2
    metrics = json.loads((tmp_path / "cmp" / "paper" / "seed-1" / "metrics.json").read_text())
    assert paper["test_accuracy"][1][-1] == pytest.approx(
        metrics["history"][-1]["test_accuracy"])  # seed identity kept
    assert saved["reference"] == "paper" and set(saved["comparisons"]) == {"kaiming"}
    assert saved["comparisons"]["kaiming"]["seeds"] == [3, 1]
    assert saved["chance"] == pytest.approx(0.1)
    markdown = (tmp_path / "cmp" / "compare.md").read_text()
    assert "| paper − kaiming | 2 |" in markdown
    assert summary["seeds"] == [3, 1]


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
