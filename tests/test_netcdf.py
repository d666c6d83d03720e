"""Streaming forecasts: the netCDF writer, padded batches that compile once, lazy windows."""

import json

import cftime
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from flax import nnx

from stconv import models
from stconv.config import Config
from stconv.data.normalization import Normalizer
from stconv.evaluation.netcdf import ForecastWriter
from stconv.evaluation.scoring import evaluate
from stconv.forecaster import Forecaster
from stconv.training.step import make_predict

GRID = {
    "lat": np.linspace(-5, 5, 3, dtype=np.float32),
    "lon": np.arange(4.0),
    "channel": ["tas", "pr"],
    "units": ["K", "kg m-2 s-1"],
}


def whole_dataset(predictions, init_times, mask):
    """The forecasts as one in-memory Dataset, the way they were written before streaming."""
    predictions = np.where(mask, predictions, np.nan).astype(np.float32)
    coords = {
        "init_time": init_times,
        "lead_time": ("lead_time", np.arange(1, predictions.shape[1] + 1), {"units": "steps"}),
        "lat": ("lat", GRID["lat"], {"units": "degrees_north", "axis": "Y"}),
        "lon": ("lon", GRID["lon"], {"units": "degrees_east", "axis": "X"}),
    }
    dims = ("init_time", "lead_time", "lat", "lon")
    data_vars = {
        name: (dims, predictions[..., c], {"units": GRID["units"][c]})
        for c, name in enumerate(GRID["channel"])
    }
    return xr.Dataset(data_vars, coords, attrs={"title": "stconv forecast"})


def forecasts(count=10, horizon=2):
    rng = np.random.default_rng(0)
    predictions = 280 + rng.standard_normal((count, horizon, 3, 4, 2))
    mask = np.ones((3, 4, 2), bool)
    mask[0, 1, 0] = mask[2, 3, 1] = False
    return predictions, mask


def write_batches(path, predictions, init_times, mask, sizes):
    with ForecastWriter(path, GRID, mask, predictions.shape[1]) as writer:
        for start, stop in zip(np.cumsum([0, *sizes[:-1]]), np.cumsum(sizes), strict=True):
            writer.write(predictions[start:stop], init_times[start:stop])


TIMES = {
    "datetime64": pd.date_range("2001-03-01", periods=10, freq="6h").values,
    "cftime": cftime.num2date(np.arange(10), "days since 2001-02-24", "noleap"),
    "samples": np.arange(30, 40),
}


@pytest.mark.parametrize("times", TIMES)
@pytest.mark.parametrize("sizes", [[10], [3, 1, 4, 2], [4, 4, 2]])
def test_streamed_file_equals_the_whole_dataset(tmp_path, times, sizes):
    predictions, mask = forecasts()
    write_batches(tmp_path / "streamed.nc", predictions, TIMES[times], mask, sizes)
    whole_dataset(predictions, TIMES[times], mask).to_netcdf(tmp_path / "whole.nc")
    with (
        xr.open_dataset(tmp_path / "streamed.nc") as streamed,
        xr.open_dataset(tmp_path / "whole.nc") as whole,
    ):
        xr.testing.assert_identical(streamed, whole)
        assert (
            streamed["tas"].dtype == np.float32
            and streamed["init_time"].dtype == whole["init_time"].dtype
        )
        assert streamed["init_time"].encoding.get("units") == whole["init_time"].encoding.get(
            "units"
        )
        assert streamed.encoding["unlimited_dims"] == {"init_time"}
        assert np.isnan(streamed["tas"].values[:, :, 0, 1]).all()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["streamed.nc", "whole.nc"]  # no temporary


@pytest.mark.parametrize("failure", ["raised", "bad shape"])
def test_a_failure_midway_leaves_the_earlier_file_intact(tmp_path, failure):
    predictions, mask = forecasts()
    times = TIMES["datetime64"]
    path = tmp_path / "forecasts.nc"
    write_batches(path, predictions, times, mask, [10])
    before = path.read_bytes()
    error = RuntimeError if failure == "raised" else ValueError
    with pytest.raises(error), ForecastWriter(path, GRID, mask, 2) as writer:
        writer.write(predictions[:4], times[:4])
        if failure == "raised":
            raise RuntimeError("interrupted")
        writer.write(predictions[4:, :1], times[4:])  # one lead time of two: does not fit
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["forecasts.nc"]


def test_padded_batches_equal_batch_size_one_and_compile_once():
    model = models.create(
        "stconvs2s-r",
        input_shape=(3, 6, 6, 1),
        horizon=2,
        num_layers=1,
        hidden_dim=2,
        kernel_size=3,
        rngs=nnx.Rngs(0),
    )
    state = nnx.state(model)
    rng = np.random.default_rng(1)
    source = [
        {
            "inputs": rng.standard_normal((3, 6, 6, 1), np.float32),
            "targets": rng.standard_normal((2, 6, 6, 1), np.float32),
            "mask": rng.random((2, 6, 6, 1)) > 0.2,
        }
        for _ in range(7)
    ]
    runs = {}
    for batch_size in (3, 1):
        predict, seen = make_predict(model, 2), []
        metrics = evaluate(
            {"model": lambda x, predict=predict: predict(state, x)},
            source,
            np.array([2.0], np.float32),
            batch_size,
            lambda batch, predictions, seen=seen: seen.append(np.asarray(predictions["model"])),
        )
        assert predict._cache_size() == 1  # 7 windows in batches of 3, 3, 1 (padded to 3)
        assert [len(p) for p in seen] == ([3, 3, 1] if batch_size == 3 else [1] * 7)
        runs[batch_size] = np.concatenate(seen), metrics["model"][0]  # one variable
    # Equal on CPU; other backends may pick other kernels for other batch sizes.
    np.testing.assert_allclose(runs[3][0], runs[1][0], rtol=1e-6, atol=1e-6)
    assert runs[3][1]["cells"] == runs[1][1]["cells"] == sum(s["mask"].sum() for s in source)
    assert runs[3][1]["rmse"] == pytest.approx(runs[1][1]["rmse"], rel=1e-6)


def test_forecasts_read_and_predict_one_batch_at_a_time():
    values = np.random.default_rng(2).standard_normal((12, 3, 4, 2)).astype(np.float32)
    values[4, 1, 1, 0] = np.nan
    times = pd.date_range("2001-01-01", periods=12, freq="D")
    dims = ("time", "lat", "lon")
    data = xr.Dataset(
        {name: (dims, values[..., c], {"units": "K"}) for c, name in enumerate("ab")},
        coords={"time": times},
    )
    normalizer = Normalizer(np.array([1.0, -1.0], np.float32), np.array([2.0, 0.5], np.float32))
    shapes = []

    def predict(inputs):  # the mean of the three input frames, twice
        shapes.append(inputs.shape)
        return np.repeat(inputs.mean(axis=1, keepdims=True), 2, axis=1)

    config = Config(input_length=3, horizon=2, eval_batch_size=4)
    description = {"variables": ["a", "b"], "units": "K", "input_shape": [3, 3, 4, 2]}
    mask = np.ones((3, 4, 2), bool)
    forecaster = Forecaster(config, description, normalizer, mask, None, predict)
    field = forecaster.field(data.chunk({"time": 5}))
    batches = list(forecaster.forecast_batches(field, mask))
    # 10 windows: batches of 4, 4 and 2, every one padded to 4 windows.
    assert shapes == [(4, 3, 3, 4, 2)] * 3
    assert [len(p) for p in batches] == [4, 4, 2]
    windows = np.stack([values[s : s + 3] for s in range(10)])
    inputs = np.nan_to_num(normalizer.normalize(windows), nan=0.0)
    expected = normalizer.denormalize(np.repeat(inputs.mean(axis=1, keepdims=True), 2, axis=1))
    np.testing.assert_allclose(np.concatenate(batches), expected, rtol=1e-6)
    forecast = forecaster.forecast(data)  # one variable per target
    np.testing.assert_array_equal(forecast["init_time"].values, times[2:])
    stacked = np.stack([forecast[name].values for name in ("a", "b")], axis=-1)
    np.testing.assert_allclose(stacked, expected, rtol=1e-6)


def test_eval_batch_size_is_validated_and_old_configs_load(tmp_path):
    with pytest.raises(
        ValueError, match=r"^eval_batch_size=0 is invalid: must be an integer >= 1$"
    ):
        Config(eval_batch_size=0)
    saved = {k: v for k, v in vars(Config(batch_size=8)).items() if k != "eval_batch_size"}
    (tmp_path / "config.json").write_text(json.dumps(saved))
    assert Config.load(tmp_path / "config.json") == Config(batch_size=8, eval_batch_size=64)
