"""The stconv command: one-line errors with exit code 2, help, presets."""

import hashlib
import json

import numpy as np
import pytest
import xarray as xr
from conftest import time_series_dataset

from stconv import cli
from stconv.data.synthetic import write_synthetic_netcdf

TINY = [
    "--dataset", "synthetic", "--num-layers", "1", "--hidden-dim", "2", "--kernel-size", "3",
    "--batch-size", "16", "--forecast-samples", "0",
]  # fmt: skip


def train(workdir, *extra):
    return cli.main(["train", "--workdir", str(workdir), *TINY, *extra])


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--model", "unet"],
            "model 'unet' is unknown: choose from ['ablation-stconvs2s-c-inverted',",
        ),
        (["--dataset", "era5"], "dataset 'era5' is unknown: choose from ['hadcm3-a1b'"),
        (["--epochs", "0"], "epochs=0 is invalid: must be an integer >= 1"),
        (["--learning-rate", "-1"], "learning_rate=-1.0 is invalid"),
        (["--kernel-size", "40"], "kernel_size=40 is invalid"),
    ],
)
def test_cli_errors_are_one_line_with_exit_code_2(tmp_path, capsys, args, message):
    assert train(tmp_path / "run", *args) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1 and "Traceback" not in error


@pytest.mark.parametrize("command", ["train", "evaluate", "predict"])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main([command, "--help"])
    assert exit_.value.code == 0 and "--workdir" in capsys.readouterr().out


def test_preset_with_overriding_flags_is_what_the_run_records(tmp_path):
    workdir = tmp_path / "run"
    flags = ["--preset", "main", "--epochs", "1", "--dataset", "synthetic", "--num-layers", "1"]
    flags += ["--hidden-dim", "2", "--kernel-size", "3", "--batch-size", "16"]
    assert cli.main(["train", "--workdir", str(workdir), *flags]) == 0
    config = json.loads((workdir / "config.json").read_text())
    assert (config["epochs"], config["num_layers"], config["dataset"]) == (1, 1, "synthetic")
    assert config["residual"] is True and config["normalization"] == "cell"  # from the preset
    with pytest.raises(SystemExit) as exit_:  # argparse: the choices, exit code 2
        cli.main(["train", "--workdir", str(tmp_path / "other"), "--preset", "nope"])
    assert exit_.value.code == 2 and not (tmp_path / "other").exists()


# The file policy: stconv never overwrites or deletes a file it did not create.


def digest(folder) -> dict:
    """Every file under ``folder`` and the SHA-256 of its bytes."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished tiny run, a new input file and a file of the user's."""
    root = tmp_path_factory.mktemp("policy")
    assert train(root / "run", "--epochs", "1") == 0
    write_synthetic_netcdf(root / "new.nc", 12, 16, 16, seed=3, variable="synthetic_0")
    (root / "mine.nc").write_text("the user's own file")
    return root


@pytest.mark.parametrize(
    "output, extra, message",
    [
        ("mine.nc", [], "mine.nc' exists: pass --overwrite to replace it"),
        ("new.nc", ["--overwrite"], "new.nc' is the input file"),
        ("run/config.json", ["--overwrite"], "config.json' is inside the run"),
        ("run/forecast.nc", [], "forecast.nc' is inside the run"),
        ("run/checkpoints/f.nc", [], "f.nc' is inside the run"),
        ("nowhere/forecast.nc", [], "its folder"),
    ],
)
def test_predict_never_writes_over_what_it_did_not_create(finished, capsys, output, extra, message):
    before = digest(finished)
    arguments = ["--workdir", str(finished / "run"), "--input", str(finished / "new.nc")]
    assert cli.main(["predict", *arguments, "--output", str(finished / output), *extra]) == 2
    error = capsys.readouterr().err
    assert message in error and "--output" in error and error.count("\n") == 1
    assert digest(finished) == before


def test_predict_overwrite_replaces_a_file_on_request(finished, tmp_path):
    output = tmp_path / "forecast.nc"
    output.write_text("an old forecast")
    arguments = ["--workdir", str(finished / "run"), "--input", str(finished / "new.nc")]
    assert cli.main(["predict", *arguments, "--output", str(output), "--overwrite"]) == 0
    with xr.open_dataset(output) as forecast:
        assert forecast["synthetic_0"].shape == (8, 5, 16, 16)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["forecast.nc"]  # no temporary left


@pytest.mark.parametrize(
    "setup, message",
    [
        ("file", "is a file: choose a folder"),
        ("foreign", "is not empty and holds no stconv run: choose a new or empty folder"),
    ],
)
def test_train_refuses_a_folder_it_did_not_create(tmp_path, capsys, setup, message):
    target = tmp_path / "target"
    if setup == "file":
        target.write_text("not a folder")
    else:
        target.mkdir()
        (target / "metrics.jsonl").write_text("the user's log\n")
        (target / "results.json").write_text("{}")
    before = digest(tmp_path)
    assert train(target, "--epochs", "1") == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1
    assert digest(tmp_path) == before


def test_train_uses_an_empty_folder_and_marks_its_run(tmp_path):
    (tmp_path / "empty").mkdir()
    assert train(tmp_path / "empty", "--epochs", "1") == 0
    assert (tmp_path / "empty" / "stconv-run.json").exists()
    assert train(tmp_path / "empty", "--epochs", "1", "--resume") == 0  # its own run


def test_a_dataset_whose_validation_and_test_years_are_missing_is_refused(tmp_path, capsys):
    dataset = time_series_dataset(num_steps=40, lat=4, lon=5)
    dataset["tas"][24:] = np.nan  # everything after the training years
    path = tmp_path / "gaps.nc"
    dataset.to_netcdf(path)
    arguments = ["train", "--workdir", str(tmp_path / "run"), "--dataset", str(path)]
    tiny = ["--num-layers", "1", "--hidden-dim", "2", "--kernel-size", "3", "--epochs", "1"]
    assert cli.main([*arguments, *tiny, "--input-length", "3", "--horizon", "2"]) == 2
    error = capsys.readouterr().err
    assert "the validation split of" in error and "gaps.nc" in error
    assert "no valid target to score" in error and error.count("\n") == 1
