"""``spikeinit sweep``: keys, skip of finished runs, failures, kill-and-resume, Ray, aggregate."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from spikeinit.cli.main import main
from spikeinit.sweep import build_spec, expand, make_run, run_key, run_sweep, store
from spikeinit.sweep.aggregate import aggregate, collect_rows

TINY = {"depth": 3, "width": 20, "batch": 8}


def _results(folder: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in store.result_files(folder)}


def test_key_is_stable_and_canonical() -> None:
    a = make_run("propagate", {"init": "paper", "beta": 0, "depth": 3})
    b = make_run("propagate", {"inits": ["paper"], "beta": 0.0, "depth": 3, "width": 1000,
                               "seed": 0})
    assert a.key == b.key
    assert a.key == run_key("propagate", json.loads(json.dumps(a.config)))
    assert a.key.startswith("propagate-") and len(a.key) == len("propagate-") + 16
    assert make_run("propagate", {"init": "paper", "beta": 0.25, "depth": 3}).key != a.key
    # the same values under another task give another key
    assert run_key("conditions", a.config) != a.key


def test_expand_and_spec_file(tmp_path: Path) -> None:
    runs = expand("propagate", {"threshold": [0.5, 1.0], "init": ["paper", "kaiming"]}, TINY)
    assert len(runs) == 4 and len({r.key for r in runs}) == 4
    spec_file = tmp_path / "grid.toml"
    spec_file.write_text('task = "propagate"\n[base]\ndepth = 3\nwidth = 20\nbatch = 8\n'
                         '[grid]\nthreshold = [0.5, 1.0]\ninit = ["paper", "kaiming"]\n')
    from_file = build_spec(None, spec_file).runs()
    from_cli = build_spec("propagate", None, ["threshold=0.5,1.0", "init=paper,kaiming"],
                          ["depth=3", "width=20", "batch=8"]).runs()
    assert [r.key for r in from_file] == [r.key for r in from_cli] == [r.key for r in runs]


@pytest.mark.parametrize(("grid", "message"), [
    ({"nope": [1]}, "unknown propagate parameter 'nope'"),
    ({"beta": [2.0]}, "beta must lie in"),
    ({"threshold": []}, "must list at least one value"),
])
def test_bad_grids_raise_value_error(grid: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        expand("propagate", grid, TINY)


def test_bad_options_raise_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="task must be one of"):
        expand("fly", {}, {})
    with pytest.raises(ValueError, match="backend must be one of"):
        run_sweep([], tmp_path, backend="slurm")
    with pytest.raises(ValueError, match="--grid expects key=value"):
        build_spec("propagate", None, ["threshold"])
    bad = tmp_path / "grid.ini"
    bad.write_text("")
    with pytest.raises(ValueError, match="must end in .toml"):
        build_spec(None, bad)


def test_cli_bad_input_is_one_line_exit_2(tmp_path: Path, capsys) -> None:
    assert main(["sweep", "--grid", "colour=1", "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown propagate parameter 'colour'" in err[0]


def test_rerun_skips_finished_runs_and_aggregates(tmp_path: Path) -> None:
    runs = expand("propagate", {"threshold": [0.5, 1.0], "beta": [0.0, 0.5],
                                "init": ["paper", "kaiming"]}, TINY)
    results = tmp_path / "results"
    first = run_sweep(runs[:5], results, progress=False)
    assert first.done == 5 and first.skipped_done == 0
    before = {p.name: p.stat().st_mtime_ns for p in store.result_files(results)}
    planned: list = []
    second = run_sweep(runs, results, progress=False, on_plan=planned.extend)
    assert second.skipped_done == 5 and second.done == 3
    assert [r.key for r in planned] == [r.key for r in runs[5:]]
    assert {p.name: p.stat().st_mtime_ns for p in store.result_files(results)
            if p.name in before} == before
    records = _results(results)
    assert set(records) == {r.key for r in runs}
    record = records[runs[0].key]
    assert record["status"] == "done" and record["config"] == runs[0].config
    assert record["timing"]["seconds"] >= 0
    assert set(record["result"]) == set(runs[0].config["inits"])
    written = aggregate(results, tmp_path / "agg")
    assert written["rows"] == 8
    assert (tmp_path / "agg" / "results.csv").read_text().count("\n") == 9
    assert all(Path(f).stat().st_size > 0 for f in written["figures"])
    assert {row["init"] for row in collect_rows(results)} == {"paper", "kaiming"}


def test_aggregate_reports_missing_failed_and_foreign_files(tmp_path: Path, capsys) -> None:
    runs = expand("propagate", {"threshold": [0.5, 1.0, 1.5]}, {**TINY, "init": "paper"})
    results = tmp_path / "results"
    run_sweep(runs, results, progress=False)
    store.done_path(results, runs[0].key).unlink()  # as if it never finished
    record = store.read_record(store.done_path(results, runs[1].key))
    store.done_path(results, runs[1].key).unlink()
    store.write_failed(results, {**record, "status": "failed", "error": "boom"})
    (results / "notes.json").write_text('{"status": "done", "hello": 1}')  # foreign JSON
    written = aggregate(results, tmp_path / "agg")
    assert written["done"] == 1 and written["missing"] == [runs[0].key]
    assert written["failed"] == [runs[1].key] and written["unreadable"] == ["notes.json"]
    assert main(["aggregate", str(results), "--out", str(tmp_path / "agg2")]) == 0
    assert "1 of 3 configurations have results" in capsys.readouterr().err
    assert main(["aggregate", str(results), "--strict", "--out", str(tmp_path / "agg3")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--strict: 1 of 3 configurations" in err[0]
    assert f"missing: {runs[0].key}" in err[0] and "unreadable: notes.json" in err[0]
    assert not (tmp_path / "agg3" / "results.csv").exists()


def test_failures_are_recorded_and_skipped(tmp_path: Path) -> None:
    results = tmp_path / "results"
    runs = expand("propagate", {"threshold": [0.5, 1.0]}, {**TINY, "init": "paper"})
    # a run whose configuration is valid but fails when executed: an unknown init option
    bad = make_run("propagate", {**TINY, "init": "paper", "init_options": {"bogus": 1}})
    summary = run_sweep([*runs, bad], results, progress=False)
    assert summary.done == 2 and summary.failed == 1 and summary.failures == [bad.key]
    failed = json.loads(store.failed_path(results, bad.key).read_text())
    assert failed["status"] == "failed" and "bogus" in failed["error"]
    assert "Traceback" in failed["traceback"] and failed["config"] == bad.config
    again = run_sweep([*runs, bad], results, progress=False)
    assert (again.skipped_done, again.skipped_failed, again.done, again.failed) == (2, 1, 0, 0)
    retried = run_sweep([*runs, bad], results, progress=False, retry_failed=True)
    assert (retried.skipped_done, retried.failed) == (2, 1)
    # once a run succeeds, its stale failure record is removed
    store.write_done(results, {**failed, "status": "done", "result": {}})
    assert store.is_done(results, bad.key) and not store.is_failed(results, bad.key)


def test_retry_failed_via_cli(tmp_path: Path) -> None:
    results = tmp_path / "results"
    bad_set = ["depth=3", "width=20", "batch=8", "init=paper"]
    args = ["sweep", "--grid", "threshold=0.5", "--set", 'init_options={"bogus": 1}',
            *[x for s in bad_set for x in ("--set", s)], "--results", str(results),
            "--no-progress"]
    assert main(args) == 1
    (failed,) = results.glob("*.failed.json")
    key = failed.name.removesuffix(".failed.json")
    events = [e["event"] for e in store.read_events(results) if e["key"] == key]
    assert events == ["start", "failed"]
    assert main(args) == 0  # skipped, not retried
    assert [e["event"] for e in store.read_events(results)].count("start") == 1
    assert main([*args, "--retry-failed"]) == 1  # retried (and fails again)
    assert [e["event"] for e in store.read_events(results)].count("start") == 2


KILL_GRID = ["--grid", "threshold=0.25,0.5,0.75,1.0,1.25,1.5", "--grid", "beta=0,0.5,0.9",
             "--set", "init=paper", "--set", "depth=30", "--set", "width=300",
             "--set", "batch=32", "--set", "steps=10"]


def test_killed_sweep_resumes_without_losing_or_repeating_runs(tmp_path: Path) -> None:
    """Acceptance: SIGKILL the runner part-way, restart, check the three properties."""
    results = tmp_path / "results"
    command = [sys.executable, "-m", "spikeinit.cli.main", "sweep", *KILL_GRID,
               "--results", str(results), "--workers", "2", "--no-progress"]
    keys = {r.key for r in build_spec("propagate", None, KILL_GRID[1::2][:2],
                                      KILL_GRID[5::2]).runs()}
    assert len(keys) == 18
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while len(store.result_files(results)) < 3:
        assert process.poll() is None, process.stderr.read().decode()
        assert time.time() < deadline, "the sweep made no progress"
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    time.sleep(0.5)  # let the workers notice (they die with the runner)
    finished_before = {p.stem: (p.stat().st_ino, p.stat().st_mtime_ns)
                       for p in store.result_files(results)}
    assert 3 <= len(finished_before) < len(keys), "kill should land part-way"
    time.sleep(0.5)
    # no orphan worker kept running: nothing new appeared after the kill
    assert set(p.stem for p in store.result_files(results)) == set(finished_before)

    restart = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert restart.returncode == 0, restart.stderr
    assert f"{len(finished_before)} already done" in restart.stdout

    # 1. every configuration has exactly one result
    records = _results(results)
    assert set(records) == keys
    assert not list(results.glob("*.failed.json"))
    # 2. no finished run was executed twice
    starts = Counter(e["key"] for e in store.read_events(results) if e["event"] == "start")
    dones = Counter(e["key"] for e in store.read_events(results) if e["event"] == "done")
    for key, (inode, mtime) in finished_before.items():
        assert starts[key] == 1, key
        path = store.done_path(results, key)
        assert (path.stat().st_ino, path.stat().st_mtime_ns) == (inode, mtime)
    assert all(count == 1 for count in dones.values())
    # 3. no result file is partial; no temporary file is left
    for key, record in records.items():
        assert record["status"] == "done" and record["key"] == key
        assert len(record["result"]["paper"]["rate"]) == 30
    assert not list(results.glob(".*.tmp"))


def test_a_killed_worker_costs_no_result_and_blames_no_innocent_run(tmp_path: Path) -> None:
    """Acceptance: SIGKILL one worker process (as the OOM killer would); the runner survives,
    the killed run and its neighbour in flight run again, and nothing is marked failed."""
    results = tmp_path / "results"
    grid = ["--grid", "threshold=0.5,1.0", "--grid", "beta=0.5,0.9", *KILL_GRID[4:8],
            "--set", "width=600", "--set", "batch=32", "--set", "steps=10"]
    command = [sys.executable, "-m", "spikeinit.cli.main", "sweep", *grid,
               "--results", str(results), "--workers", "2", "--no-progress"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    deadline = time.time() + 60
    running: list[dict] = []
    while len(running) < 2:  # both workers busy: a run is in flight on each
        assert process.poll() is None, process.stderr.read()
        assert time.time() < deadline, "the sweep started no runs"
        events = store.read_events(results)
        finished = {e["key"] for e in events if e["event"] in ("done", "failed")}
        running = [e for e in events if e["event"] == "start" and e["key"] not in finished]
        time.sleep(0.01)
    victim = running[-1]  # the newest run in flight: the longest left to go
    os.kill(victim["pid"], signal.SIGKILL)
    out, err = process.communicate(timeout=180)
    assert process.returncode == 0, err
    assert "Traceback" not in err
    records = _results(results)
    assert len(records) == 4 and all(r["status"] == "done" for r in records.values())
    assert not list(results.glob("*.failed.json"))
    died = [e["key"] for e in store.read_events(results) if e["event"] == "worker-died"]
    assert victim["key"] in died
    dones = Counter(e["key"] for e in store.read_events(results) if e["event"] == "done")
    assert set(dones) == set(records) and all(count == 1 for count in dones.values())


def test_ray_backend_matches_local(tmp_path: Path) -> None:
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'spikeinit[ray]')")
    runs = expand("propagate", {"threshold": [0.5, 1.0], "seed": [0, 1]},
                  {**TINY, "init": "paper", "steps": 3})
    local = run_sweep(runs, tmp_path / "local", workers=2, threads=1, progress=False)
    assert local.done == 4
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        remote = run_sweep(runs, tmp_path / "ray", backend="ray", cpus_per_task=1,
                           progress=False)
    finally:
        ray.shutdown()
    assert remote.done == 4
    a, b = _results(tmp_path / "local"), _results(tmp_path / "ray")
    assert set(a) == set(b) == {r.key for r in runs}
    for key in a:
        assert a[key]["result"] == b[key]["result"]
        assert a[key]["config"] == b[key]["config"]


def test_yaml_spec_and_conditions_and_train_tasks(tmp_path: Path) -> None:
    spec_file = tmp_path / "grid.yaml"
    spec_file.write_text("task: conditions\nbase: {depth: 3, batch: 8}\n"
                         "grid: {width: [10, 20], threshold: [0.5, 1.0]}\n")
    try:
        spec = build_spec(None, spec_file)
    except ValueError as error:  # PyYAML missing: the error says so
        assert "PyYAML" in str(error)
        spec = build_spec("conditions", None, ["width=10,20", "threshold=0.5,1.0"],
                          ["depth=3", "batch=8"])
    runs = spec.runs()
    assert len(runs) == 4 and runs[0].config["widths"] == [10]
    results = tmp_path / "conditions"
    assert run_sweep(runs, results, progress=False).done == 4
    rows = collect_rows(results)
    assert {(r["width"], r["threshold"]) for r in rows} == {(10, 0.5), (10, 1.0), (20, 0.5),
                                                            (20, 1.0)}
    assert aggregate(results, tmp_path / "agg")["figures"]

    from tests.test_training import write_fake_mnist

    data = write_fake_mnist(tmp_path / "data", n_train=64, n_test=32)
    train_runs = expand("train", {"init": ["paper", "kaiming"]},
                        {"data_dir": str(data), "depth": 2, "width": 16, "epochs": 1,
                         "steps": 2, "batch": 32, "stats_samples": 32})
    train_results = tmp_path / "train"
    summary = run_sweep(train_runs, train_results, progress=False)
    assert summary.done == 2, summary.failures
    table = collect_rows(train_results)
    assert all(0.0 <= row["test_accuracy"] <= 1.0 for row in table)
    # the configured rate stays "lr" (a sweep axis); the cosine's last value is "lr_now"
    assert all(row["lr"] == train_runs[0].config["lr"] > 0.0 for row in table)
    assert all(0.0 <= row["lr_now"] < row["lr"] for row in table)


# ---- kill -9 of the runner at five points: no orphan, the same results as an undisturbed run ---

FIVE_POINT_GRID = ["--grid", "threshold=0.5,0.75,1.0,1.25", "--grid", "beta=0.5,0.9",
                   "--set", "init=paper", "--set", "depth=20", "--set", "width=200",
                   "--set", "batch=16", "--set", "steps=5"]


def _descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (read from /proc: Linux only)."""
    found: set[int] = set()
    stack = [pid]
    while stack:
        parent = stack.pop()
        for children in Path(f"/proc/{parent}/task").glob("*/children"):
            try:
                pids = {int(p) for p in children.read_text().split()}
            except OSError:
                continue
            stack.extend(pids - found)
            found |= pids
    return found


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _started(results: Path) -> int:
    return sum(e["event"] == "start" for e in store.read_events(results))


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux's /proc")
def test_kill_9_of_the_runner_at_five_points_leaves_no_worker_and_loses_nothing(
        tmp_path: Path) -> None:
    """Acceptance: SIGKILL the runner at five points of one sweep (as its workers start, with a
    run in flight, and after one, two and three results); 2 s later none of its processes
    lives; a restart then gives the results of an undisturbed sweep, key for key."""
    def command(results: Path) -> list[str]:
        return [sys.executable, "-m", "spikeinit.cli.main", "sweep", *FIVE_POINT_GRID,
                "--results", str(results), "--workers", "2", "--no-progress"]

    undisturbed = tmp_path / "undisturbed"
    subprocess.run(command(undisturbed), check=True, capture_output=True, timeout=300)
    expected = {key: record["result"] for key, record in _results(undisturbed).items()}
    assert len(expected) == 8

    results = tmp_path / "killed"
    points = [lambda: (results / "sweep.json").exists(),  # the lock is taken, workers start
              lambda: _started(results) >= 1,  # a run in flight
              lambda: len(store.result_files(results)) >= 1,
              lambda: len(store.result_files(results)) >= 2,
              lambda: len(store.result_files(results)) >= 3]
    for point in points:
        process = subprocess.Popen(command(results), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE)
        deadline = time.time() + 120
        children: set[int] = set()
        while not point():
            assert process.poll() is None, process.stderr.read().decode()
            assert time.time() < deadline, "the sweep made no progress"
            children |= _descendants(process.pid)
            time.sleep(0.01)
        children |= _descendants(process.pid)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        process.stderr.close()
        time.sleep(2.0)
        orphans = [pid for pid in children if _alive(pid)]
        for pid in orphans:  # clean up before failing
            os.kill(pid, signal.SIGKILL)
        assert not orphans, f"workers alive 2 s after the runner was killed: {orphans}"
    assert len(store.result_files(results)) < len(expected), "the kills should land part-way"

    restart = subprocess.run(command(results), capture_output=True, text=True, timeout=300)
    assert restart.returncode == 0, restart.stderr
    records = _results(results)
    assert {key: record["result"] for key, record in records.items()} == expected
    assert not list(results.glob("*.failed.json")) and not list(results.glob(".*.tmp"))
    dones = Counter(e["key"] for e in store.read_events(results) if e["event"] == "done")
    assert all(count == 1 for count in dones.values())  # no run finished twice


def test_a_second_runner_on_one_results_folder_is_refused(tmp_path: Path) -> None:
    results = tmp_path / "results"
    with store.sweep_lock(results), pytest.raises(ValueError, match="another sweep runner"):
        run_sweep(expand("propagate", {"seed": [0, 1]}, TINY), results, progress=False)
    assert not store.result_files(results)
