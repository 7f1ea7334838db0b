"""Each check of spikeinit.cli.preflight refuses what it should, before any work."""

from __future__ import annotations

import argparse
import errno
import os
from pathlib import Path

import pytest
import torch

from spikeinit.cli import preflight as preflight_module
from spikeinit.cli.main import main
from spikeinit.cli.preflight import (
    check_output_file,
    check_output_folder,
    describe_os_error,
    preflight,
)
from spikeinit.errors import InvalidArgumentError


def _args(command: str = "propagate", **values: object) -> argparse.Namespace:
    return argparse.Namespace(command=command, **values)


def _unwritable(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    """``os.access`` says no for ``path`` (permission bits do not bind root, who runs CI)."""
    real = os.access
    monkeypatch.setattr(preflight_module.os, "access",
                        lambda p, mode: False if Path(p) == path else real(p, mode))


def test_cuda_is_refused_where_there_is_none(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InvalidArgumentError, match=r"--device cuda: no CUDA device"):
        preflight(_args(device="cuda"))
    preflight(_args(device="cpu"))  # the CPU is always there


def test_an_output_folder_is_made_when_missing(tmp_path):
    folder = tmp_path / "a" / "b"
    preflight(_args(out=folder))
    assert folder.is_dir()


def test_an_output_folder_that_is_a_file_is_refused(tmp_path):
    file = tmp_path / "taken"
    file.write_text("")
    with pytest.raises(InvalidArgumentError, match=r"--out .*taken: exists and is not a folder"):
        preflight(_args(out=file))


def test_an_output_folder_that_cannot_be_made_is_refused(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(InvalidArgumentError, match=r"--results .*: cannot create it"):
        preflight(_args(command="sweep", results=blocker / "below"))


def test_an_unwritable_output_folder_is_refused(tmp_path, monkeypatch):
    _unwritable(monkeypatch, tmp_path)
    with pytest.raises(InvalidArgumentError, match="not writable by this user"):
        check_output_folder(tmp_path, "--out")


def test_aggregate_reads_its_results_folder_and_is_not_refused(tmp_path):
    file = tmp_path / "results"
    file.write_text("")  # as an output folder this would be refused
    preflight(_args(command="aggregate", results=file))
    with pytest.raises(InvalidArgumentError, match="--results"):
        preflight(_args(command="sweep", results=file))


def test_an_output_file_that_is_a_folder_is_refused(tmp_path):
    with pytest.raises(InvalidArgumentError, match=r"--json .*: is a folder; give a file name"):
        preflight(_args(command="inspect", json=tmp_path))


def test_an_output_file_gets_its_folder_made(tmp_path):
    target = tmp_path / "new" / "report.csv"
    preflight(_args(command="inspect", csv=target))
    assert target.parent.is_dir() and not target.exists()


def test_an_output_file_in_a_folder_that_cannot_be_made_is_refused(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(InvalidArgumentError, match=r"--csv folder .*: exists and is not a folder"):
        check_output_file(blocker / "report.csv", "--csv")


def test_an_unwritable_existing_output_file_is_refused(tmp_path, monkeypatch):
    target = tmp_path / "report.json"
    target.write_text("{}")
    _unwritable(monkeypatch, target)
    with pytest.raises(InvalidArgumentError, match=r"--json .*report.json: not writable"):
        check_output_file(target, "--json")


def test_arguments_that_are_not_paths_are_not_checked():
    preflight(_args(out=None, csv=None, json="not a Path"))


def test_the_cli_refuses_before_computing(tmp_path, monkeypatch, capsys):
    file = tmp_path / "taken"
    file.write_text("")
    from spikeinit.cli import main as cli_main

    monkeypatch.setitem(cli_main.COMMANDS, "propagate",
                        lambda args: pytest.fail("ran despite the refused --out"))
    assert main(["propagate", "--out", str(file)]) == 2
    assert "exists and is not a folder" in capsys.readouterr().err


@pytest.mark.parametrize(("number", "expected"), [
    (errno.ENOSPC, "no space left on the device while writing /data/x.json; free some space"),
    (errno.EDQUOT, "disk quota exceeded while writing /data/x.json"),
    (errno.EACCES, "Permission denied: /data/x.json"),
])
def test_os_errors_are_described_in_one_line(number, expected):
    error = OSError(number, os.strerror(number), "/data/x.json")
    assert describe_os_error(error).startswith(expected)


def test_an_os_error_without_a_file_names_only_the_reason():
    assert describe_os_error(OSError(errno.EIO, "Input/output error")) == "Input/output error"
    assert describe_os_error(OSError()) == "OSError"
