"""Checks of data where it is opened: numbers, units, regular times, finite values, whole frames."""

import cftime
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from stconv.data.checks import (
    check_numeric,
    check_times,
    check_values,
    first_irregular_step,
)
from stconv.data.errors import DataError


def times(values) -> xr.DataArray:
    return xr.DataArray(values, dims="time")


@pytest.mark.parametrize(
    "values",
    [
        pd.date_range("2000-01-01", periods=30, freq="MS"),  # months of 28 to 31 days
        pd.date_range("2000-01-01", periods=30, freq="6h"),
        [cftime.Datetime360Day(1860 + y, 6, 1) for y in range(12)],  # the embedded file
        np.arange(0.0, 3.0, 0.25),
        pd.date_range("2000-01-01", periods=2, freq="D"),
    ],
    ids=["monthly", "6-hourly", "yearly-360-day", "numeric", "two-steps"],
)
def test_regular_times_pass(values):
    check_times(times(values), "f.nc")
    assert first_irregular_step(times(values)) is None


@pytest.mark.parametrize("missing", [2, 3, 17, 28])
def test_the_first_gap_is_found_wherever_it_is(missing):
    values = pd.date_range("2000-01-01", periods=30, freq="MS").delete(missing)
    assert first_irregular_step(times(values)) == missing
    with pytest.raises(DataError, match=f"'f.nc': time is not regular at index {missing} "):
        check_times(times(values), "f.nc")
    check_times(times(values), "f.nc", regular=False)  # still increasing


def test_numeric_times_with_a_gap_and_duplicates_are_named():
    assert first_irregular_step(times(np.array([0, 1, 2, 4, 5]))) == 3
    with pytest.raises(DataError, match=r"time is duplicated at index 2 \(2000-01-02 00:00:00\)"):
        check_times(times(pd.DatetimeIndex(["2000-01-01", "2000-01-02", "2000-01-02"])), "f")


def test_numeric_check():
    check_numeric(xr.DataArray(np.arange(3)), "n", "f.nc")
    with pytest.raises(DataError, match="variable 'b' holds bool values"):
        check_numeric(xr.DataArray(np.ones(3, bool)), "b", "f.nc")


def field(values: np.ndarray) -> xr.DataArray:
    """``(time, lat, lon, channel)`` with daily times and channels ``a``, ``b``."""
    return xr.DataArray(
        values,
        dims=("time", "lat", "lon", "channel"),
        coords={"time": pd.date_range("2000-01-01", periods=len(values)), "channel": ["a", "b"]},
    )


def test_check_values_names_the_first_infinite_value_and_whole_missing_frame():
    values = np.ones((6, 3, 4, 2))
    mask = np.ones((3, 4, 2), bool)
    mask[0, 0, 1] = False
    values[1:, 0, 0, 1] = np.inf  # outside the mask, but infinity is never data
    values[4, 2, 3, 0] = -np.inf
    with pytest.raises(
        DataError, match=r"'f.nc': variable 'b' is infinite at time 2000-01-02 00:00:00 \(index 1\)"
    ):
        check_values(field(values), mask, "f.nc")
    values[:, 0, 0, 1] = np.nan
    with pytest.raises(DataError, match=r"'a' is infinite at time 2000-01-05 .* \(in 1 of its"):
        check_values(field(values), mask, "f.nc")
    values[4, 2, 3, 0] = 1.0
    values[3, 1:, :, 1] = np.nan  # all of b's valid cells but one
    check_values(field(values), mask, "f.nc")  # partly missing frames are masked, not refused
    values[3, 0, 1:, 1] = np.nan  # now every valid cell of b at time 3
    with pytest.raises(DataError, match=r"'b' is missing in every valid cell at time 2000-01-04"):
        check_values(field(values), mask, "f.nc")


def test_check_values_names_samples_of_the_paper_files():
    x = xr.DataArray(np.ones((4, 3, 2, 2, 1)), dims=("sample", "time", "lat", "lon", "channel"))
    x[2, 1] = np.nan
    with pytest.raises(
        DataError, match=r"'channel 0' is missing .* at sample index 2, time index 1"
    ):
        check_values(x, np.ones((2, 2, 1), bool), "cfsr.nc (x)")
