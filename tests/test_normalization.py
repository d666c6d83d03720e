"""Normalization: fitted on the training split only, inverted exactly."""

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from stconv import cli
from stconv.data import blocks
from stconv.data.errors import DataError
from stconv.data.normalization import Normalizer
from stconv.data.registry import load_dataset, training_statistics


def test_normalization_is_fitted_on_train_only_and_inverts(series_file, tmp_path):
    dataset = load_dataset(series_file, input_length=3, horizon=2)
    # Train frames 0..17: mean of 100 t + 10 i + j over t < 18, i < 4, j < 5.
    expected_mean = 100 * 8.5 + 10 * 1.5 + 2
    np.testing.assert_allclose(dataset.normalizer.mean, [expected_mean], rtol=1e-6)
    x = np.random.default_rng(0).normal(900, 50, (2, 3, 4, 5, 1)).astype(np.float32)
    normalizer = dataset.normalizer
    np.testing.assert_allclose(normalizer.denormalize(normalizer.normalize(x)), x, rtol=1e-5)
    normalizer.save(tmp_path / "stats.json")
    loaded = Normalizer.load(tmp_path / "stats.json")
    np.testing.assert_array_equal(loaded.mean, normalizer.mean)
    np.testing.assert_array_equal(loaded.std, normalizer.std)
    assert float(normalizer.scale(1.0)[0]) == pytest.approx(float(normalizer.std[0]))
    raw = load_dataset(series_file, input_length=3, horizon=2, normalization="none")
    assert raw.normalizer.mean.tolist() == [0.0] and raw.normalizer.std.tolist() == [1.0]


@pytest.mark.parametrize(
    "values, message",
    [
        ({"mean": [1.0], "std": [0.0]}, "std[0] = 0 is invalid: a standard deviation must be"),
        ({"mean": [1.0, 2.0], "std": [1.0, -2.0]}, "std[1] = -2 is invalid"),
        ({"mean": [1.0], "std": [float("inf")]}, "std[0] = inf is invalid"),
        ({"mean": [1.0], "std": [float("nan")]}, "std[0] = nan is invalid"),
        ({"mean": [float("nan")], "std": [1.0]}, "mean holds values that are not finite"),
        ({"mean": [1.0, 2.0], "std": [1.0]}, "mean of shape (2,) and std of shape (1,) do not fit"),
        ({"mean": [1.0], "std": []}, "mean of shape (1,) and std of shape (0,) do not fit"),
    ],
    ids=["std-zero", "std-negative", "std-infinite", "std-nan", "mean-nan", "shapes", "std-empty"],
)  # fmt: skip
def test_statistics_that_give_no_forecast_are_refused(values, message):
    """A run's normalization.json as stconv never writes it (`Normalizer.fit`
    makes every std positive and finite): refused when read."""
    with pytest.raises(ValueError) as raised:
        Normalizer.from_dict(values)
    assert message in str(raised.value)
    Normalizer.from_dict({"mean": np.zeros((2, 3, 1)).tolist(), "std": [2.0]})  # per cell


def test_per_cell_normalization(series_file):
    dataset = load_dataset(series_file, input_length=3, horizon=2, normalization="cell")
    normalizer = dataset.normalizer
    # Cell (i, j) over train frames t < 18: mean 100 * 8.5 + 10 i + j; anomalies 100 (t - 8.5).
    assert normalizer.mean.shape == (4, 5, 1)
    np.testing.assert_allclose(normalizer.mean[2, 3, 0], 850 + 23, rtol=1e-6)
    np.testing.assert_allclose(normalizer.std, [100 * np.std(np.arange(18))], rtol=1e-5)
    # The climatology (each cell's mean: 18 days, less than a year) is 0 as anomalies.
    assert dataset.climatology.kind == "annual"
    normalized = normalizer.normalize(dataset.climatology.values[0])
    np.testing.assert_allclose(normalized, 0.0, atol=1e-5)
    example = dataset.splits["train"][0]  # frames 0, 1, 2: anomalies -8.5, -7.5, -6.5 (x 100)
    expected = (np.arange(3) - 8.5) / np.std(np.arange(18))
    np.testing.assert_allclose(example["inputs"][:, 1, 4, 0], expected, rtol=1e-5)
    x = np.random.default_rng(0).normal(900, 50, (2, 3, 4, 5, 1)).astype(np.float32)
    np.testing.assert_allclose(normalizer.denormalize(normalizer.normalize(x)), x, rtol=1e-5)
    with pytest.raises(DataError, match=r"normalization='zscore' is invalid: choose from"):
        load_dataset(series_file, normalization="zscore")


def warm_field(dtype, steps: int = 300, cells: int = 16) -> xr.DataArray:
    """Daily temperatures of about 300 K on ``cells`` x ``cells``, one NaN, as ``dtype``."""
    rng = np.random.default_rng(0)
    values = (300 + 10 * rng.standard_normal((steps, cells, cells, 1))).astype(dtype)
    values[5, 2, 3, 0] = np.nan
    time = pd.date_range("2001-01-01", periods=steps)
    return xr.DataArray(values, dims=("time", "lat", "lon", "channel"), coords={"time": time})


@pytest.mark.parametrize("normalization", ["channel", "cell", "climatology"])
def test_float16_statistics_are_summed_in_float64(normalization):
    """300 steps of about 300 K: sums beyond float16's largest value, 65504."""
    fitted = {
        dtype: training_statistics(warm_field(dtype), normalization, None, source="f.nc")
        for dtype in (np.float16, np.float64)
    }
    (half, mask, climatology), (full, _, full_climatology) = fitted.values()
    assert climatology.kind == "annual"  # less than a year: each cell's mean
    np.testing.assert_allclose(climatology.values, full_climatology.values, rtol=1e-3)
    np.testing.assert_allclose(half.mean, full.mean, rtol=1e-3)
    np.testing.assert_allclose(half.std, full.std, rtol=1e-3)
    assert mask.all() and np.isfinite(half.std).all()


def test_a_float16_store_trains(tmp_path, capsys):
    """netCDF has no float16 (netCDF4 refuses 'f2'); a zarr store keeps it."""
    field = warm_field(np.float16, steps=40, cells=8).isel(channel=0, drop=True)
    dataset = field.assign_attrs(units="K").to_dataset(name="tas")
    dataset = dataset.assign_coords(lat=np.linspace(-10, 10, 8), lon=np.linspace(0, 40, 8))
    dataset.to_zarr(tmp_path / "tas.zarr")
    argv = ["train", "--workdir", str(tmp_path / "run"), "--dataset", str(tmp_path / "tas.zarr")]
    argv += ["--num-layers", "1", "--hidden-dim", "2", "--kernel-size", "3", "--batch-size", "16"]
    argv += [
        "--forecast-samples",
        "0",
        "--no-maps",
        "--epochs",
        "1",
        "--input-length",
        "3",
        "--horizon",
        "2",
    ]
    assert cli.main(argv) == 0, capsys.readouterr().err
    statistics = json.loads((tmp_path / "run" / "normalization.json").read_text())
    np.testing.assert_allclose(statistics["mean"], [300.0], rtol=1e-2)


@pytest.mark.parametrize("per_cell", [False, True])
def test_statistics_read_in_blocks_are_those_of_the_whole(monkeypatch, per_cell):
    field = warm_field(np.float32, steps=50, cells=6)
    values = field.values.astype(np.float64)
    center = np.nanmean(values, axis=0) if per_cell else np.nanmean(values, axis=(0, 1, 2))
    whole = Normalizer.fit(field, per_cell=per_cell)
    monkeypatch.setattr(blocks, "BLOCK_VALUES", 100)  # 2 frames a block
    for given in (field, field.chunk(time=7)):  # dask: chunk by chunk
        fitted = Normalizer.fit(given, per_cell=per_cell)
        np.testing.assert_allclose(fitted.mean, whole.mean, rtol=1e-6)
        np.testing.assert_allclose(fitted.mean, center, rtol=1e-6)
        np.testing.assert_allclose(fitted.std, np.nanstd(values - center), rtol=1e-5)
