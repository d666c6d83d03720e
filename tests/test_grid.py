"""The Grid value: read from a field, cut to the targets, written to data.json and back."""

import numpy as np
import pytest
import xarray as xr

from stconv.data.grid import Grid


def field(**coords) -> xr.DataArray:
    """A field of two variables on 2 x 3 cells."""
    return xr.DataArray(
        np.zeros((4, 2, 3, 2), np.float32),
        dims=("time", "lat", "lon", "channel"),
        coords={"channel": ["t2m", "u10"], **coords},
        attrs={"dims": {"time": "valid_time", "lat": "latitude", "lon": "longitude"}},
    )


def test_the_grid_of_a_field_and_of_its_targets():
    attrs = {
        "units": ("channel", ["K", "m s-1"]),
        "long_name": ("channel", ["2 metre temperature", ""]),
        "standard_name": ("channel", ["air_temperature", "eastward_wind"]),
    }
    grid = Grid.of(field(lat=[60.0, 50.0], lon=[0.0, 1.0, 2.0], **attrs))
    assert grid.channels == ("t2m", "u10") and grid.units == ("K", "m s-1")
    assert grid.shape == (2, 3) and grid.geographic
    np.testing.assert_array_equal(grid.latitudes, [60.0, 50.0])
    assert (grid.dim("lat"), grid.dim("lon"), grid.dim("time")) == (
        "latitude",
        "longitude",
        "valid_time",
    )
    assert grid.attrs(0) == {
        "units": "K",
        "long_name": "2 metre temperature",
        "standard_name": "air_temperature",
    }
    assert grid.attrs(1) == {"units": "m s-1", "standard_name": "eastward_wind"}  # no long_name
    targets = grid.first(1).in_units(["degC", "m/s"])
    assert targets.channels == ("t2m",) and targets.units == ("degC",)
    assert targets.standard_names == ("air_temperature",) and grid.units == ("K", "m s-1")


def test_a_field_without_coordinates_has_row_indices_and_no_latitudes():
    """The paper's files: rows and columns by index, no attributes."""
    grid = Grid.of(field())
    np.testing.assert_array_equal(grid.lat, [0, 1])
    assert not grid.geographic and grid.latitudes is None
    assert grid.units == ("", "") and grid.attrs(0) == {"units": ""}


def test_the_description_is_data_json_and_reads_back():
    grid = Grid(np.array([1.5, 2.5]), np.arange(3.0), ("tas",), ("K",), geographic=False)
    description = grid.description()
    assert description == {
        "variables": ["tas"], "units": ["K"], "long_name": [""], "standard_name": [""],
        "lat": [1.5, 2.5], "lon": [0.0, 1.0, 2.0], "geographic": False, "rotated": False,
        "dims": {"time": "time", "lat": "lat", "lon": "lon"},
    }  # fmt: skip
    assert Grid.from_description(description).description() == description


def test_attributes_are_one_per_channel():
    with pytest.raises(
        ValueError, match=r"grid units=\('K',\) is invalid: give one per channel \(2"
    ):
        Grid(np.zeros(1), np.zeros(1), ("tas", "pr"), ("K",))
