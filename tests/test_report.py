"""spikeinit.report: per-layer health (table, dict, CSV), its flags, and `spikeinit inspect`."""

from __future__ import annotations

import csv
import io
import json
import math
import subprocess
import sys

import pytest
import torch
from torch import nn

import spikeinit
from spikeinit.cli.main import main
from spikeinit.health import FLAGS
from spikeinit.models import SpikingMLP, deep_network
from spikeinit.neurons import LIF
from spikeinit.theory import tail_probability


def test_default_init_is_flagged_dead_and_paper_init_is_predicted() -> None:
    net = deep_network(200, 8)
    x = torch.rand(5, 32, 200)
    health = spikeinit.report(net, x)
    assert [row.neuron for row in health.layers][0] == "input_neurons"
    assert health.layers[0].fan_in is None and health.layers[0].predicted_rate is None
    assert health.dead[-1] == "blocks.6.1" and not health.healthy
    row = health.layers[2]
    assert (row.layer, row.fan_in, row.threshold, row.beta) == ("blocks.1.0", 200, 1.0, 0.5)
    assert row.weight_std == pytest.approx(1 / math.sqrt(3 * 200), rel=0.05)

    spikeinit.initialize(net, "paper", sample=x)
    health = spikeinit.report(net, x)
    assert health.healthy and health.flagged() == []
    first = health.layers[1]  # the init's target: N(0, 1) currents, for i.i.d. weights; the
    # prediction uses the drawn weights' row sums (the input's mean enters through them)
    assert first.predicted_variance == pytest.approx(1.0, rel=0.1)
    assert first.predicted_variance == pytest.approx(first.measured_variance, rel=0.05)
    # over the 5 steps the membrane integrates: not Q(1) = 0.159 (the rate of step 1 only)
    assert first.predicted_rate == pytest.approx(first.measured_rate, rel=0.15)
    assert abs(first.predicted_rate / float(tail_probability(1.0)) - 1) > 0.15
    for row in health.layers[1:]:  # the prediction from what each layer really receives
        assert row.predicted_variance == pytest.approx(row.measured_variance, rel=0.15)
        assert 0.8 < row.measured_rate / row.predicted_rate < 1.25


def test_saturated_and_exploding_flags() -> None:
    net = nn.Sequential(nn.Linear(20, 30, bias=False), LIF(), nn.Linear(30, 30, bias=False),
                        LIF())
    with torch.no_grad():
        net[0].weight.fill_(1.0)
        net[2].weight.fill_(50.0)
    health = spikeinit.report(net, torch.ones(3, 4, 20))
    assert health.saturated == ["1", "3"]
    assert health.exploding == ["1", "3"]
    assert set(health.layers[0].flags) == {"saturated", "exploding"}


def test_exports_dict_csv_and_table(tmp_path) -> None:
    health = spikeinit.report(SpikingMLP([30, 20, 10]), torch.rand(3, 4, 30))
    rows = health.as_dicts()
    assert rows[0]["neuron"] == "input_neurons" and rows[0]["fan_in"] is None
    assert set(rows[0]) >= {"fan_in", "threshold", "beta", "weight_std", "predicted_rate",
                            "measured_rate", "predicted_variance", "measured_variance", "flags"}
    json.dumps(rows)  # plain data
    text = health.to_csv(tmp_path / "health.csv")
    assert (tmp_path / "health.csv").read_text() == text
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert [row["neuron"] for row in parsed] == [row["neuron"] for row in rows]
    table = health.table()
    assert "rate pred" in table and "blocks.1.1" in table
    with pytest.raises(ValueError, match="flag must be one of"):
        health.flagged("sleepy")
    assert set(FLAGS) == {"dead", "saturated", "exploding", "not-understood"}


@pytest.mark.parametrize("kwargs, message", [
    (dict(dead=0.0), r"dead must lie in \(0, 1\)"),
    (dict(saturated=1.0), r"saturated must lie in \(0, 1\)"),
    (dict(dead=0.5, saturated=0.4), "dead must be below saturated"),
    (dict(exploding=0.0), "exploding must be a finite number > 0"),
])
def test_bad_thresholds_raise(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        spikeinit.report(deep_network(10, 2), torch.rand(2, 2, 10), **kwargs)


def test_inspect_cli_reports_before_and_after(tmp_path, capsys) -> None:
    assert main(["inspect", "--width", "60", "--depth", "8", "--batch", "8"]) == 0
    out = capsys.readouterr().out
    assert "dead: blocks." in out and "rate pred" in out
    code = main(["inspect", "--model", "mlp", "--sizes", "40", "60", "60", "10", "--init",
                 "paper", "--calibrate", "--batch", "8", "--csv", str(tmp_path / "r.csv"),
                 "--json", str(tmp_path / "r.json")])
    assert code == 0
    out = capsys.readouterr().out
    assert "dead: none; saturated: none; exploding: none" in out and "forward passes" in out
    rows = json.loads((tmp_path / "r.json").read_text())
    assert [row["neuron"] for row in rows] == ["input_neurons", "blocks.0.1", "blocks.1.1",
                                               "blocks.2.1"]
    assert (tmp_path / "r.csv").read_text().startswith("neuron,layer,")


def test_inspect_bad_input_is_one_line_and_exit_2() -> None:
    result = subprocess.run([sys.executable, "-m", "spikeinit.cli.main", "inspect", "--steps",
                             "0"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip() == "spikeinit: error: steps must be an integer >= 1, got 0"


def test_report_does_not_depend_on_earlier_calls_in_the_process() -> None:
    """The same weights and sample give the same report, whether or not initialize drew them
    in this process: what initialize chose is shown only when its result is passed."""
    torch.manual_seed(0)
    x = torch.rand(4, 8, 40)
    net = deep_network(40, 4)
    drawn = spikeinit.initialize(net, "stable", sample=x)
    twin = deep_network(40, 4)  # never initialized: the same weights, copied
    twin.load_state_dict(net.state_dict())
    after_initialize, copied = spikeinit.report(net, x), spikeinit.report(twin, x)
    assert after_initialize.table() == copied.table()
    assert after_initialize.as_dicts() == copied.as_dicts()
    assert all(row.init_sigma is None for row in after_initialize.layers)

    given, given_twin = spikeinit.report(net, x, init=drawn), spikeinit.report(twin, x, init=drawn)
    assert given.table() == given_twin.table() != after_initialize.table()
    driven = [row for row in given.layers if row.layer is not None]
    assert [row.init_sigma for row in driven] == [record.sigma for record in drawn]
    assert all(row.init_sigma_auto for row in driven) and "1.78*" in given.table()


def test_initialize_table_writes_each_layers_notes_as_text_under_it() -> None:
    net = nn.Sequential(nn.Linear(20, 30), nn.MaxPool1d(2), LIF(), nn.Linear(15, 30), LIF())
    with pytest.warns(UserWarning, match="not modelled"):
        result = spikeinit.initialize(net, sample=torch.rand(5, 4, 20),
                                      generator=torch.Generator().manual_seed(0))
    lines = result.table().splitlines()
    header = lines[0].split()
    assert header[0] == "layer" and header[-1] == "notes" and "sigma" not in header
    first_row = lines[2]
    cited = first_row[lines[0].index("notes"):].strip().split(", ")
    assert [int(number) for number in cited] == list(range(1, len(result[0].notes) + 1))
    written = [line for line in lines if line.startswith("note: [")]
    assert written[0] == f"note: [1] {result[0].notes[0]}"
    assert "max-pool" in written[0] and "not modelled" in written[0]
