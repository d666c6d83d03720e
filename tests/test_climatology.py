"""Climatologies by time of year: slots per calendar, smoothing, refusals."""

import json
import warnings

import cftime
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from stconv.data.climatology import Climatology, fit_climatology, time_kind
from stconv.data.errors import DataError


def field(times, values, lat=2, lon=3, channels=("tas",)):
    """``values`` (one per time) repeated over a ``lat x lon`` grid and ``channels``."""
    values = np.asarray(values, np.float32)[:, None, None, None]
    data = values + np.zeros((1, lat, lon, len(channels)), np.float32)
    coords = {"time": np.asarray(times), "channel": list(channels)}
    return xr.DataArray(data, dims=("time", "lat", "lon", "channel"), coords=coords)


def days(start, periods, calendar="standard", freq="D"):
    """Dates as numpy datetime64 (standard) or cftime objects (other calendars)."""
    if calendar == "standard":
        return pd.date_range(start, periods=periods, freq=freq).values
    return np.asarray(xr.date_range(start, periods=periods, freq=freq, calendar=calendar))


def year_and_day(times):
    """The value ``1000 * (year - 2000) + day of year`` (1-based, as the calendar counts)."""
    if np.issubdtype(times.dtype, np.datetime64):
        index = pd.DatetimeIndex(times)
        return 1000.0 * (index.year - 2000) + index.day_of_year
    return np.array([1000.0 * (t.year - 2000) + t.dayofyr for t in times])


def test_standard_calendar_day_of_year_with_29_february():
    times = days("2003-01-01", 365 + 366 + 365)  # 2003, 2004 (leap), 2005
    train = field(times, year_and_day(times))
    raw = fit_climatology(train, window=1).values[:, 0, 0, 0]
    assert raw.shape == (366,)
    assert raw[0] == pytest.approx((3001 + 4001 + 5001) / 3)
    assert raw[58] == pytest.approx((3059 + 4059 + 5059) / 3)  # 28 February
    assert raw[59] == pytest.approx(4060)  # 29 February: 2004 only
    assert raw[60] == pytest.approx((3060 + 4061 + 5060) / 3)  # 1 March
    assert raw[365] == pytest.approx((3365 + 4366 + 5365) / 3)  # 31 December
    smooth = fit_climatology(train, window=3)
    assert (smooth.describe(), smooth.window) == ("by day of year, smoothed over 3 days", 3)
    values = smooth.values[:, 1, 2, 0]
    assert values[59] == pytest.approx((raw[58] + raw[59] + raw[60]) / 3)
    assert values[0] == pytest.approx((raw[365] + raw[0] + raw[1]) / 3)  # wraps to 31 Dec
    assert values[365] == pytest.approx((raw[364] + raw[365] + raw[0]) / 3)


def test_29_february_without_a_leap_year_comes_from_the_smoothing():
    times = days("2001-01-01", 2 * 365)
    train = field(times, year_and_day(times))
    values = fit_climatology(train, window=3).values[:, 0, 0, 0]
    # 28 February is day 59 and 1 March day 60 in both years (means 1559, 1560).
    assert values[59] == pytest.approx((1559 + 1560) / 2)
    with pytest.raises(DataError, match=r"29 February.*climatology_window"):
        fit_climatology(train, window=1, source="short.nc")


@pytest.mark.parametrize(
    ("calendar", "slots", "last", "last_mean"),
    [("noleap", 365, 364, 1365), ("360_day", 360, 359, 1360)],
)
def test_cftime_calendars_day_of_year(calendar, slots, last, last_mean):
    times = days("2001-01-01", 2 * slots, calendar)
    train = field(times, year_and_day(times))
    climatology = fit_climatology(train, window=1)
    assert climatology.calendar == calendar
    values = climatology.values[:, 0, 0, 0]
    assert values.shape == (slots,)
    assert values[0] == pytest.approx(1501)
    assert values[59] == pytest.approx(1560)  # 1 March (noleap), 30 February (360_day)
    assert values[last] == pytest.approx(last_mean + 500)
    smooth = fit_climatology(train, window=3).values[:, 0, 0, 0]
    assert smooth[0] == pytest.approx((values[last] + values[0] + values[1]) / 3)


def test_index_of_day_of_year_slots():
    standard = Climatology("daily", np.zeros((366, 1, 1, 1), np.float32), "standard")
    dates = ["2001-03-01", "2004-03-01", "2004-02-29", "2001-12-31", "2004-12-31", "2001-01-01"]
    times = np.array(dates, "datetime64[ns]")
    assert standard.index(times).tolist() == [60, 60, 59, 365, 365, 0]
    grid = xr.DataArray(times.reshape(2, 3), dims=("a", "b"))
    assert standard.index(grid).tolist() == [[60, 60, 59], [365, 365, 0]]
    noleap = Climatology("daily", np.zeros((365, 1, 1, 1), np.float32), "noleap")
    times = np.array([cftime.DatetimeNoLeap(2001, 12, 31), cftime.DatetimeNoLeap(2001, 3, 1)])
    assert noleap.index(times).tolist() == [364, 59]
    day360 = Climatology("daily", np.zeros((360, 1, 1, 1), np.float32), "360_day")
    assert day360.index(np.array([cftime.Datetime360Day(2001, 12, 30)])).tolist() == [359]
    with pytest.raises(DataError, match=r"noleap"):
        standard.index(times)  # fitted on another calendar


def test_subdaily_by_day_of_year_and_hour_of_day():
    times = days("2001-01-01", 4 * 365, freq="6h")
    index = pd.DatetimeIndex(times)
    train = field(times, 100.0 * index.day_of_year + index.hour)
    climatology = fit_climatology(train, window=3, source="era.nc")
    assert (climatology.kind, climatology.hours) == ("subdaily", (0, 6, 12, 18))
    assert climatology.values.shape == (366 * 4, 2, 3, 1)
    assert climatology.describe() == "by day of year and hour of day, smoothed over 3 days"
    query = np.array(["2002-01-11T06", "2002-01-11T12", "2004-03-01T18"], "datetime64[ns]")
    assert climatology.index(query).tolist() == [10 * 4 + 1, 10 * 4 + 2, 60 * 4 + 3]
    at = climatology.at(query)
    assert at.shape == (3, 2, 3, 1)
    np.testing.assert_allclose(at[:2, 1, 1, 0], [1106, 1112], rtol=1e-6)  # days 10, 11, 12
    assert climatology.at(np.array(["2004-02-29"], "datetime64[ns]"))[0, 0, 0, 0] == (
        pytest.approx((5900 + 6000) / 2)
    )
    with pytest.raises(DataError, match=r"hour 3 .*\(0, 6, 12, 18\)"):
        climatology.index(np.array(["2002-01-11T03"], "datetime64[ns]"))


def test_monthly_and_annual_climatologies():
    months = pd.date_range("2001-01-01", periods=24, freq="MS")
    train = field(months.values, 10.0 * (months.year - 2000) + months.month)
    monthly = fit_climatology(train)
    assert (monthly.kind, monthly.window, monthly.describe()) == ("monthly", 1, "by calendar month")
    np.testing.assert_allclose(monthly.values[:, 0, 0, 0], 15.0 + np.arange(1, 13))
    assert monthly.at(np.array(["2010-07-15"], "datetime64[ns]"))[0, 0, 0, 0] == 22.0
    rng = np.random.default_rng(0)
    years = pd.date_range("2001-01-01", periods=10, freq="YS").values
    annual_train = field(years, np.zeros(10), channels=("tas", "pr")) + rng.normal(
        size=(10, 2, 3, 2)
    )
    annual_train = annual_train.astype(np.float32)
    annual_train[3, 0, 0, 0] = np.nan
    annual = fit_climatology(annual_train)
    assert (annual.kind, annual.calendar, annual.values.dtype) == ("annual", "", np.float32)
    expected = annual_train.mean("time", skipna=True, dtype=np.float64)  # summed in float64
    expected = expected.transpose("lat", "lon", "channel").values.astype(np.float32)
    np.testing.assert_array_equal(annual.values[0], expected)
    np.testing.assert_array_equal(annual.at(None), expected)
    assert annual.index(np.arange(4.0)).tolist() == [0, 0, 0, 0]
    numbers = annual_train.assign_coords(time=np.arange(10.0))
    assert fit_climatology(numbers).kind == "annual"


def test_time_kind():
    assert time_kind(pd.date_range("2001-01-01", periods=5, freq="YS").values) == "annual"
    assert time_kind(pd.date_range("2001-01-01", periods=5, freq="MS").values) == "monthly"
    assert time_kind(pd.date_range("2001-01-01", periods=5, freq="D").values) == "daily"
    assert time_kind(days("2001-01-01", 5, "noleap")) == "daily"
    assert time_kind(pd.date_range("2001-01-01", periods=5, freq="6h").values) == "subdaily"
    assert time_kind(np.arange(5.0)) == "annual"
    assert time_kind(np.array(["2001-01-01"], "datetime64[ns]")) == "annual"


def test_refusals():
    times = days("2001-01-01", 200)
    with pytest.raises(DataError, match=r"short.nc.*200 days.*one full year"):
        fit_climatology(field(times, np.ones(200)), source="short.nc")
    months = pd.date_range("2001-01-01", periods=6, freq="MS").values
    with pytest.raises(DataError, match=r"short.nc.*6 months.*one full year"):
        fit_climatology(field(months, np.ones(6)), source="short.nc")
    year = field(days("2001-01-01", 365), np.ones(365))
    for window in (0, 2, -1, 3.0, True):
        with pytest.raises(DataError, match=r"climatology_window"):
            fit_climatology(year, window=window)
    with pytest.raises(DataError, match=r"climatology_window.*365"):
        fit_climatology(field(days("2001-01-01", 365, "noleap"), np.ones(365)), window=367)
    six_hours = pd.date_range("2001-01-01", periods=4 * 366, freq="6h")
    no_evening = six_hours[six_hours.hour != 18].values
    with pytest.raises(DataError, match=r"odd.nc.*\(0, 6, 12\) are not regular"):
        fit_climatology(field(no_evening, np.ones(len(no_evening))), source="odd.nc")


def test_unknown_calendar_is_refused():
    times = np.array([cftime.datetime(2001, 1, d, calendar="") for d in (1, 2, 3)])
    with pytest.raises(DataError, match=r"odd.nc.*'' calendar.*noleap"):
        fit_climatology(field(times, np.ones(3)), source="odd.nc")
    climatology = Climatology("daily", np.zeros((365, 1, 1, 1), np.float32), "noleap")
    with pytest.raises(DataError, match=r"calendar"):
        climatology.index(times)


def test_nan_cells():
    times = days("2001-01-01", 2 * 365)
    train = field(times, year_and_day(times))
    train[:, 0, 0, 0] = np.nan  # never has data
    train[::2, 0, 1, 0] = np.nan  # has data every other day
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        climatology = fit_climatology(train, window=3)
        annual = fit_climatology(train.isel(time=slice(0, 730, 365)))
    assert np.isnan(climatology.values[:, 0, 0, 0]).all()
    assert np.isfinite(climatology.values[:, 0, 1, 0]).all()
    np.testing.assert_allclose(climatology.values[:, 1, 1, 0], climatology.values[:, 1, 2, 0])
    assert annual.kind == "annual" and np.isnan(annual.values[0, 0, 0, 0])
    summer = train.copy()
    summer[:, 1, 2, 0] = summer[:, 1, 2, 0].where(pd.DatetimeIndex(times).month == 7)
    with pytest.raises(DataError, match=r"gaps.nc.*no value for .* cell \(lat 1, lon 2\)"):
        fit_climatology(summer, window=3, source="gaps.nc")


def test_dask_backed_training_split_gives_the_same_climatology():
    times = days("2001-01-01", 2 * 365)
    train = field(times, year_and_day(times))
    lazy = fit_climatology(train.chunk({"time": 100}), window=5)
    np.testing.assert_array_equal(lazy.values, fit_climatology(train, window=5).values)


def test_round_trip_and_first_channels():
    months = pd.date_range("2001-01-01", periods=12, freq="MS")
    train = field(months.values, months.month, channels=("tas", "pr"))
    climatology = fit_climatology(train)
    meta = json.loads(json.dumps(climatology.to_dict()))
    assert meta == {
        "kind": "monthly",
        "calendar": "standard",
        "window": 1,
        "hours": [],
        "description": "by calendar month",
    }
    loaded = Climatology.from_dict(meta, climatology.values)
    assert (loaded.kind, loaded.calendar, loaded.window, loaded.hours) == (
        "monthly", "standard", 1, ()
    )  # fmt: skip
    np.testing.assert_array_equal(loaded.values, climatology.values)
    first = loaded.first(1)
    assert first.values.shape == (12, 2, 3, 1) and first.kind == "monthly"
    with pytest.raises(DataError, match=r"shape"):
        Climatology.from_dict(meta, climatology.values[:6])
    subdaily = Climatology("subdaily", np.zeros((360 * 2, 1, 1, 1)), "360_day", 61, (0, 12))
    again = Climatology.from_dict(json.loads(json.dumps(subdaily.to_dict())), subdaily.values)
    assert (again.calendar, again.window, again.hours) == ("360_day", 61, (0, 12))


def test_slot_means_agree_with_xarray_groupby():
    times = days("2001-01-01", 3 * 365 + 40, "noleap")
    rng = np.random.default_rng(1)
    train = field(times, np.zeros(len(times))) + rng.normal(size=(len(times), 2, 3, 1))
    gaps = rng.random((len(times), 2, 3, 1)) < 0.3
    gaps[365:730] = False  # every day of the year keeps a value
    train = train.astype(np.float32).where(~gaps)
    climatology = fit_climatology(train, window=1)
    by_day = train.groupby(train["time"].dt.dayofyear).mean("time").transpose("dayofyear", ...)
    np.testing.assert_allclose(climatology.values, by_day.values, rtol=1e-5, atol=1e-6)
