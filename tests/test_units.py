"""Units: the values each unit allows, and forecasts only from data in the run's units."""

import shutil

import numpy as np
import pytest
import xarray as xr
from test_faults import SERIES, TINY, series

from stconv import cli
from stconv.data.checks import EXTREME, check_extremes, plausible_range, same_units
from stconv.data.errors import DataError
from stconv.data.field_checks import stated_units
from stconv.data.synthetic import write_synthetic_netcdf
from stconv.runs.forecaster import Forecaster
from stconv.runs.provenance import UnitsWarning


def field(values: np.ndarray, units: list[str]) -> xr.DataArray:
    """A ``(time, lat, lon, channel)`` field of one cell, channels in ``units``."""
    channels = [f"v{c}" for c in range(len(units))]
    return xr.DataArray(
        values.reshape(-1, 1, 1, len(units)),
        dims=("time", "lat", "lon", "channel"),
        coords={
            "time": np.arange(len(values)),
            "channel": channels,
            "units": ("channel", units),
        },
    )


@pytest.mark.parametrize(
    "units, low, high",
    [
        ("K", -400, 400),
        ("kelvin", -400, 400),
        ("degC", -273.15, 200),
        ("Celsius", -273.15, 200),
        ("Pa", -2e5, 2e5),
        ("hPa", -2e3, 2e3),
        ("m s**-1", -300, 300),
        ("m/s", -300, 300),
        ("kg m-2 s-1", -0.1, 0.1),
        ("mm/day", -3e3, 3e3),
        ("", -EXTREME, EXTREME),
        ("furlongs", -EXTREME, EXTREME),
    ],
)
def test_plausible_ranges_per_units(units, low, high):
    assert plausible_range(units) == (low, high)


def test_each_channel_is_checked_against_its_own_units():
    """1e5 is a pressure in Pa, not a temperature in K; a fill value is nothing."""
    values = np.array([[290.0, 1e5], [291.0, 1.01e5]])
    check_extremes(field(values, ["K", "Pa"]), "f.nc")
    with pytest.raises(DataError) as error:
        check_extremes(field(values[:, ::-1].copy(), ["K", "Pa"]), "f.nc")
    message = str(error.value)
    assert "'v0' reaches 1.01e+05 at time 1 (index 1)" not in message  # the first frame
    assert "'v0' reaches 1e+05 at time 0 (index 0)" in message
    assert "outside -400..400, the values K can take" in message
    assert "accept them with data.allow_extreme_values=True" in message
    check_extremes(field(values[:, ::-1].copy(), ["K", "Pa"]), "f.nc", allowed=True)
    anomalies = np.array([[-3.5], [2.0]])  # temperature anomalies are in K too
    check_extremes(field(anomalies, ["K"]), "f.nc")
    with pytest.raises(DataError, match=r"reaches 1e\+16 .* beyond 1e\+15 in any units"):
        check_extremes(field(np.array([[1.0], [1e16]]), [""]), "f.nc")
    with pytest.raises(DataError, match=r"'v0' reaches -300 .* outside -273\.15\.\.200"):
        check_extremes(field(np.array([[-300.0], [np.nan]]), ["degC"]), "f.nc")


@pytest.mark.parametrize(
    "units, expected",
    [
        (None, {}),
        ("K", {"a": "K", "b": "K"}),
        ("b=m s-1", {"b": "m s-1"}),
        ("a=K, b=m s-1", {"a": "K", "b": "m s-1"}),
        ({"a": "K"}, {"a": "K"}),
    ],
)
def test_stated_units(units, expected):
    assert stated_units(units, ["a", "b"]) == expected


@pytest.mark.parametrize(
    "units, message",
    [
        ("c=K", "^units names \\['c'\\], which are not the run's variables \\['a', 'b'\\]"),
        ("a=K,b", "^units='a=K,b' is invalid: write UNITS for all variables, or NAME=UNITS"),
    ],
)
def test_stated_units_refused(units, message):
    with pytest.raises(ValueError, match=message):
        stated_units(units, ["a", "b"])


@pytest.fixture(scope="module")
def kelvin_run(tmp_path_factory, tiny_run):
    """A tiny finished run of data in K (``run``, a copy of `conftest.tiny_run`),
    and an input for it (``new.nc``)."""
    root = tmp_path_factory.mktemp("units")
    shutil.copytree(tiny_run, root / "run")
    write_synthetic_netcdf(root / "new.nc", 12, 16, 16, seed=3, variable="synthetic_0")
    return root


def test_a_data_array_that_lost_its_units_is_refused_unless_stated(kelvin_run):
    forecaster = Forecaster.load(kelvin_run / "run")
    with xr.open_dataset(kelvin_run / "new.nc") as dataset:
        kelvin = dataset["synthetic_0"].load()
    # Lost as xarray's arithmetic lost them before 2025, or as a DataArray built from numpy.
    celsius = (kelvin - 273.15).drop_attrs()
    with pytest.raises(DataError, match="trained in K: pass units='K' if it is in K"):
        forecaster.forecast(celsius)
    stated = forecaster.forecast(kelvin.drop_attrs(), units="K")
    np.testing.assert_allclose(
        stated["synthetic_0"].values, forecaster.forecast(kelvin)["synthetic_0"].values
    )
    assert stated["synthetic_0"].attrs["units"] == "K"
    with pytest.raises(DataError, match="is in K, not in degC as units says"):
        forecaster.forecast(kelvin, units="degC")


def test_celsius_that_kept_the_kelvin_attribute_is_refused(kelvin_run):
    """xarray keeps ``units`` through arithmetic since 2025: the values give it away."""
    forecaster = Forecaster.load(kelvin_run / "run")
    with xr.open_dataset(kelvin_run / "new.nc") as dataset:
        kelvin = dataset["synthetic_0"].load()
    celsius = kelvin - 273.15
    assert celsius.attrs["units"] == "K"
    train_mean = float(np.nanmean(forecaster.climatology.values))
    given = float(celsius.mean())
    with pytest.raises(DataError) as error:
        forecaster.forecast(celsius)
    message = str(error.value)
    assert f"'synthetic_0' averages {given:.4g} K" in message
    assert f"from the {train_mean:.4g} K of the run's training data" in message
    assert "in other units than its attribute says" in message
    warmer = kelvin + 5.0  # a warmer climate is not other units
    assert forecaster.forecast(warmer)["synthetic_0"].shape[0] == 8


def test_the_runs_units_spelled_another_way_are_its_units(kelvin_run):
    """``kelvin`` is ``K``; ERA5's ``m**2 s**-2`` is CMIP's ``m2 s-2``: not other units."""
    forecaster = Forecaster.load(kelvin_run / "run")
    with xr.open_dataset(kelvin_run / "new.nc") as dataset:
        kelvin = dataset["synthetic_0"].load()
    expected = forecaster.forecast(kelvin)["synthetic_0"].values
    spelled = kelvin.assign_attrs(units="kelvin")
    np.testing.assert_array_equal(forecaster.forecast(spelled)["synthetic_0"].values, expected)
    with pytest.raises(DataError, match="is in degree_Celsius, the run was trained in K: conv"):
        forecaster.forecast(kelvin.assign_attrs(units="degree_Celsius"))
    assert same_units("m**2 s**-2", "m2 s-2") and same_units("m s^-1", "m/s")
    assert same_units("degrees_C", "°C") and not same_units("m s-1", "m2 s-2")
    assert same_units("degrees C", "degC")  # Daymet's spelling


def test_predict_states_the_units_of_an_input_without_them(kelvin_run, tmp_path, capsys):
    with xr.open_dataset(kelvin_run / "new.nc") as dataset:
        dataset = dataset.load()
    del dataset["synthetic_0"].attrs["units"]
    dataset.to_netcdf(tmp_path / "plain.nc")
    argv = ["predict", "--workdir", str(kelvin_run / "run"), "--input", str(tmp_path / "plain.nc")]
    assert cli.main([*argv, "--output", str(tmp_path / "f.nc")]) == 2
    assert "pass --units K if it is in K" in capsys.readouterr().err  # Python: units='K'
    assert cli.main([*argv, "--output", str(tmp_path / "f.nc"), "--units", "K"]) == 0
    with xr.open_dataset(tmp_path / "f.nc") as forecast:
        assert forecast["synthetic_0"].attrs["units"] == "K"


def test_a_run_without_units_says_so_on_every_forecast(tmp_path, capsys):
    series(tmp_path, lambda ds: ds["tas"].attrs.clear())
    flags = [*TINY, "--dataset", str(tmp_path / "bad.nc"), *SERIES]
    assert cli.main(["train", "--workdir", str(tmp_path / "run"), *flags]) == 0
    forecaster = Forecaster.load(tmp_path / "run")
    assert forecaster.units == [""]
    for _ in range(2):
        with pytest.warns(UnitsWarning, match="the run's data gave no units for \\['tas'\\]"):
            forecaster.forecast(tmp_path / "bad.nc")
    shutil.copy(tmp_path / "bad.nc", tmp_path / "input.nc")
    capsys.readouterr()
    argv = ["--workdir", str(tmp_path / "run"), "--input", str(tmp_path / "input.nc")]
    assert cli.main(["predict", *argv, "--output", str(tmp_path / "f.nc")]) == 0
    warning = [line for line in capsys.readouterr().err.splitlines() if "no units" in line]
    assert warning == [
        "stconv predict: warning: the run's data gave no units for ['tas']: its inputs cannot "
        "be checked and its forecasts carry none; they are in the units of the data it was "
        "trained on"
    ]
