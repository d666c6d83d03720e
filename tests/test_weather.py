"""The synthetic weather: layout, seeds, physics, the wind's information about
tomorrow's temperature, and the file generated once."""

import os

import numpy as np
import pytest
import xarray as xr

from stconv.data import weather
from stconv.data.weather import weather_dataset, weather_file

SMALL = {"years": 2, "lat": 8, "lon": 16}


@pytest.fixture(scope="module")
def small() -> xr.Dataset:
    return weather_dataset(**SMALL, seed=0)


def test_layout(small):
    assert set(small.data_vars) == {"t2m", "u10", "v10", "orography"}
    expected = {
        "t2m": ("K", "air_temperature"),
        "u10": ("m s-1", "eastward_wind"),
        "v10": ("m s-1", "northward_wind"),
        "orography": ("m", "surface_altitude"),
    }
    for name, (units, standard_name) in expected.items():
        variable = small[name]
        assert variable.dtype == np.float32
        assert (variable.attrs["units"], variable.attrs["standard_name"]) == (units, standard_name)
        assert variable.attrs["long_name"]
        assert np.isfinite(variable.values).all()
    for name in ("t2m", "u10", "v10"):
        assert small[name].dims == ("time", "lat", "lon")
    assert small["orography"].dims == ("lat", "lon")
    assert small.sizes == {"time": 730, "lat": 8, "lon": 16}  # 1990 and 1991: 365 days each
    times = small["time"].values
    assert times.dtype.kind == "M" and times[0] == np.datetime64("1990-01-01")
    assert times[-1] == np.datetime64("1991-12-31")
    assert (np.diff(times) == np.timedelta64(1, "D")).all()
    lats, lons = small["lat"].values, small["lon"].values
    assert small["lat"].attrs["units"] == "degrees_north"
    assert small["lon"].attrs["units"] == "degrees_east"
    assert (np.diff(lats) > 0).all() and lats[0] >= 20 and lats[-1] <= 70
    np.testing.assert_allclose(np.diff(lons), 360 / 16)
    assert small.attrs["synthetic"] == "yes" and small.attrs["title"] and small.attrs["comment"]
    assert small.attrs["source"] == (
        "stconv.data.weather.weather_dataset(years=2, lat=8, lon=16, seed=0)"
    )


@pytest.mark.parametrize(
    ("start", "years", "days"),
    [("1992-01-01", 1, 366), ("1999-03-01", 1, 366), ("2001-07-01", 2, 730)],
)
def test_calendar_years(start, years, days):
    times = weather_dataset(years, 2, 4, start=start)["time"].values
    assert len(times) == days and times[0] == np.datetime64(start)


def test_seeds(small):
    again = weather_dataset(**SMALL, seed=0)
    other = weather_dataset(**SMALL, seed=1)
    for name in small.data_vars:
        np.testing.assert_array_equal(small[name].values, again[name].values)
        assert not np.allclose(small[name].values, other[name].values)


def test_physics(small):
    t2m, u10, v10 = (small[name].values.astype(float) for name in ("t2m", "u10", "v10"))
    months = small["time"].dt.month.values
    assert t2m.min() > 230 and t2m.max() < 320
    # A northern-hemisphere seasonal cycle: July several K warmer than January.
    assert t2m[months == 7].mean() - t2m[months == 1].mean() > 8
    # Warmer to the south (the rows go from south to north).
    assert t2m[:, :2].mean() - t2m[:, -2:].mean() > 10
    # Mountains are cold: time-mean temperature, less its latitude mean.
    climate = t2m.mean(axis=0)
    anomaly = climate - climate.mean(axis=1, keepdims=True)
    assert np.corrcoef(anomaly.ravel(), small["orography"].values.ravel())[0, 1] < -0.4
    assert 500 < small["orography"].values.max() < 3500
    # The westerly jet (rows of 35N to 55N) is stronger in winter than in summer.
    core = (small["lat"].values > 35) & (small["lat"].values < 55)
    winter = u10[np.isin(months, (12, 1, 2))][:, core].mean()
    summer = u10[np.isin(months, (6, 7, 8))][:, core].mean()
    assert winter > 6 and summer < 6 and winter - summer > 3
    # Weather: winds of several m/s that change with a memory of a few days.
    anomaly = v10 - v10.mean(axis=0)
    assert 2 < anomaly.std() < 10

    def autocorrelation(lag):
        return np.corrcoef(anomaly[lag:].ravel(), anomaly[:-lag].ravel())[0, 1]

    assert 0.5 < autocorrelation(1) < 0.9 and abs(autocorrelation(10)) < 0.2


def advective_change(dataset: xr.Dataset, lag: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``-u dT/dx - v dT/dy`` (K/day) with the wind ``lag`` days before the
    temperature, and the actual change of the temperature over the next day,
    at the rows that have a centred northward difference."""
    t2m, u10, v10 = (dataset[name].values.astype(float) for name in ("t2m", "u10", "v10"))
    lats, lon = dataset["lat"].values, dataset.sizes["lon"]
    # Cells per day of the wind, and temperature differences per cell.
    eastward = u10 * 86400 / (360 / lon * 111e3 * np.cos(np.deg2rad(lats))[:, None])
    northward = v10 * 86400 / ((lats[1] - lats[0]) * 111e3)
    ddx = (np.roll(t2m, -1, axis=2) - np.roll(t2m, 1, axis=2))[:, 1:-1] / 2
    ddy = (t2m[:, 2:] - t2m[:, :-2]) / 2
    days = len(t2m) - 1 - lag
    predicted = -(eastward[:days, 1:-1] * ddx[lag:-1] + northward[:days, 1:-1] * ddy[lag:-1])
    return predicted, np.diff(t2m, axis=0)[lag:, 1:-1]


def test_the_wind_tells_tomorrows_temperature(small):
    predicted, actual = advective_change(small)
    correlation = np.corrcoef(predicted.ravel(), actual.ravel())[0, 1]
    assert correlation > 0.25  # 0.38 for seeds 0, 1, 2
    # The wind of another time (not that of the day) tells nothing.
    predicted, actual = advective_change(small, lag=10)
    assert abs(np.corrcoef(predicted.ravel(), actual.ravel())[0, 1]) < 0.1


def test_weather_file_is_written_once(tmp_path, capsys):
    path = weather_file(3, tmp_path / "cache", **SMALL)
    assert path == str(tmp_path / "cache" / "weather-seed3-years2-lat8-lon16.nc")
    assert "generating the weather dataset (seed 3)" in capsys.readouterr().out
    assert os.listdir(tmp_path / "cache") == [os.path.basename(path)]  # no temporary left
    modified = os.stat(path).st_mtime_ns
    assert weather_file(3, tmp_path / "cache", **SMALL) == path
    assert os.stat(path).st_mtime_ns == modified and capsys.readouterr().out == ""
    with xr.open_dataset(path) as written:
        xr.testing.assert_identical(written.load(), weather_dataset(**SMALL, seed=3))
        assert written["t2m"].encoding["zlib"]


def test_weather_file_directory_and_names(tmp_path, monkeypatch):
    monkeypatch.setenv("STCONV_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(weather, "weather_dataset", lambda **sizes: xr.Dataset(attrs=sizes))
    default = tmp_path / "weather-seed5-years20-lat16-lon32.nc"
    assert weather_file(5) == str(default)
    with xr.open_dataset(default) as written:
        assert (written.attrs["years"], written.attrs["lat"], written.attrs["lon"]) == (20, 16, 32)
    assert weather_file(5, lon=32) == str(default)  # the defaults, named so
    with pytest.raises(TypeError, match="sizes"):
        weather_file(5, tmp_path, start="2000-01-01")


def test_weather_file_leaves_no_half_file(tmp_path, monkeypatch):
    def killed(self, path, *args, **kwargs):  # killed half way through the file
        with open(path, "wb") as half:
            half.write(b"CDF\x02 half")
        raise KeyboardInterrupt

    monkeypatch.setattr(xr.Dataset, "to_netcdf", killed)
    with pytest.raises(KeyboardInterrupt):
        weather_file(0, tmp_path, **SMALL)
    assert os.listdir(tmp_path) == []
