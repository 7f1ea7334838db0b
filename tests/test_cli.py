import json
import subprocess
import sys

import pytest

from spikeinit.cli import main as cli_main
from spikeinit.cli.main import main
from spikeinit.data.errors import DatasetError
from spikeinit.errors import BUG_REPORT_URL, InvalidArgumentError
from spikeinit.experiments.conditions import ConditionsConfig, run_conditions
from spikeinit.experiments.propagation import PropagationConfig, run_propagation, summary_rows
from spikeinit.init.registry import available_methods, get_method


def test_propagate_writes_json_and_png_of_the_in_process_result(tmp_path, capsys):
    code = main(["propagate", "--depth", "12", "--width", "100", "--batch", "8", "--steps", "2",
                 "--init", "paper", "kaiming", "--device", "cpu", "--out", str(tmp_path)])
    assert code == 0
    table = capsys.readouterr().out
    data = json.loads((tmp_path / "propagation.json").read_text())
    config = PropagationConfig(inits=("paper", "kaiming"), depth=12, width=100, batch=8,
                               steps=2, device="cpu")
    expected = json.loads(json.dumps(run_propagation(config)))  # the same JSON round trip
    assert data == expected
    # The table prints every row of summary_rows, the values of the same run.
    rows = summary_rows(expected)
    assert rows[0][:3] == ["init", "rate@1", "rate@10"] and "rate@12" in rows[0]
    printed = [line.split() for line in table.splitlines()]
    for row in rows[1:]:
        assert row in printed, (row, table)
    assert (tmp_path / "propagation.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "rate_by_step.png").read_bytes()[:4] == b"\x89PNG"  # steps > 1
    assert not list(tmp_path.glob(".*.tmp"))


def test_conditions_writes_the_in_process_grid(tmp_path, capsys):
    code = main(["conditions", "--widths", "20", "50", "--thresholds", "0.5", "1.0", "--depth",
                 "5", "--batch", "4", "--device", "cpu", "--out", str(tmp_path)])
    assert code == 0
    data = json.loads((tmp_path / "conditions.json").read_text())
    config = ConditionsConfig(widths=(20, 50), thresholds=(0.5, 1.0), depth=5, batch=4,
                              device="cpu")
    expected = json.loads(json.dumps(run_conditions(config)))
    assert data == expected
    out = capsys.readouterr().out
    for threshold, values in zip(("0.5", "1"), expected["relative_rate"]):
        line = next(line.split() for line in out.splitlines() if line.split()[:1] == [threshold])
        assert line[1:3] == [f"{value:.2f}" for value in values]
    assert (tmp_path / "conditions.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    "args, message",
    [(["propagate", "--depth", "0"], "depth must be an integer >= 1"),
     (["propagate", "--beta", "2"], "beta must lie in [0, 1]"),
     (["propagate", "--threshold", "-1"], "threshold must be a finite number >= 0"),
     (["propagate", "--init", "nope"], "init must be one of"),
     (["conditions", "--widths", "0"], "width must be an integer >= 1")],
)
def test_bad_input_is_one_line_and_exit_2(args, message, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "spikeinit.cli.main", *args, "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_methods_lists_registry(capsys):
    assert main(["methods"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == available_methods()
    for name, line in zip(available_methods(), lines):
        assert get_method(name)[0].summary in line
    for name in ("paper", "kaiming", "xavier", "lecun", "pytorch", "orthogonal", "fluctuation",
                 "gradient-aware"):
        assert name in available_methods()


@pytest.mark.parametrize("command", ["propagate", "conditions", "train", "compare", "sweep"])
def test_every_long_running_command_takes_no_progress(command: str) -> None:
    from spikeinit.cli.main import build_parser

    parser = build_parser()
    required = {"sweep": ["--task", "propagate"]}
    args = parser.parse_args([command, *required.get(command, []), "--no-progress"])
    assert args.no_progress is True


def test_an_internal_error_exits_1_with_a_bug_report_hint(monkeypatch, capsys) -> None:
    def broken(args):
        raise KeyError("a state spikeinit should never reach")

    monkeypatch.setitem(cli_main.COMMANDS, "methods", broken)
    assert cli_main.main(["methods"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == "spikeinit: internal error: KeyError: 'a state spikeinit should never reach'"
    assert "bug in spikeinit" in err[1] and BUG_REPORT_URL in err[1]
    assert "Traceback" not in "\n".join(err)


def test_an_internal_error_prints_its_traceback_on_request(monkeypatch, capsys) -> None:
    def broken(args):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setitem(cli_main.COMMANDS, "methods", broken)
    monkeypatch.setenv("SPIKEINIT_TRACEBACK", "1")
    assert cli_main.main(["methods"]) == 1
    assert "Traceback (most recent call last)" in capsys.readouterr().err


@pytest.mark.parametrize("error", [InvalidArgumentError("width must be >= 1, got 0"),
                                   DatasetError("mnist: file truncated")])
def test_a_user_error_exits_2_with_one_line(monkeypatch, capsys, error) -> None:
    def refused(args):
        raise error

    monkeypatch.setitem(cli_main.COMMANDS, "methods", refused)
    assert cli_main.main(["methods"]) == 2
    assert capsys.readouterr().err.strip() == f"spikeinit: error: {error}"
