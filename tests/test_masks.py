"""Masks: cells NaN throughout training, and land-mask files."""

import numpy as np
import pytest
import xarray as xr
from conftest import time_series_dataset

from stconv.data.errors import DataError
from stconv.data.masks import load_mask_file
from stconv.data.registry import load_dataset


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
