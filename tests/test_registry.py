"""Datasets by name or path: the embedded data, the paper's files, bad input."""

import numpy as np
import pytest
import xarray as xr
from conftest import paper_format_dataset, time_series_dataset

from stconv.data.errors import DataError
from stconv.data.registry import load_dataset


def test_embedded_dataset_loads_with_its_real_shape_and_coordinates():
    dataset = load_dataset("hadcm3-a1b")
    assert dataset.input_shape == (5, 37, 49, 1)
    assert dataset.grid.lat[0] == 15.0 and dataset.grid.lat[-1] == 60.0
    assert dataset.grid.lon[0] == 225.0 and dataset.grid.lon[-1] == 315.0
    assert dataset.grid.channels == ("air_temperature",) and dataset.grid.units == ("K",)
    # 240 years: 144 / 48 / 48 on time, windows of 10 frames.
    assert [len(dataset.splits[s]) for s in ("train", "validation", "test")] == [135, 39, 39]
    assert 280 < float(dataset.normalizer.mean[0]) < 290


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
