"""Checks of data where it is opened: numbers, units, regular times, finite values, whole frames."""

import cftime
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from conftest import time_series_dataset

from stconv import cli
from stconv.data.checks import (
    check_numeric,
    check_times,
    check_values,
    first_irregular_step,
)
from stconv.data.climatology import time_kind
from stconv.data.errors import DataError
from stconv.data.features import YEAR_FEATURES, calendar_names

TINY = [
    "--num-layers", "1", "--hidden-dim", "2", "--kernel-size", "3", "--batch-size", "16",
    "--forecast-samples", "0", "--no-maps", "--epochs", "1", "--input-length", "3",
    "--horizon", "2",
]  # fmt: skip


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


def mid_period(freq: str, periods: int) -> pd.DatetimeIndex:
    """CF means stamped in the middle of each period: the 16th at 12:00, the 15th at 00:00..."""
    starts = pd.date_range("2000-01-01", periods=periods + 1, freq=freq)
    return starts[:-1] + (starts[1:] - starts[:-1]) / 2


def alternating_hours(freq: str, periods: int, start: str = "1950-07-01") -> pd.DatetimeIndex:
    """Stamps at 00:00 and 12:00 in turn (eofs' annual means), one each ``freq``."""
    hours = pd.to_timedelta(np.arange(periods) % 2 * 12, "h")
    return pd.date_range(start, periods=periods, freq=freq) + hours


# The 15th at 00:00 and the 16th at 12:00 in turn, on the 360-day calendar.
MONTHS_360 = [
    cftime.Datetime360Day(2000 + m // 12, m % 12 + 1, 15 + m % 2, 12 * (m % 2)) for m in range(30)
]
SIX_HOURLY = pd.date_range("2000-01-01", periods=40, freq="6h")


@pytest.mark.parametrize(
    "values",
    [
        mid_period("MS", 40),
        mid_period("QS-DEC", 20),
        alternating_hours("YS-JUL", 30),
        alternating_hours("D", 41),
        MONTHS_360,
    ],
    ids=["monthly-mid-month", "seasonal", "annual-00-12", "daily-00-12", "360-day-15th-16th"],
)
def test_stamps_that_jitter_within_a_step_are_regular(values):
    check_times(times(values), "f.nc")
    assert first_irregular_step(times(values)) is None


@pytest.mark.parametrize(
    "values, first",
    [
        (mid_period("MS", 40).delete(17), 17),  # a month missing
        (alternating_hours("YS-JUL", 30).delete(10), 10),  # a year missing
        (alternating_hours("D", 41).insert(6, pd.Timestamp("1950-07-06 18:00")), 6),  # a day twice
        (MONTHS_360[:20] + MONTHS_360[21:], 20),
        (SIX_HOURLY.delete(17), 17),  # sub-daily: the exact check
        (SIX_HOURLY.delete(9).insert(9, "2000-01-03 07:00"), 9),
    ],
    ids=["monthly-gap", "annual-gap", "daily-twice", "360-gap", "6-hourly-gap", "6-hourly-shift"],
)  # fmt: skip
def test_a_jittering_series_still_refuses_a_gap_or_two_stamps_in_a_step(values, first):
    assert first_irregular_step(times(values)) == first
    with pytest.raises(DataError, match=f"'f.nc': time is not regular at index {first} "):
        check_times(times(values), "f.nc")


def test_daily_stamps_that_jitter_make_a_daily_climatology_and_calendar():
    """At 12:00 and 00:00 in turn, from 12:00: a median step of 12 hours as stamped."""
    hours = pd.to_timedelta(np.arange(1, 43) % 2 * 12, "h")
    values = pd.date_range("2000-01-01", periods=42) + hours
    assert time_kind(values.values) == "daily"
    assert calendar_names(times(values), "f.nc") == YEAR_FEATURES
    assert time_kind(pd.date_range("2000-01-01", periods=41, freq="12h").values) == "subdaily"


@pytest.mark.parametrize(
    "stamps, flags",
    [
        (mid_period("MS", 40), ["--time-features", "--normalization", "climatology"]),
        (alternating_hours("YS-JUL", 40), []),
    ],
    ids=["monthly-mid-month", "annual-00-12"],
)
def test_a_run_trains_on_stamps_that_jitter(tmp_path, capsys, stamps, flags):
    path = tmp_path / "means.nc"
    time_series_dataset(num_steps=40).assign_coords(time=stamps).to_netcdf(path)
    argv = ["train", "--workdir", str(tmp_path / "run"), "--dataset", str(path), *TINY, *flags]
    assert cli.main(argv) == 0, capsys.readouterr().err


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
