"""RunDirectory: a run's files written and read back, and what a missing one says."""

import json

import numpy as np
import pytest

from stconv.config import Config
from stconv.data.registry import load_dataset
from stconv.runs.directory import RunDirectory


def test_data_description_round_trip(tmp_path):
    dataset = load_dataset("synthetic", synthetic_shape=(60, 6, 7, 2), input_length=3, horizon=2)
    run = RunDirectory(tmp_path / "run")
    run.save_config(Config(dataset="synthetic"))
    run.save_data(dataset)
    assert run.config() == Config(dataset="synthetic")
    assert run.data_description() == {
        "variables": ["synthetic_0", "synthetic_1"],
        "units": ["K", "K"],
        "long_name": ["synthetic advected-diffused field"] * 2,
        "standard_name": ["", ""],
        "targets": ["synthetic_0", "synthetic_1"],
        "input_shape": [3, 6, 7, 2],
        "lat": dataset.grid["lat"].tolist(),
        "lon": dataset.grid["lon"].tolist(),
        "geographic": True,
        "dims": {"time": "time", "lat": "lat", "lon": "lon"},
    }
    np.testing.assert_array_equal(run.mask(), dataset.mask)
    assert run.climatology().to_dict() == dataset.climatology.to_dict()
    np.testing.assert_array_equal(run.climatology().values, dataset.climatology.values)
    np.testing.assert_allclose(run.normalizer().mean, dataset.normalizer.mean)


def test_history_is_cut_back_to_the_resumed_epoch(tmp_path):
    run = RunDirectory(tmp_path)
    for epoch in (1, 2, 3):
        run.append_history({"epoch": epoch, "train_loss": 1.0 / epoch})
    assert [row["epoch"] for row in run.read_history(2)] == [1, 2]
    lines = (tmp_path / RunDirectory.METRICS).read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]


def test_missing_files_name_the_workdir_and_what_to_do(tmp_path):
    run = RunDirectory(tmp_path / "empty")
    with pytest.raises(ValueError, match=r"workdir '.*empty' has no config.json: it holds no run"):
        run.config()
    with pytest.raises(ValueError, match=r"has no normalization\.json: train the run first"):
        run.normalizer()
    with pytest.raises(ValueError, match=r"has no results\.json: train or evaluate the run first"):
        run.results()
    assert run.climatology() is None  # runs made before it was recorded
    assert run.iteration(1010).path.endswith("seed-1010")
