"""Many variables in their own units, chosen targets, scores per variable, on
files as they come: ERA5 (several units in one file, pressure levels) and
CMIP6 (one variable per file, noleap and 360-day calendars). Tiny runs, each
trained once for the module (synthetic values in the files' conventions)."""

import contextlib
import io

import numpy as np
import pytest
import xarray as xr

from stconv import cli
from stconv.data.registry import load_dataset
from stconv.data.synthetic import cmip6_like, era5_like
from stconv.runs.directory import RunDirectory
from stconv.runs.forecaster import Forecaster
from stconv.runs.reporting import format_results, summarize

TINY = [
    "--num-layers", "1", "--hidden-dim", "2", "--kernel-size", "3", "--batch-size", "8",
    "--epochs", "1", "--forecast-samples", "1", "--no-maps", "--input-length", "3",
    "--horizon", "2",
]  # fmt: skip


def train(workdir, *flags) -> str:
    """``stconv train`` of a tiny run; what it printed."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["train", "--workdir", str(workdir), *TINY, *flags]) == 0
    return out.getvalue()


@pytest.fixture(scope="module")
def era5(tmp_path_factory):
    """A run on an ERA5 file of three variables in three units, forecasting two."""
    root = tmp_path_factory.mktemp("era5")
    era5_like(num_steps=48).to_netcdf(root / "era5.nc")
    data = xr.load_dataset(root / "era5.nc")  # as read back: unpacked
    flags = ["--dataset", str(root / "era5.nc"), "--variables", "t2m,u10,msl"]
    printed = train(root / "run", *flags, "--targets", "u10,t2m")
    return root, printed, data


def test_several_units_train_and_each_target_is_scored_in_its_own(era5):
    root, printed, data = era5
    run = RunDirectory(root / "run")
    described = run.data_description()
    assert described["variables"] == ["u10", "t2m", "msl"]  # the targets first
    assert described["targets"] == ["u10", "t2m"]
    assert described["units"] == ["m s**-1", "K", "Pa"]
    assert described["dims"] == {"time": "valid_time", "lat": "latitude", "lon": "longitude"}
    results = run.results()
    assert list(results) == ["u10", "t2m"]  # msl is an input only
    for variable, units in (("u10", "m s**-1"), ("t2m", "K")):
        assert set(results[variable]) == {"stconvs2s-r", "persistence", "climatology", "input_mean"}
        assert {r["units"] for r in results[variable].values()} == {units}
    # Each target's persistence by hand, in its own units, from the (unpacked) file.
    t2m = data["t2m"].values
    test = range(round(48 * 0.8), 48 - 5 + 1)  # windows of 3 + 2 steps in the last 20%
    errors = [t2m[s + 3 : s + 5] - t2m[s + 2] for s in test]
    assert results["t2m"]["persistence"]["rmse"] == pytest.approx(
        np.sqrt(np.mean(np.square(errors))), rel=1e-5
    )
    # One table per target, named, in its units; epochs by the normalized score.
    assert "test scores of u10 over the whole test split, in m s**-1" in printed
    assert "test scores of t2m over the whole test split, in K" in printed
    assert "validation score" in printed and "(RMSE u10 " in printed
    (row,) = run.read_history(1)
    assert set(row["validation_rmse_per_variable"]) == {"u10", "t2m"}
    summary = summarize([results, results])  # the multi-seed summary, per variable
    assert summary["t2m"]["stconvs2s-r"]["rmse"]["std"] == 0.0


def test_the_model_forecasts_the_targets_only(era5):
    root, _, _ = era5
    forecaster = Forecaster.load(root / "run")
    assert forecaster.outputs == 2 and forecaster.units == ["m s**-1", "K", "Pa"]
    forecasts = forecaster.forecast(root / "era5.nc")
    assert list(forecasts.data_vars) == ["u10", "t2m"]
    assert forecasts["t2m"].attrs == {"units": "K", "long_name": "2 metre temperature"}
    assert forecasts["u10"].dims == ("init_time", "lead_time", "latitude", "longitude")
    assert float(forecasts["t2m"].mean()) == pytest.approx(280, abs=30)  # kelvin


def test_predict_writes_each_target_on_the_inputs_coordinates(era5, tmp_path):
    root, _, data = era5
    for output in (tmp_path / "forecast.nc", tmp_path / "forecast.zarr"):
        argv = ["predict", "--workdir", str(root / "run"), "--input", str(root / "era5.nc")]
        assert cli.main([*argv, "--output", str(output)]) == 0
        opened = xr.open_zarr(output) if output.suffix == ".zarr" else xr.open_dataset(output)
        with opened as forecast:
            assert set(forecast.data_vars) == {"u10", "t2m"}  # zarr lists them sorted
            assert forecast["u10"].attrs["units"] == "m s**-1"
            assert forecast["u10"].attrs["long_name"] == "10 metre U wind component"
            assert forecast["t2m"].dims == ("init_time", "lead_time", "latitude", "longitude")
            np.testing.assert_array_equal(forecast["latitude"], data["latitude"])  # north first
            np.testing.assert_array_equal(forecast["longitude"], data["longitude"])
            six_hours = np.timedelta64(6, "h")
            np.testing.assert_array_equal(forecast["lead_time"], [six_hours, 2 * six_hours])
            times = data["valid_time"].values
            assert forecast["init_time"].values[0] == times[2]  # the last of 3 inputs
            assert forecast["valid_time"].values[0, 1] == times[4]
            assert forecast["t2m"].shape == (46, 2, 7, 12)


def test_pressure_levels_and_a_box_across_longitude_zero(tmp_path):
    era5_like(num_steps=40, levels=(1000, 850, 500)).to_netcdf(tmp_path / "levels.nc")
    flags = ["--dataset", str(tmp_path / "levels.nc"), "--variables", "z:500,t:850"]
    printed = train(tmp_path / "run", *flags, "--targets", "z:500", "--bbox=-40,40,-60,60")
    assert "test scores over the whole test split, in m**2 s**-2" in printed  # one target
    run = RunDirectory(tmp_path / "run")
    described = run.data_description()
    assert described["variables"] == ["z500", "t850"] and described["targets"] == ["z500"]
    assert described["lon"] == [300.0, 330.0, 0.0, 30.0, 60.0]  # across the seam, eastwards
    assert described["lat"] == [40.0, 20.0, 0.0, -20.0, -40.0]
    output = tmp_path / "z500.nc"
    argv = ["predict", "--workdir", str(run.path), "--input", str(tmp_path / "levels.nc")]
    assert cli.main([*argv, "--output", str(output)]) == 0
    with xr.open_dataset(output) as forecast:
        assert list(forecast.data_vars) == ["z500"]
        assert forecast["longitude"].values.tolist() == [300.0, 330.0, 0.0, 30.0, 60.0]


@pytest.mark.parametrize("calendar", ["noleap", "360_day"])
def test_cmip6_files_one_variable_each_combine(tmp_path, calendar):
    for name, dataset in cmip6_like(num_steps=40, calendar=calendar).items():
        dataset.to_netcdf(tmp_path / f"{name}_day_model_ssp245_r1i1p1f1_gn_2000.nc")
    pattern = str(tmp_path / "*_day_*.nc")
    dataset = load_dataset(pattern, input_length=3, horizon=2, targets=["tas"])
    assert dataset.grid.channels == ("tas", "uas") and dataset.targets == ["tas"]
    assert dataset.grid.units == ("K", "m s-1")
    assert dataset.grid.standard_names == ("air_temperature", "eastward_wind")
    example = dataset.splits["train"][0]
    assert example["inputs"].shape == (3, 6, 8, 2) and example["targets"].shape == (2, 6, 8, 1)
    if calendar == "360_day":
        return  # one run, on the noleap files, trains
    printed = train(tmp_path / "run", "--dataset", pattern, "--targets", "tas")
    assert "in K;" in printed
    output = tmp_path / "forecast.nc"
    argv = ["predict", "--workdir", str(tmp_path / "run"), "--input", pattern]
    assert cli.main([*argv, "--output", str(output)]) == 0
    with xr.open_dataset(output) as forecast:
        assert list(forecast.data_vars) == ["tas"]
        assert forecast["tas"].attrs["standard_name"] == "air_temperature"
        day = np.timedelta64(1, "D")
        np.testing.assert_array_equal(forecast["lead_time"], [day, 2 * day])
        assert forecast["init_time"].values[0].calendar == "noleap"


def test_a_variable_without_units_is_taken_as_in_no_units(tmp_path):
    """Accepted beside variables with units; every table says "no units"."""
    data = era5_like(num_steps=40)
    del data["msl"].attrs["units"]
    data.to_netcdf(tmp_path / "era5.nc")
    dataset = load_dataset(str(tmp_path / "era5.nc"), input_length=3, horizon=2, targets=["msl"])
    assert dataset.grid.units == ("", "K", "m s**-1")
    scores = {"persistence": {"rmse": 1.0, "rmse_per_lead": [1.0], "units": ""}}
    assert "in no units;" in format_results({"msl": scores})
