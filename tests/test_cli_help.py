"""The command line as a new user meets it: ``--version``, a description for every command,
every meaningful default shown, and the same default init as the library."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

import spikeinit
from spikeinit.cli import train as train_cli
from spikeinit.cli.links import DOCS_URL, link_docs_paths
from spikeinit.cli.main import build_parser
from spikeinit.experiments.training import PRESETS, TrainConfig
from spikeinit.init.model import DEFAULT_METHOD


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_version_prints_the_package_version() -> None:
    result = subprocess.run([sys.executable, "-m", "spikeinit.cli.main", "--version"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    assert result.stdout.strip() == f"spikeinit {spikeinit.__version__}"


def test_every_command_has_a_description_and_no_repository_path() -> None:
    parser = build_parser()
    for name, command in subcommands(parser).items():
        assert command.description, f"{name} has no description"
        text = command.format_help()
        assert "docs/" not in text.replace(f"{DOCS_URL}/", ""), f"{name} --help names docs/"


@pytest.mark.parametrize(("command", "option", "shown"), [
    ("compare", "--seeds", "(default: 0)"),
    ("compare", "--init", "(default: paper kaiming xavier pytorch)"),
    ("propagate", "--steps", "(default: 1)"),
    ("propagate", "--out", "(default: out)"),
    ("conditions", "--init", "(default: paper)"),
])
def test_defaults_are_shown(command: str, option: str, shown: str) -> None:
    parser = subcommands(build_parser())[command]
    action = next(a for a in parser._actions if option in a.option_strings)
    assert action.help.endswith(shown)


def test_train_defaults_to_the_library_init_and_the_paper_protocol_to_paper() -> None:
    parser = build_parser()
    assert TrainConfig().init == DEFAULT_METHOD == "trainable"

    def config(*options: str) -> TrainConfig:
        args = parser.parse_args(["train", *options])
        return train_cli._config(args, args.init, args.seed)

    assert config().init == DEFAULT_METHOD
    protocol = config("--preset", "paper-protocol")
    assert protocol.init == "paper" and protocol.encoding == "lif"
    assert config("--preset", "paper-protocol", "--init", "kaiming").init == "kaiming"
    assert config("--init", "paper").init == "paper"
    assert PRESETS["paper-protocol"]["init"] == "paper"


def test_methods_links_pages_instead_of_repository_paths(capsys) -> None:
    from spikeinit.cli.main import main

    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    assert "docs/" not in out.replace(f"{DOCS_URL}/", "")
    assert link_docs_paths("see docs/depth.md") == f"see {DOCS_URL}/depth.md"
