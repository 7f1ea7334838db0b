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


def test_json_is_strict_non_finite_values_become_null(tmp_path):
    import json
    import math

    from spikeinit.io import write_json_atomic

    path = write_json_atomic(tmp_path / "r.json", {"rate": [0.1, math.nan], "gain": math.inf,
                                                   "nested": ({"x": -math.inf},)})
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"rate": [0.1, None], "gain": None, "nested": [{"x": None}]}


def test_atomic_files_get_the_umask_permissions_not_mkstemps(tmp_path) -> None:
    import os

    from spikeinit.io import write_text_atomic

    previous = os.umask(0o027)
    try:
        path = write_text_atomic(tmp_path / "result.txt", "x")
    finally:
        os.umask(previous)
    assert (path.stat().st_mode & 0o777) == 0o640
