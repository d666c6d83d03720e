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
    run.save_config(Config.from_flags(dataset="synthetic"))
    run.save_data(dataset)
    assert run.config() == Config.from_flags(dataset="synthetic")
    assert run.data_description() == {
        "variables": ["synthetic_0", "synthetic_1"],
        "units": ["K", "K"],
        "long_name": ["synthetic advected-diffused field"] * 2,
        "standard_name": ["", ""],
        "targets": ["synthetic_0", "synthetic_1"],
        "input_shape": [3, 6, 7, 2],
        "lat": dataset.grid.lat.tolist(),
        "lon": dataset.grid.lon.tolist(),
        "geographic": True,
        "rotated": False,
        "dims": {"time": "time", "lat": "lat", "lon": "lon"},
    }
    np.testing.assert_array_equal(run.mask(), dataset.mask)
    assert run.climatology().to_dict() == dataset.climatology.to_dict()
    np.testing.assert_array_equal(run.climatology().values, dataset.climatology.values)
    np.testing.assert_allclose(run.normalizer().mean, dataset.normalizer.mean)
    grid = run.grid()  # read back from data.json as it was
    assert grid.description() == dataset.grid.description()
    np.testing.assert_array_equal(grid.lat, dataset.grid.lat)
    assert grid.channels == ("synthetic_0", "synthetic_1") and grid.geographic


def test_the_grid_of_a_run_of_an_older_version(tmp_path):
    """data.json without long and standard names, ``geographic`` and ``dims``,
    with one unit for all variables; and before the coordinates were kept."""
    run = RunDirectory(tmp_path)
    old = {"variables": ["tas", "pr"], "units": "K", "input_shape": [5, 2, 3, 2]}
    run.write_json(run.DATA, {**old, "lat": [10.0, 20.0], "lon": [0.0, 1.0, 2.0]})
    grid = run.grid()
    assert grid.channels == ("tas", "pr") and grid.units == ("K", "K")
    assert grid.long_names == ("", "") and grid.geographic and grid.shape == (2, 3)
    assert grid.dims == {"time": "time", "lat": "lat", "lon": "lon"}
    run.write_json(run.DATA, old)
    assert run.grid() is None


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
