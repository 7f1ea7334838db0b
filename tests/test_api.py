"""One API style: one name for the data sample, keyword-only options, and the same output
methods on what initialize, calibrate and report return."""

from __future__ import annotations

import csv
import io

import pytest
import torch

import spikeinit
from spikeinit.models import deep_network


@pytest.fixture
def net_and_sample() -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    return deep_network(30, 3), torch.rand(3, 8, 30)


def test_initialize_calibrate_report_share_table_print_to_csv(net_and_sample, tmp_path,
                                                              capsys) -> None:
    net, x = net_and_sample
    results = [spikeinit.initialize(net, sample=x), spikeinit.calibrate(net, x, target=0.2),
               spikeinit.report(net, x)]
    records = results[0]  # the records: in .layers, like calibrate's and report's rows
    assert len(records) == len(records.layers) == 2 and list(records) == list(records.layers)
    assert records[0] is records.layers[0] and records[-1].name == records.layers[1].name
    for index, result in enumerate(results):
        table = result.table()
        assert table.splitlines()[1].startswith("-")
        result.print()
        assert capsys.readouterr().out.strip() == table.strip()
        path = tmp_path / f"result-{index}.csv"
        text = result.to_csv(path)
        assert path.read_text() == text
        rows = list(csv.DictReader(io.StringIO(text)))
        assert len(rows) == len(result.as_dicts()) >= 2


def test_sample_is_the_one_name_and_batch_is_deprecated(net_and_sample) -> None:
    net, x = net_and_sample
    with pytest.warns(DeprecationWarning, match=r"report\(sample=...\)"):
        old = spikeinit.report(net, batch=x)
    assert [row.measured_rate for row in old.layers] == [
        row.measured_rate for row in spikeinit.report(net, sample=x).layers]
    with pytest.warns(DeprecationWarning, match="calibrate"):
        spikeinit.calibrate(net, batch=x, target=0.2)
    with pytest.raises(ValueError, match="sample is required"):
        spikeinit.report(net)
    with pytest.raises(ValueError, match="sample= only"):
        spikeinit.calibrate(net, x, batch=x)


def test_options_are_keyword_only(net_and_sample) -> None:
    net, x = net_and_sample
    with pytest.raises(TypeError):
        spikeinit.initialize(net, "paper", 1.0)  # threshold must be named
    with pytest.raises(TypeError):
        spikeinit.calibrate(net, x, 0.2)  # target must be named
    with pytest.raises(TypeError):
        spikeinit.report(net, x, None)  # forward must be named


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_samples_are_refused_by_initialize_calibrate_and_report(bad: float) -> None:
    net = deep_network(16, 3)
    sample = torch.rand(3, 4, 16)
    sample[1, 2, 3] = bad
    for call in (lambda: spikeinit.initialize(net, sample=sample),
                 lambda: spikeinit.calibrate(net, sample),
                 lambda: spikeinit.report(net, sample)):
        with pytest.raises(ValueError, match=r"sample: 1 of its 192 values are NaN or infinite"):
            call()
