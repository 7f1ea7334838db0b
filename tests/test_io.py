import json

import pytest

from spikeinit.io import write_atomic, write_json_atomic


def test_json_roundtrip(tmp_path):
    path = write_json_atomic(tmp_path / "a" / "b.json", {"x": [1, 2]})
    assert json.loads(path.read_text()) == {"x": [1, 2]}


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "r.json"
    write_json_atomic(path, {"old": True})

    def explode(tmp):
        tmp.write_text("partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_atomic(path, explode)
    assert json.loads(path.read_text()) == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]
