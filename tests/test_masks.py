"""Masks: cells NaN throughout training, and land-mask files."""

import numpy as np
import pytest
import xarray as xr
from conftest import time_series_dataset

from stconv.data.errors import DataError
from stconv.data.grid import Grid
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


def grid_of(rows: int, columns: int) -> Grid:
    return Grid(lat=np.arange(rows, dtype=float), lon=np.arange(columns, dtype=float))


def test_mask_files(tmp_path):
    land = np.ones((4, 5))
    land[:2] = 0
    np.save(tmp_path / "mask.npy", land)
    xr.Dataset({"land": (("lat", "lon"), land)}).to_netcdf(tmp_path / "mask.nc")
    for name in ("mask.npy", "mask.nc"):
        mask = load_mask_file(str(tmp_path / name), grid_of(4, 5), 2)
        assert mask.shape == (4, 5, 2) and mask.sum() == 2 * 2 * 5
    with pytest.raises(DataError, match=r"mask file .*mask.npy.* must be \(lat, lon\) = \(3, 5\)"):
        load_mask_file(str(tmp_path / "mask.npy"), grid_of(3, 5), 1)
    (tmp_path / "broken.nc").write_bytes(b"not netCDF")
    with pytest.raises(DataError, match=r"file '.*broken.nc' could not be opened"):
        load_mask_file(str(tmp_path / "broken.nc"), grid_of(4, 5), 1)
    # ERA5's lsm holds the land's share of each cell: a coast's 0.2 is mostly sea.
    shares = np.array([[0.0, 0.2, 0.5, 0.8, 1.0]] * 4)
    xr.Dataset({"lsm": (("lat", "lon"), shares)}).to_netcdf(tmp_path / "lsm.nc")
    mask = load_mask_file(str(tmp_path / "lsm.nc"), grid_of(4, 5), 1)[..., 0]
    np.testing.assert_array_equal(mask[0], [False, False, True, True, True])


def test_a_land_sea_mask_as_era5_gives_it_is_taken_by_coordinates(tmp_path):
    """ERA5's ``lsm``: north to south, longitudes 0..360, one time step, a wider
    grid than the data's, beside the geopotential; the data are south to north
    over -20..20 east. Its cells are taken by latitude and longitude."""
    lat, lon = np.arange(30.0, -31.0, -10.0), np.arange(0.0, 360.0, 10.0)
    land = (np.abs(lat)[:, None] < 15) & (
        (lon[None] < 15) | (lon[None] > 345)
    )  # 10S..10N, 10W..10E
    invariants = xr.Dataset(
        {
            "z": (("valid_time", "latitude", "longitude"), np.full((1, 7, 36), 100.0)),
            "lsm": (("valid_time", "latitude", "longitude"), land[None].astype(float)),
        },
        coords={"valid_time": [np.datetime64("1940-01-01")], "latitude": lat, "longitude": lon},
    )
    invariants.to_netcdf(tmp_path / "invariants.nc")
    invariants[["lsm"]].to_netcdf(tmp_path / "lsm.nc")
    grid = Grid(lat=np.arange(-20.0, 21.0, 10.0), lon=np.arange(-20.0, 21.0, 10.0))
    mask = load_mask_file(str(tmp_path / "lsm.nc"), grid, 1)[..., 0]
    expected = (np.abs(grid.lat)[:, None] < 15) & (np.abs(grid.lon)[None] < 15)
    np.testing.assert_array_equal(mask, expected)
    with pytest.raises(DataError, match=r"invariants.nc' holds 2 gridded variables \['z', 'lsm'\]"):
        load_mask_file(str(tmp_path / "invariants.nc"), grid, 1)
    wide = Grid(lat=np.arange(-40.0, 41.0, 10.0), lon=grid.lon)
    with pytest.raises(DataError, match=r"lsm.nc' does not hold every cell of the data's grid"):
        load_mask_file(str(tmp_path / "lsm.nc"), wide, 1)
