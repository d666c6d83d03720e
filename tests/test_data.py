"""Data: opening fields, windows, splits, normalization, masks, datasets, pipeline."""

import numpy as np
import pytest
import xarray as xr
from conftest import paper_format_dataset, time_series_dataset
from hypothesis import given, settings
from hypothesis import strategies as st

from stconv.data.errors import DataError
from stconv.data.files import open_field
from stconv.data.masks import load_mask_file
from stconv.data.normalization import Normalizer
from stconv.data.registry import load_dataset
from stconv.data.synthetic import synthetic_field, write_synthetic_netcdf
from stconv.data.windows import WindowSpec, paper_split, split_starts, time_segments

# Windows and splits


def test_split_starts_by_hand():
    starts = split_starts(30, WindowSpec(3, 2))
    # time segments [0, 18), [18, 24), [24, 30); windows of 5 frames stay inside.
    assert starts == {"train": range(0, 14), "validation": range(18, 20), "test": range(24, 26)}
    strided = split_starts(30, WindowSpec(3, 2, stride=4))
    assert list(strided["train"]) == [0, 4, 8, 12]


def test_field_windows_read_the_right_frames(series_file):
    dataset = load_dataset(series_file, input_length=3, horizon=2, normalization="none")
    example = dataset.splits["validation"][1]  # the window starting at frame 19
    np.testing.assert_array_equal(example["inputs"][:, 0, 0, 0], [1900, 2000, 2100])
    np.testing.assert_array_equal(example["targets"][:, 2, 3, 0], [2223, 2323])
    assert example["mask"].all()
    assert dataset.splits["test"].init_times()[0] == np.datetime64("2001-01-27")


@settings(max_examples=60, deadline=None)
@given(
    num_steps=st.integers(30, 400),
    input_length=st.integers(1, 6),
    horizon=st.integers(1, 6),
    stride=st.integers(1, 4),
    train=st.floats(0.3, 0.8),
)
def test_split_invariants(num_steps, input_length, horizon, stride, train):
    fractions = (train, (1 - train) / 2, (1 - train) / 2)
    spec = WindowSpec(input_length, horizon, stride)
    try:
        starts = split_starts(num_steps, spec, fractions)
    except DataError as error:
        assert "too few" in str(error)
        return
    segments = time_segments(num_steps, fractions)
    frames = {}
    for split, (start, stop) in segments.items():
        expected = (stop - start - spec.length) // stride + 1
        assert len(starts[split]) == expected
        assert list(starts[split]) == sorted(starts[split])
        frames[split] = {f for s in starts[split] for f in range(s, s + spec.length)}
        assert all(start <= f < stop for f in frames[split])
    # No frame, and so no target frame, is seen by two splits; splits are in time order.
    assert not frames["train"] & frames["validation"]
    assert not frames["validation"] & frames["test"]
    assert not frames["train"] & frames["test"]
    assert max(frames["train"]) < min(frames["validation"]) <= max(frames["validation"])
    assert max(frames["validation"]) < min(frames["test"])


def test_paper_split_reproduces_the_reference():
    # CFSR: int(54047 * 0.8) = 43237 test start; int(43237 * 0.75) = 32427 validation start.
    cfsr = paper_split(54047)
    assert (cfsr["validation"].start, cfsr["test"].start) == (32427, 43237)
    chirps = paper_split(13960)  # int(13960 * 0.8) = 11168; int(11168 * 0.75) = 8376
    assert (chirps["validation"].start, chirps["test"].start) == (8376, 11168)
    assert chirps["test"].stop == 13960


def test_paper_format_loader(tmp_path):
    path = tmp_path / "dataset-ucar-1979-2015-seq5-ystep15.nc"
    paper_format_dataset().to_netcdf(path)
    dataset = load_dataset("cfsr", path=str(path), input_length=5, horizon=15, normalization="none")
    # paper_split(20): test from int(16.0) = 16, validation from int(16 * 0.75) = 12.
    assert [len(dataset.splits[s]) for s in ("train", "validation", "test")] == [12, 4, 4]
    example = dataset.splits["test"][1]  # sample 17
    assert example["inputs"].shape == (5, 4, 5, 1) and example["targets"].shape == (15, 4, 5, 1)
    np.testing.assert_allclose(example["inputs"][:, 0, 0, 0], 17 + np.arange(5) / 100, rtol=1e-6)
    np.testing.assert_allclose(example["targets"][:, 0, 0, 0], -(17 + np.arange(15) / 100))
    # A path in the paper's format is recognised without the name.
    assert len(load_dataset(str(path), input_length=5, horizon=15).splits["train"]) == 12


# Normalization and masks


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


def test_per_cell_normalization(series_file):
    dataset = load_dataset(series_file, input_length=3, horizon=2, normalization="cell")
    normalizer = dataset.normalizer
    # Cell (i, j) over train frames t < 18: mean 100 * 8.5 + 10 i + j; anomalies 100 (t - 8.5).
    assert normalizer.mean.shape == (4, 5, 1)
    np.testing.assert_allclose(normalizer.mean[2, 3, 0], 850 + 23, rtol=1e-6)
    np.testing.assert_allclose(normalizer.std, [100 * np.std(np.arange(18))], rtol=1e-5)
    np.testing.assert_allclose(dataset.climatology, 0.0, atol=1e-5)
    example = dataset.splits["train"][0]  # frames 0, 1, 2: anomalies -8.5, -7.5, -6.5 (x 100)
    expected = (np.arange(3) - 8.5) / np.std(np.arange(18))
    np.testing.assert_allclose(example["inputs"][:, 1, 4, 0], expected, rtol=1e-5)
    x = np.random.default_rng(0).normal(900, 50, (2, 3, 4, 5, 1)).astype(np.float32)
    np.testing.assert_allclose(normalizer.denormalize(normalizer.normalize(x)), x, rtol=1e-5)
    with pytest.raises(DataError, match=r"normalization='zscore' is invalid: choose from"):
        load_dataset(series_file, normalization="zscore")


def test_nan_cells_are_masked(tmp_path):
    data = time_series_dataset()
    data["tas"][:, 0, 0] = np.nan  # an "ocean" cell, NaN at every time
    data["tas"][19, 1, 1] = np.nan  # one missing value
    path = tmp_path / "nan.nc"
    data.to_netcdf(path)
    dataset = load_dataset(str(path), input_length=3, horizon=2)
    assert not dataset.mask[0, 0, 0] and dataset.mask.sum() == 4 * 5 - 1
    example = dataset.splits["validation"][0]  # frames 18..22: frame 19 is an input
    assert np.isfinite(example["inputs"]).all() and example["inputs"][1, 1, 1, 0] == 0.0
    assert not example["mask"][:, 0, 0].any() and example["mask"][:, 1, 1].all()
    later = load_dataset(str(path), input_length=3, horizon=2, fractions=(0.5, 0.3, 0.2))
    window = later.splits["validation"][0]  # frames 15..19: frame 19 is a target
    assert not window["mask"][1, 1, 1, 0] and window["targets"][1, 1, 1, 0] == 0.0
    assert window["mask"][0, 1, 1, 0]


def test_mask_files(tmp_path):
    land = np.ones((4, 5))
    land[:2] = 0
    np.save(tmp_path / "mask.npy", land)
    xr.Dataset({"land": (("lat", "lon"), land)}).to_netcdf(tmp_path / "mask.nc")
    for name in ("mask.npy", "mask.nc"):
        mask = load_mask_file(str(tmp_path / name), (4, 5), 2)
        assert mask.shape == (4, 5, 2) and mask.sum() == 2 * 2 * 5
    with pytest.raises(DataError, match=r"mask file .*mask.npy.* must be \(lat, lon\) = \(3, 5\)"):
        load_mask_file(str(tmp_path / "mask.npy"), (3, 5), 1)


# Opening files


def test_embedded_dataset_loads_with_its_real_shape_and_coordinates():
    dataset = load_dataset("hadcm3-a1b")
    assert dataset.input_shape == (5, 37, 49, 1)
    assert dataset.grid["lat"][0] == 15.0 and dataset.grid["lat"][-1] == 60.0
    assert dataset.grid["lon"][0] == 225.0 and dataset.grid["lon"][-1] == 315.0
    assert dataset.grid["channel"] == ["air_temperature"] and dataset.grid["units"] == "K"
    # 240 years: 144 / 48 / 48 on time, windows of 10 frames.
    assert [len(dataset.splits[s]) for s in ("train", "validation", "test")] == [135, 39, 39]
    assert 280 < float(dataset.normalizer.mean[0]) < 290


def test_open_field_variables_bbox_time_range_and_glob(tmp_path):
    data = time_series_dataset(variables=("tas", "pr"))
    data.isel(time=slice(0, 12)).to_netcdf(tmp_path / "part-1.nc")
    data.isel(time=slice(12, None)).to_netcdf(tmp_path / "part-2.nc")
    field = open_field(str(tmp_path / "part-*.nc"))
    assert field.dims == ("time", "lat", "lon", "channel") and field.shape == (30, 4, 5, 2)
    assert list(field["channel"].values) == ["tas", "pr"]
    np.testing.assert_array_equal(field.values[13, 2, 3], [1323, 2323])
    box = open_field(str(tmp_path / "part-1.nc"), "pr", bbox=(-1, 10, 5, 25))
    assert box.shape == (12, 2, 2, 1)
    np.testing.assert_allclose(box["lat"].values, [10 / 3, 10.0])
    window = open_field([tmp_path / "part-1.nc"], time_range=("2001-01-03", "2001-01-05"))
    assert window.sizes["time"] == 3


def test_dims_from_cf_attributes_and_overrides(tmp_path):
    data = time_series_dataset().rename({"time": "valid_time", "lat": "rlat", "lon": "rlon"})
    data["valid_time"].attrs["axis"] = "T"
    data["rlat"].attrs = {"standard_name": "grid_latitude"}
    data["rlon"].attrs = {"axis": "X"}
    data.to_netcdf(tmp_path / "cf.nc")
    assert open_field(str(tmp_path / "cf.nc")).shape == (30, 4, 5, 1)
    plain = time_series_dataset().rename({"lat": "north", "lon": "east"})
    plain["north"].attrs = {}
    plain["east"].attrs = {}
    plain.to_netcdf(tmp_path / "plain.nc")
    with pytest.raises(DataError, match=r"no lat dimension .* pass dims="):
        open_field(str(tmp_path / "plain.nc"))
    field = open_field(str(tmp_path / "plain.nc"), dims={"lat": "north", "lon": "east"})
    assert field.shape == (30, 4, 5, 1)


def test_zarr_store(tmp_path):
    pytest.importorskip("zarr")
    time_series_dataset().to_zarr(tmp_path / "store.zarr")
    field = open_field(str(tmp_path / "store.zarr"))
    assert field.shape == (30, 4, 5, 1) and float(field[2, 1, 1, 0]) == 211.0
    dataset = load_dataset(str(tmp_path / "store.zarr"), input_length=3, horizon=2)
    assert len(dataset.splits["train"]) == 14


def test_lazy_field_streams_the_same_windows(series_file):
    eager = load_dataset(series_file, input_length=3, horizon=2)
    lazy = load_dataset(series_file, input_length=3, horizon=2, chunks={"time": 4})
    assert lazy.splits["train"].field.chunks is not None
    for index in (0, 7, 13):
        for key in ("inputs", "targets", "mask"):
            np.testing.assert_array_equal(
                lazy.splits["train"][index][key], eager.splits["train"][index][key]
            )


# Synthetic data


def test_synthetic_field_is_seeded_and_moves(tmp_path):
    first = synthetic_field(60, 12, 16, 2, seed=3)
    assert first.shape == (60, 12, 16, 2) and first.attrs["synthetic"] == "yes"
    np.testing.assert_array_equal(first.values, synthetic_field(60, 12, 16, 2, seed=3).values)
    assert not np.allclose(first.values, synthetic_field(60, 12, 16, 2, seed=4).values)
    anomaly = first.values[..., 0] - first.values[..., 0].mean(axis=(1, 2), keepdims=True)
    assert np.abs(anomaly[1] - anomaly[0]).mean() > 0.01  # the pattern changes every step
    path = tmp_path / "synthetic.nc"
    write_synthetic_netcdf(path, 60, 12, 16, seed=3, chunk=7)
    written = open_field(str(path))
    in_memory = synthetic_field(60, 12, 16, 1, seed=3)
    np.testing.assert_allclose(written.values, in_memory.values, rtol=1e-6)


# The input pipeline


# Bad input


@pytest.mark.parametrize(
    "make, kwargs, message",
    [
        (None, {}, r"file '.*missing.nc' does not exist"),
        ("series", {"variables": "tos"}, r"has no gridded variable 'tos': available are \['tas'\]"),
        ("nodims", {}, r"has no time dimension"),
        ("series", {"input_length": 20, "horizon": 15}, r"30 time steps, too few for one window"),
        ("series", {"input_length": 8, "horizon": 5}, r"the validation split has 6 of 30"),
        ("unsorted", {}, r"time is not increasing at index 5"),
        ("duplicated", {}, r"time is duplicated at index 5"),
        (
            "allnan",
            {"input_length": 2, "horizon": 1},
            r"variable 'tas' has no finite value in the training split",
        ),
        ("series", {"fractions": (0.7, 0.2, 0.2)}, r"must sum to 1"),
        ("series", {"fractions": (0.8, 0.2, 0.0)}, r"three numbers in \(0, 1\)"),
        ("series", {"input_length": 0}, r"input_length=0 is invalid"),
        ("series", {"horizon": -1}, r"horizon=-1 is invalid"),
        ("series", {"bbox": (50, 60, 0, 10)}, r"bbox=.* selects no grid cells"),
    ],
)
def test_bad_input_raises_one_line_errors(tmp_path, make, kwargs, message):
    path = tmp_path / "missing.nc"
    if make is not None:
        data = time_series_dataset()
        if make == "nodims":
            data = xr.Dataset({"tas": (("a", "b", "c"), data["tas"].values)})
        elif make in ("unsorted", "duplicated"):
            times = data["time"].values.copy()
            times[5] = times[3] if make == "unsorted" else times[4]
            data = data.assign_coords(time=times)
        elif make == "allnan":
            data["tas"][:] = np.nan
        path = tmp_path / f"{make}.nc"
        data.to_netcdf(path)
    with pytest.raises(DataError, match=message) as error:
        load_dataset(str(path), **kwargs)
    assert "\n" not in str(error.value)


def test_unknown_dataset_and_missing_paper_variables(tmp_path):
    with pytest.raises(DataError, match=r"dataset 'era5' is unknown: choose from \['hadcm3-a1b'"):
        load_dataset("era5")
    with pytest.raises(DataError, match="needs path="):
        load_dataset("chirps")
    time_series_dataset().to_netcdf(tmp_path / "series.nc")
    with pytest.raises(DataError, match=r"has no variable 'x' of the paper's format"):
        load_dataset("chirps", path=str(tmp_path / "series.nc"))
