"""Whether a decision is kept reads the structured ``measured`` field, never the display text."""

from __future__ import annotations

import json

import pytest
import torch

from spikeinit.engine import tuning


def _valid(entry: object) -> bool:
    return tuning.valid_entry(entry, "pick", ("a", "b"))


def _stored(section: str = "test") -> dict:
    return tuning.read_choices(tuning.machine_key(torch.get_num_threads())).get(section, {})


@pytest.mark.parametrize(("entry", "kept"), [
    ({"pick": "a", "source": "unmeasured (budget spent)", tuning.MEASURED: True}, True),
    ({"pick": "a", "source": "measured"}, False),  # the text says measured; the field does not
    ({"pick": "a", "source": "anything"}, False),
])
def test_a_budget_of_zero_keeps_only_measured_entries(tuning_sandbox, monkeypatch, entry, kept):
    monkeypatch.setattr(tuning, "_budget", tuning.Budget(0.0))
    choices = tuning.Choices("test", _valid)
    assert tuning.decide(choices, "class", lambda: dict(entry)) == entry
    assert ("class" in _stored()) is kept


def test_with_a_budget_every_entry_is_kept_and_the_field_is_stored(tuning_sandbox):
    choices = tuning.Choices("test", _valid)
    tuning.decide(choices, "timed", lambda: {"pick": "b", "source": "x", tuning.MEASURED: True})
    tuning.decide(choices, "default", lambda: {"pick": "a", "source": "y"})
    stored = _stored()
    assert stored["timed"] == {"pick": "b", "decided": "x", "measured": True}
    assert stored["default"] == {"pick": "a", "decided": "y"}
    again = tuning.Choices("test", _valid)  # another process reads the file
    assert tuning.is_measured(again.get("timed")) and not tuning.is_measured(again.get("default"))
    assert again.get("timed")["source"] == "cache"


def test_files_without_the_field_are_read_and_a_malformed_field_is_ignored(tuning_sandbox):
    key = tuning.machine_key(torch.get_num_threads())
    path = tuning.choices_path(key)
    sections = {"test": {"old": {"pick": "a", "decided": "measured"},
                         "bad": {"pick": "a", "decided": "measured", "measured": "yes"}}}
    path.write_text(json.dumps({"format": tuning.FORMAT, "machine": key, "choices": sections}))
    path.chmod(0o600)
    choices = tuning.Choices("test", _valid)
    assert choices.get("old") == {"pick": "a", "decided": "measured", "source": "cache"}
    assert choices.get("bad") is None
