"""A run killed at any boundary of an epoch, or inside one, resumes to the
uninterrupted run, bit for bit: results, metrics log, test forecasts and the
best checkpoint."""

import json
import os

import numpy as np
import pytest
import xarray as xr
from conftest import assert_same_checkpoints

from stconv import cli
from stconv.evaluation.netcdf import ForecastWriter
from stconv.runs import directory as run_module
from stconv.runs.directory import RunDirectory
from stconv.training import step as train_module
from stconv.training.checkpoints import Checkpoints

TINY = [
    "--dataset", "synthetic", "--num-layers", "1", "--hidden-dim", "2", "--kernel-size", "3",
    "--batch-size", "16", "--forecast-samples", "0", "--no-maps", "--epochs", "3",
    "--dropout", "0.2",
]  # fmt: skip
KILLED_EPOCH = 2


def train(workdir, *extra):
    return cli.main(["train", "--workdir", str(workdir), *TINY, *extra])


def rows(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """The uninterrupted run; its epoch 2 improves on epoch 1, so that epoch
    saves both checkpoints."""
    workdir = tmp_path_factory.mktemp("whole") / "run"
    assert train(workdir) == 0
    validation = [row["validation_rmse"] for row in rows(workdir)]
    assert validation[KILLED_EPOCH - 1] < min(validation[: KILLED_EPOCH - 1])
    return workdir


def kill_at(monkeypatch, point: str) -> None:
    """Raises KeyboardInterrupt at ``point`` of epoch `KILLED_EPOCH`:
    ``before-saves`` (its metrics row written, no checkpoint), ``after-best``
    (best saved, latest not), ``after-latest`` (both saved), or
    ``during-best`` / ``during-latest`` (a save killed half-way: a partial
    temporary folder left where orbax writes)."""
    real_save = Checkpoints.save

    def save(self, kind, epoch, state, record):
        if epoch == KILLED_EPOCH:
            if point == "before-saves" or point == f"during-{kind}":
                if point.startswith("during"):
                    partial = os.path.join(self.path(kind), "..", f"{epoch}.orbax-checkpoint-tmp-1")
                    os.makedirs(partial, exist_ok=True)
                    with open(os.path.join(partial, "_partial"), "w") as f:
                        f.write("half")
                raise KeyboardInterrupt
            real_save(self, kind, epoch, state, record)
            if point == f"after-{kind}":
                raise KeyboardInterrupt
            return
        real_save(self, kind, epoch, state, record)

    monkeypatch.setattr(Checkpoints, "save", save)


def kill_in_a_write(monkeypatch, point: str) -> None:
    """Raises KeyboardInterrupt inside epoch `KILLED_EPOCH` (``inside-epoch``:
    at its third batch) or inside a write of the run's files:
    ``during-metrics-row`` (half of epoch `KILLED_EPOCH`'s row written),
    ``before-trained`` (every epoch saved, ``trained.json`` not written),
    ``during-results`` (``results.json`` written, not yet in place), or
    ``during-test-forecasts`` (a batch of the test forecasts written)."""
    if point == "inside-epoch":
        real_batches = train_module.epoch_batches

        def epoch_batches(source, batch_size, *, epoch, **kwargs):
            batches = real_batches(source, batch_size, epoch=epoch, **kwargs)
            return KilledAtThirdBatch(batches) if epoch == KILLED_EPOCH else batches

        monkeypatch.setattr(train_module, "epoch_batches", epoch_batches)
    elif point == "during-metrics-row":

        def append_history(self, row):
            text = json.dumps(row) + "\n"
            if row["epoch"] == KILLED_EPOCH:
                with open(self.file(self.METRICS), "a") as f:
                    f.write(text[: len(text) // 2])
                raise KeyboardInterrupt
            real_append(self, row)

        real_append = RunDirectory.append_history
        monkeypatch.setattr(RunDirectory, "append_history", append_history)
    elif point == "before-trained":
        monkeypatch.setattr(RunDirectory, "mark_trained", raises)
    elif point == "during-results":
        real_replace = os.replace

        def replace(source, target):
            if os.path.basename(target) == RunDirectory.RESULTS:
                raise KeyboardInterrupt
            real_replace(source, target)

        monkeypatch.setattr(run_module.os, "replace", replace)
    elif point == "during-test-forecasts":
        monkeypatch.setattr(ForecastWriter, "write", raises)


class KilledAtThirdBatch:
    """An epoch's batches (`stconv.training.step.epoch_batches`), killed at the third."""

    def __init__(self, batches):
        self.batches, self.step = batches, 0

    def __iter__(self):
        return self

    def __next__(self):
        self.step += 1
        if self.step == 3:
            raise KeyboardInterrupt
        return next(self.batches)

    def get_state(self):
        return self.batches.get_state()


def raises(*args, **kwargs):
    raise KeyboardInterrupt


@pytest.mark.parametrize(
    "points",
    [
        ("before-saves",),
        ("during-best",),
        ("after-best",),
        ("during-latest",),
        ("after-latest",),
        ("during-metrics-row",),
        ("inside-epoch",),
        # After the last epoch: each resumption is killed at the next point.
        ("before-trained", "during-results", "during-test-forecasts"),
    ],
    ids="-then-".join,
)
def test_a_kill_at_any_boundary_resumes_to_the_uninterrupted_run(
    whole, tmp_path, monkeypatch, points
):
    workdir = tmp_path / "run"
    for attempt, point in enumerate(points):
        if point.endswith(("saves", "best", "latest")):
            kill_at(monkeypatch, point)
        else:
            kill_in_a_write(monkeypatch, point)
        with pytest.raises(KeyboardInterrupt):
            train(workdir, *["--resume"] * bool(attempt))
        monkeypatch.undo()
    assert train(workdir, "--resume") == 0
    assert rows(workdir) == [
        {**r, "seconds": s["seconds"]} for r, s in zip(rows(whole), rows(workdir), strict=True)
    ]
    results = json.loads((workdir / "results.json").read_text())
    assert results == json.loads((whole / "results.json").read_text())
    with (
        xr.open_dataset(workdir / "test_forecasts.nc") as got,
        xr.open_dataset(whole / "test_forecasts.nc") as want,
    ):
        np.testing.assert_array_equal(got["synthetic_0"].values, want["synthetic_0"].values)
    assert_same_checkpoints(whole, workdir, kinds=("best", "latest"))
    assert not [p.name for p in workdir.iterdir() if "tmp" in p.name]  # no temporary left
    if len(points) == 1:  # the killed session stays, unfinished
        sessions = json.loads((workdir / "provenance.json").read_text())["sessions"]
        unfinished = [(s["kind"], s["finished"] is None) for s in sessions]
        assert unfinished == [("train", True), ("resume", False)]


def test_an_unfinished_run_is_refused_unless_asked(tmp_path, monkeypatch, capsys):
    from stconv.data.synthetic import write_synthetic_netcdf
    from stconv.runs.forecaster import Forecaster

    workdir = tmp_path / "run"
    kill_at(monkeypatch, "after-latest")
    with pytest.raises(KeyboardInterrupt):
        train(workdir)
    monkeypatch.undo()
    capsys.readouterr()
    write_synthetic_netcdf(tmp_path / "new.nc", 12, 16, 16, seed=3, variable="synthetic_0")
    predict = ["predict", "--workdir", str(workdir), "--input", str(tmp_path / "new.nc")]
    for command in (["evaluate", "--workdir", str(workdir)], [*predict, "--output", "x.nc"]):
        assert cli.main(command) == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and "holds a run whose training has not ended" in error
        assert "pass --unfinished to use its best checkpoint" in error  # the flag
    with pytest.raises(ValueError, match="pass unfinished=True to use its best checkpoint"):
        Forecaster.load(workdir)
    assert not (workdir / "results.json").exists()
    assert cli.main(["evaluate", "--workdir", str(workdir), "--unfinished"]) == 0
    warning = capsys.readouterr().err
    assert "stconv evaluate: warning: " in warning and "using its best epoch so far" in warning
    output = tmp_path / "forecast.nc"
    assert cli.main([*predict, "--output", str(output), "--unfinished"]) == 0
    assert output.exists()
    assert train(workdir, "--resume") == 0  # and it still finishes
    assert (workdir / "trained.json").exists()


def test_a_second_train_is_refused_while_one_runs_and_a_stale_lock_is_replaced(tmp_path, capsys):
    import socket
    import subprocess
    import sys

    workdir = tmp_path / "run"
    assert train(workdir, "--epochs", "1") == 0
    assert not (workdir / "train.lock").exists()  # released at the end
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    lock = {"pid": running.pid, "host": socket.gethostname()}
    (workdir / "train.lock").write_text(json.dumps(lock))
    capsys.readouterr()
    assert train(workdir, "--epochs", "1", "--resume") == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and f"is being trained by process {running.pid}" in error
    running.kill()
    running.wait()  # now a lock of a process that is gone
    assert train(workdir, "--epochs", "1", "--resume") == 0
    assert not (workdir / "train.lock").exists()
