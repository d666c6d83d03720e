"""Provenance and determinism: every run says how it was made, and the same
command gives the same numbers (tiny runs on a synthetic netCDF file)."""

import hashlib
import json
import os
import shutil
import subprocess
import warnings

import jax
import numpy as np
import pytest
import xarray as xr
from conftest import assert_same_checkpoints

from stconv import cli
from stconv.data.pipeline import epoch_batches
from stconv.data.registry import EMBEDDED_FILE, data_files, load_dataset
from stconv.data.synthetic import write_synthetic_netcdf
from stconv.runs import provenance
from stconv.runs.forecaster import Forecaster

TINY = [
    "--num-layers", "1", "--hidden-dim", "2", "--kernel-size", "3", "--batch-size", "16",
    "--forecast-samples", "1", "--no-maps", "--epochs", "2", "--dropout", "0.2",
]  # fmt: skip


def train(workdir, data, *extra) -> int:
    return cli.main(["train", "--workdir", str(workdir), "--dataset", str(data), *TINY, *extra])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One synthetic file and two runs of the same command on it (``a``, ``b``)."""
    root = tmp_path_factory.mktemp("provenance")
    write_synthetic_netcdf(root / "data.nc", 200, 16, 16, seed=5, variable="synthetic_0")
    for name in ("a", "b"):
        assert train(root / name, root / "data.nc") == 0
    return root


def record(workdir) -> dict:
    return json.loads((workdir / "provenance.json").read_text())


def forecasts(workdir) -> np.ndarray:
    with xr.open_dataset(workdir / "test_forecasts.nc") as data:
        return data["synthetic_0"].values


def metrics_rows(workdir) -> list[dict]:
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


# The record.


def test_a_run_records_its_data_code_software_machine_and_time(runs):
    made = record(runs / "a")
    assert made["config"]["data"]["dataset"] == str(runs / "data.nc") and made["seeds"] == [1000]
    (item,) = made["inputs"]
    data = (runs / "data.nc").read_bytes()
    assert item["path"] == os.path.realpath(runs / "data.nc")
    assert item["sha256"] == hashlib.sha256(data).hexdigest() and item["bytes"] == len(data)
    assert made["data"]["variables"] == ["synthetic_0"] and made["data"]["units"] == ["K"]
    assert made["data"]["targets"] == ["synthetic_0"]
    assert made["data"]["grid"]["shape"] == [16, 16]
    assert made["data"]["init_times"]["train"][0].startswith("2000-01-05")  # 5th daily step
    (session,) = made["sessions"]
    assert session["kind"] == "train" and session["finished"] >= session["started"]
    assert session["command"].startswith(f"stconv train --workdir {runs / 'a'} --dataset")
    assert session["software"]["jax"] == jax.__version__
    assert session["software"]["numpy"] == np.__version__
    assert session["stconv"]["version"] == "0.1.0"
    assert session["machine"]["device_count"] == len(jax.devices())
    assert session["machine"]["backend"] == "cpu"
    assert set(session["phases_s"]) == {
        "data_loading", "compile", "training", "evaluation", "writing"
    }  # fmt: skip
    assert all(seconds > 0 for seconds in session["phases_s"].values())
    assert session["peak_memory_bytes"] > 100 * 2**20 and session["changes"] == []


def test_info_prints_the_record(runs, capsys):
    assert cli.main(["info", str(runs / "a")]) == 0
    out = capsys.readouterr().out
    sha = record(runs / "a")["inputs"][0]["sha256"]
    fragments = (sha, "variables synthetic_0 (K), forecasting ['synthetic_0']", "grid 16x16")
    fragments += (f"jax {jax.__version__}", "compile", "peak memory", "seeds: [1000]")
    for fragment in (*fragments, "hidden_dim=2", "  train: forecasts initialised 2000-01-05 to"):
        assert fragment in out, fragment
    assert cli.main(["info", str(runs / "data.nc")]) == 2
    assert "holds no stconv run" in capsys.readouterr().err
    assert cli.main(["info", "--workdir", str(runs / "a")]) == 0  # as the other commands
    assert capsys.readouterr().out == out
    for argv in (["info"], ["info", str(runs / "a"), "--workdir", str(runs / "b")]):
        assert cli.main(argv) == 2
        assert capsys.readouterr().err == (
            "stconv info: error: give one folder of a run: `stconv info RUN` or "
            "`stconv info --workdir RUN`\n"
        )


def test_info_of_a_run_without_a_record(runs, tmp_path, capsys):
    old = tmp_path / "old"
    shutil.copytree(runs / "a", old)
    os.remove(old / "provenance.json")
    assert cli.main(["info", str(old)]) == 2
    assert "has no provenance.json: it was made before" in capsys.readouterr().err
    assert Forecaster.load(old).origin is None  # older runs still load


# Determinism.


def test_the_same_command_gives_bit_identical_runs(runs):
    a, b = runs / "a", runs / "b"
    assert (a / "results.json").read_text() == (b / "results.json").read_text()
    assert np.array_equal(forecasts(a), forecasts(b), equal_nan=True)
    assert metrics_rows(a) == metrics_rows(b)
    assert_same_checkpoints(a, b)


def test_reader_threads_do_not_change_the_batches():
    source = load_dataset("synthetic", synthetic_shape=(80, 4, 4, 1)).splits["train"]
    batches = [
        list(epoch_batches(source, 8, seed=3, epoch=2, num_threads=threads))
        for threads in (0, 1, 4)
    ]
    for other in batches[1:]:
        assert len(other) == len(batches[0])
        for left, right in zip(batches[0], other, strict=True):
            assert all(np.array_equal(left[k], right[k]) for k in left)


# Check before reuse.


def test_a_changed_training_file_refuses_resume_unless_allowed(runs, tmp_path, capsys):
    data = tmp_path / "data.nc"
    shutil.copy(runs / "data.nc", data)
    run = tmp_path / "run"
    assert train(run, data, "--epochs", "1", "--resume") == 0  # nothing to resume yet
    assert record(run)["sessions"][0]["kind"] == "train"
    before = (run / "provenance.json").read_text()
    write_synthetic_netcdf(data, 200, 16, 16, seed=6, variable="synthetic_0")  # other values
    assert train(run, data, "--epochs", "1", "--resume") == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "was trained on other data" in error
    assert "changed since the run read it" in error and "--allow-changed-data" in error
    assert (run / "provenance.json").read_text() == before  # nothing written
    assert train(run, data, "--epochs", "1", "--resume", "--allow-changed-data") == 0
    assert "warning: run" in capsys.readouterr().err
    sessions = record(run)["sessions"]
    assert [s["kind"] for s in sessions] == ["train", "resume"]
    assert "changed since the run read it" in sessions[1]["changes"][0]


def test_evaluate_and_predict_warn_of_other_software_and_data(runs, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(runs / "a", run)
    made = record(run)
    made["sessions"][0]["software"]["jax"] = "0.0.1"
    (run / "provenance.json").write_text(json.dumps(made))
    assert cli.main(["evaluate", "--workdir", str(run)]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        f"stconv evaluate: warning: run {str(run)!r}: jax 0.0.1 made the run, "
        f"{jax.__version__} is installed now"
    ]
    sessions = record(run)["sessions"]
    assert [s["kind"] for s in sessions] == ["train", "evaluate"]
    assert set(sessions[1]["phases_s"]) == {"data_loading", "evaluation", "writing"}

    made["inputs"][0]["sha256"] = "0" * 64
    (run / "provenance.json").write_text(json.dumps(made))
    assert cli.main(["evaluate", "--workdir", str(run)]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and "changed since the run read it (SHA-256 000000000000..." in lines[1]

    output = tmp_path / "forecast.nc"
    argv = ["predict", "--workdir", str(run), "--input", str(runs / "data.nc")]
    assert cli.main([*argv, "--output", str(output)]) == 0
    assert capsys.readouterr().err.count("jax 0.0.1 made the run") == 1
    with pytest.warns(provenance.ProvenanceWarning, match="jax 0.0.1 made the run"):
        Forecaster.load(run)


def test_unchanged_runs_load_without_warnings(runs):
    with warnings.catch_warnings():
        warnings.simplefilter("error", provenance.ProvenanceWarning)
        assert Forecaster.load(runs / "b").origin["inputs"][0]["sha256"]


# The parts.


def test_file_record_streams_and_hashes_folders(tmp_path, monkeypatch):
    path = tmp_path / "big.bin"
    data = np.random.default_rng(0).bytes(10_000)
    path.write_bytes(data)
    monkeypatch.setattr(provenance, "CHUNK_BYTES", 1000)  # ten reads
    item = provenance.file_record(path)
    assert item["sha256"] == hashlib.sha256(data).hexdigest() and item["bytes"] == 10_000
    store = tmp_path / "store.zarr"
    (store / "x").mkdir(parents=True)
    (store / "x" / "0").write_bytes(b"abc")
    (store / ".zattrs").write_bytes(b"{}")
    first = provenance.file_record(store)
    assert first["bytes"] == 5
    (store / "x" / "0").write_bytes(b"abd")
    assert provenance.file_record(store)["sha256"] != first["sha256"]


def test_data_files_by_dataset(tmp_path):
    assert data_files("hadcm3-a1b") == [EMBEDDED_FILE]
    assert data_files("synthetic") == []
    for name in ("b.nc", "a.nc"):
        (tmp_path / name).write_bytes(b"")
    assert data_files(str(tmp_path / "*.nc"), mask_file="m.npy") == [
        str(tmp_path / "a.nc"), str(tmp_path / "b.nc"), "m.npy"
    ]  # fmt: skip
    assert data_files("cfsr", path=str(tmp_path / "a.nc")) == [str(tmp_path / "a.nc")]
    static = str(tmp_path / "b.nc")  # the static fields' file is an input too, listed once
    assert data_files(str(tmp_path / "a.nc"), static=f"{static}:orography") == [
        str(tmp_path / "a.nc"), static
    ]  # fmt: skip
    assert data_files(str(tmp_path / "*.nc"), static=static)[-1] == static


def test_input_changes_name_the_file(tmp_path):
    path = tmp_path / "x.nc"
    path.write_bytes(b"one")
    recorded = provenance.describe_inputs([path])
    assert provenance.input_changes(recorded, [path]) == []
    path.write_bytes(b"two")
    (change,) = provenance.input_changes(recorded, [path])
    assert change.startswith(f"{str(path)!r} changed since the run read it")
    assert provenance.input_changes(recorded, []) == [
        f"the run read {[str(path)]}, now the data are []"
    ]
    static = tmp_path / "orography.nc"
    static.write_bytes(b"static")
    path.write_bytes(b"one")  # a record made before the static fields' file was listed
    assert provenance.input_changes(recorded, [path, static], newer=[str(static)]) == []
    (change,) = provenance.input_changes(recorded, [path, static])  # a glob that grew
    assert change.startswith("the run read") and change.endswith(f"{[str(path), str(static)]}")
    both = provenance.describe_inputs([path, static])
    static.write_bytes(b"other")
    (change,) = provenance.input_changes(both, [path, static], newer=[str(static)])
    assert change.startswith(f"{str(static)!r} changed since the run read it")


def test_phase_clock_counts_each_second_once(monkeypatch):
    ticks = iter([0.0, 1.0, 3.0, 6.0, 10.0, 15.0])
    monkeypatch.setattr(provenance.time, "perf_counter", lambda: next(ticks))
    clock = provenance.PhaseClock()
    with clock.phase("training"):  # 0 -> 1 training, 1 -> 3 compile, 3 -> 6 training
        clock.first_call(lambda: None)()
    with clock.phase("training"):  # 6 -> 10 outside any phase, 10 -> 15 training
        pass
    assert clock.seconds == {"training": 1.0 + 3.0 + 5.0, "compile": 2.0}


def test_the_checkout_is_the_folder_that_holds_the_package():
    # An editable install's commit is read from there (`code_version`).
    package = os.path.join(provenance.checkout_folder(), "stconv", "__init__.py")
    assert os.path.samefile(package, provenance.stconv.__file__)


def test_code_version_names_the_commit_of_a_checkout(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()

    def git(*args):
        done = subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)
        return done.stdout.decode().strip()

    git("init", "-q")
    (repo / "file").write_text("one")
    git("add", "file")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    expected = {"version": "0.1.0", "commit": git("rev-parse", "HEAD"), "dirty": False}
    assert provenance.code_version(str(repo)).items() >= expected.items()
    (repo / "file").write_text("two")
    assert provenance.code_version(str(repo))["dirty"] is True
    plain = tmp_path / "plain"  # an installed copy: no checkout around it
    plain.mkdir()
    assert provenance.code_version(str(plain))["commit"] is None
    inside = repo / "venv" / "site-packages"  # an installed copy inside a checkout
    inside.mkdir(parents=True)
    assert provenance.code_version(str(inside))["commit"] is None
