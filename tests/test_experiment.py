"""The main job: train, evaluate, predict, resume, early stopping, errors (tiny, synthetic)."""

import json
import os
import shutil

import numpy as np
import pytest
import xarray as xr
from conftest import TINY_RUN, time_series_dataset

from stconv import cli
from stconv.config import Config
from stconv.data.synthetic import write_synthetic_netcdf
from stconv.evaluation.netcdf import ForecastWriter
from stconv.runs import experiment
from stconv.runs.assembly import load_config_dataset

TINY = [
    "--dataset", "synthetic", "--num-layers", "1", "--hidden-dim", "2", "--kernel-size", "3",
    "--batch-size", "16", "--forecast-samples", "2", "--no-maps",
]  # fmt: skip


def train(workdir, *extra):
    return cli.main(["train", "--workdir", str(workdir), *TINY, *extra])


def read_rows(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def test_train_evaluate_predict_end_to_end(tmp_path, capsys, monkeypatch):
    workdir = tmp_path / "run"
    assert train(workdir, "--epochs", "2", "--maps") == 0
    out = capsys.readouterr().out
    assert "stconvs2s-r" in out and "persistence" in out and "climatology" in out
    for name in ("config.json", "normalization.json", "learning_curve.png", "forecast_maps.png"):
        assert (workdir / name).exists()
    for name in ("cell_scores.nc", "cell_maps.png", "spectra.nc", "forecast_errors.png"):
        assert (workdir / name).exists()
    assert (workdir / "skill_by_lead.png").stat().st_size > 10_000
    assert [row["epoch"] for row in read_rows(workdir)] == [1, 2]
    results = json.loads((workdir / "results.json").read_text())["synthetic_0"]
    assert set(results) == {"stconvs2s-r", "persistence", "climatology", "input_mean"}
    for result in results.values():
        for key in ("rmse_per_lead", "weighted_rmse_per_lead", "acc_per_lead"):
            assert len(result[key]) == 5
        assert result["rmse"] > 0 and result["area_weighted"] is True and result["units"] == "K"
        assert result["best_baseline"] in ("persistence", "climatology", "input_mean")
    assert results["persistence"]["skill_vs_persistence"] == 0.0
    assert "wRMSE" in out and "area-weighted (cos latitude)" in out
    events = list((workdir / "tensorboard").iterdir())
    assert len(events) == 1 and events[0].name.startswith("events.out.tfevents")

    with xr.open_dataset(workdir / "test_forecasts.nc") as forecasts:
        assert forecasts["synthetic_0"].dims == ("init_time", "lead_time", "lat", "lon")
        assert forecasts["synthetic_0"].shape == (71, 5, 16, 16)  # 80 test steps, windows of 10
        assert forecasts["synthetic_0"].attrs["units"] == "K"
        # Daily steps from 2000-01-01: the first test window ends its input at step 324.
        assert str(forecasts["init_time"].values[0])[:10] == "2000-11-20"
        assert np.isfinite(forecasts["synthetic_0"].values).all()

    assert cli.main(["evaluate", "--workdir", str(workdir)]) == 0
    assert json.loads((workdir / "results.json").read_text())["synthetic_0"] == results

    new_file = tmp_path / "new.nc"
    write_synthetic_netcdf(new_file, 30, 16, 16, seed=9, variable="synthetic_0")
    output = tmp_path / "forecast.nc"
    assert cli.main(["predict", "--workdir", str(workdir), "--input", str(new_file),
                     "--output", str(output)]) == 0  # fmt: skip
    with xr.open_dataset(output) as forecast:
        assert forecast["synthetic_0"].shape == (26, 5, 16, 16)
        assert 250 < float(forecast["synthetic_0"].mean()) < 310

    # Smaller batches stream to the file one at a time and give the same forecasts.
    sizes, write = [], ForecastWriter.write
    monkeypatch.setattr(
        ForecastWriter,
        "write",
        lambda self, p, *args: sizes.append(len(p)) or write(self, p, *args),
    )
    batched = tmp_path / "batched.nc"
    assert cli.main(["predict", "--workdir", str(workdir), "--input", str(new_file),
                     "--output", str(batched), "--batch-size", "4"]) == 0  # fmt: skip
    assert sizes == [4] * 6 + [2]
    with xr.open_dataset(output) as forecast, xr.open_dataset(batched) as forecast_batched:
        xr.testing.assert_allclose(forecast_batched, forecast, rtol=1e-6)
    unwritten = tmp_path / "unwritten.nc"
    assert cli.main(["predict", "--workdir", str(workdir), "--input", str(new_file),
                     "--output", str(unwritten), "--batch-size", "0"]) == 2  # fmt: skip
    assert "--batch-size=0 is invalid" in capsys.readouterr().err
    assert not unwritten.exists()


def test_early_stopping_restores_the_best_epoch(tmp_path, monkeypatch, capsys):
    scores = iter([3.0, 2.0, 2.5, 2.4, 1.0])
    real_evaluate = experiment.evaluate

    def scripted(forecasters, *args, **kwargs):
        if len(forecasters) > 1:  # the test set: the real thing
            return real_evaluate(forecasters, *args, **kwargs)
        return {"model": [{"rmse": next(scores), "mae": 0.0}]}  # one target

    monkeypatch.setattr(experiment, "evaluate", scripted)
    assert train(tmp_path / "run", "--epochs", "5", "--patience", "2") == 0
    assert [row["validation_rmse"] for row in read_rows(tmp_path / "run")] == [3.0, 2.0, 2.5, 2.4]
    assert "best epoch 2" in capsys.readouterr().out


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    real_step = experiment.make_train_step

    def failing(model, optimizer, *args, **kwargs):
        step, state = real_step(model, optimizer, *args, **kwargs)
        calls = []

        def train_step(state, batch):
            calls.append(1)
            state, metrics = step(state, batch)
            return state, {"loss": np.nan} if len(calls) == 20 else metrics  # epoch 2, step 5

        return train_step, state

    monkeypatch.setattr(experiment, "make_train_step", failing)
    assert train(tmp_path / "run", "--epochs", "3") == 1
    (error,) = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert "loss is nan at epoch 2, step 5" in error and "(epoch 1) is kept" in error
    assert "stconv evaluate --unfinished" in error
    monkeypatch.undo()
    assert cli.main(["evaluate", "--workdir", str(tmp_path / "run")]) == 2  # training did not end
    assert cli.main(["evaluate", "--workdir", str(tmp_path / "run"), "--unfinished"]) == 0


def test_nan_loss_before_any_checkpoint_says_none_was_saved(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(
        experiment, "make_train_step", lambda *a, **k: (lambda s, b: (s, {"loss": np.nan}), None)
    )
    assert train(tmp_path / "run", "--epochs", "2") == 1
    error = capsys.readouterr().err
    assert "loss is nan at epoch 1, step 1" in error and "the data were checked finite" in error
    assert "no epoch finished, so no checkpoint was saved" in error and "epoch 0" not in error


def test_a_diverged_validation_stops_training_and_keeps_the_last_good_epoch(
    tmp_path, monkeypatch, capsys
):
    scores = iter([2.0, np.nan])
    real_evaluate = experiment.evaluate

    def scripted(forecasters, *args, **kwargs):
        if "validation" not in kwargs.get("what", ""):
            return real_evaluate(forecasters, *args, **kwargs)
        return {"model": [{"rmse": next(scores), "mae": 0.0}]}  # one target

    monkeypatch.setattr(experiment, "evaluate", scripted)
    assert train(tmp_path / "run", "--epochs", "3") == 1
    error = capsys.readouterr().err
    assert "validation RMSE is nan at epoch 2: the model diverged" in error
    assert "(epoch 1) is kept" in error and error.count("\n") == 1


def test_a_failed_test_step_keeps_the_training_and_says_how_to_rerun_it(
    tmp_path, monkeypatch, capsys
):
    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device", str(tmp_path / "run" / "results.json"))

    monkeypatch.setattr(experiment, "report_test_split", full_disk)
    assert train(tmp_path / "run", "--epochs", "1") == 1
    error = capsys.readouterr().err
    assert "results.json: No space left on device" in error and error.count("\n") == 1
    assert f"rerun the test with `stconv evaluate --workdir {tmp_path / 'run'}`" in error
    monkeypatch.undo()
    assert cli.main(["evaluate", "--workdir", str(tmp_path / "run")]) == 0
    assert (tmp_path / "run" / "results.json").exists()


def test_resume_continues_from_best_when_latest_is_removed(tmp_path, capsys):
    assert train(tmp_path / "run", "--epochs", "2", "--patience", "5") == 0
    rows = read_rows(tmp_path / "run")
    best_epoch = min(rows, key=lambda row: row["validation_rmse"])["epoch"]
    shutil.rmtree(tmp_path / "run" / "checkpoints" / "latest")
    capsys.readouterr()
    assert train(tmp_path / "run", "--epochs", "2", "--patience", "5", "--resume") == 0
    assert f"after epoch {best_epoch} (best checkpoint)" in capsys.readouterr().out
    assert [row["epoch"] for row in read_rows(tmp_path / "run")] == [1, 2]


def test_workdir_and_checkpoint_mismatches(tiny_run, tmp_path, capsys):
    workdir = tmp_path / "run"
    shutil.copytree(tiny_run, workdir)  # a finished run of TINY_RUN (one epoch)
    again = ["train", "--workdir", str(workdir), *TINY_RUN]
    assert cli.main(again) == 2
    assert "already holds this run: pass --resume" in capsys.readouterr().err
    assert cli.main([*again, "--epochs", "2"]) == 2
    assert (
        "holds another run, of other settings (--epochs 1 in its config.json)"
        in capsys.readouterr().err
    )
    config = json.loads((workdir / "config.json").read_text())
    config["model"]["hidden_dim"] = 3
    (workdir / "config.json").write_text(json.dumps(config))
    assert cli.main(["evaluate", "--workdir", str(workdir)]) == 2
    error = capsys.readouterr().err
    assert "best/1 does not fit the model of the run's config.json" in error
    assert error.count("\n") == 1
    assert cli.main(["evaluate", "--workdir", str(tmp_path / "none")]) == 2


@pytest.mark.parametrize("dataset", ["hadcm3-a1b", "synthetic"])  # a file; a generated field
def test_time_chunk_streams_the_same_windows_lazily(dataset):
    eager = load_config_dataset(Config.from_flags(dataset=dataset))
    lazy = load_config_dataset(Config.from_flags(dataset=dataset, time_chunk=16))
    assert lazy.splits["train"].field.chunks is not None
    for split in ("train", "test"):
        for index in (0, len(eager.splits[split]) - 1):
            got, want = lazy.splits[split][index], eager.splits[split][index]
            for key in want:
                np.testing.assert_allclose(got[key], want[key], rtol=1e-6)
    with pytest.raises(ValueError, match="time_chunk=0 is invalid"):
        Config.from_flags(time_chunk=0)


def test_more_forecast_samples_than_test_windows_draws_them_all(tmp_path, capsys):
    time_series_dataset(num_steps=40).to_netcdf(tmp_path / "series.nc")
    flags = ["--dataset", str(tmp_path / "series.nc"), "--input-length", "3", "--horizon", "2"]
    flags += ["--num-layers", "1", "--hidden-dim", "2", "--kernel-size", "3", "--epochs", "1"]
    argv = ["train", "--workdir", str(tmp_path / "run"), *flags, "--forecast-samples", "10"]
    assert cli.main(argv) == 0
    assert "forecast_samples=10 is more than the 4 test windows: drawing all 4" in (
        capsys.readouterr().out
    )
    assert (tmp_path / "run" / "forecast_maps.png").exists()


def test_a_run_stores_its_dataset_resolved_and_evaluates_from_any_folder(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    time_series_dataset(num_steps=40).to_netcdf(data / "series.nc")
    monkeypatch.chdir(data)
    flags = ["--dataset", "series.nc", "--input-length", "3", "--horizon", "2", "--epochs", "1"]
    flags += ["--num-layers", "1", "--hidden-dim", "2", "--kernel-size", "3"]
    assert cli.main(["train", "--workdir", str(tmp_path / "run"), *flags]) == 0
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["data"]["dataset"] == str(data / "series.nc")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["evaluate", "--workdir", "run"]) == 0
    monkeypatch.chdir(data)  # resumed as given, from where it was trained
    assert cli.main(["train", "--workdir", str(tmp_path / "run"), *flags, "--resume"]) == 0
