"""`stconv.Forecaster`: a trained run loaded from Python, forecasting and evaluating
new data (the tiny run on synthetic data that the tests share, `conftest.tiny_run`)."""

import shutil

import dask.array
import numpy as np
import pytest
import xarray as xr
from conftest import TINY_RUN, time_series_dataset

from stconv import cli
from stconv.data.errors import DataError
from stconv.data.field_checks import RunInputs, on_run_cells
from stconv.data.synthetic import synthetic_field, write_synthetic_netcdf
from stconv.runs.directory import RunDirectory
from stconv.runs.forecaster import Forecaster

TINY = [*TINY_RUN]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_run):
    """A finished run (shared: read only), a new file of its variable and what
    `stconv predict` wrote."""
    root = tmp_path_factory.mktemp("forecaster")
    workdir = tiny_run
    new_file = root / "new.nc"
    write_synthetic_netcdf(new_file, 30, 16, 16, seed=9, variable="synthetic_0")
    output = root / "predicted.nc"
    assert (
        cli.main(
            [
                "predict",
                "--workdir",
                str(workdir),
                "--input",
                str(new_file),
                "--output",
                str(output),
            ]
        )
        == 0
    )
    return workdir, new_file, output


def test_forecast_from_a_path_and_from_memory_equal_stconv_predict(trained):
    workdir, new_file, output = trained
    forecaster = Forecaster.load(workdir)
    forecasts = forecaster.forecast(new_file)
    assert isinstance(forecasts, xr.Dataset) and list(forecasts.data_vars) == ["synthetic_0"]
    from_path = forecasts["synthetic_0"]
    assert isinstance(from_path.data, dask.array.Array)  # computed when read
    assert from_path.dims == ("init_time", "lead_time", "lat", "lon")
    assert from_path.shape == (26, 5, 16, 16)  # 30 steps, windows of 5
    assert from_path.attrs["units"] == "K"
    with xr.open_dataset(output) as predicted:
        expected = predicted.load()
    xr.testing.assert_allclose(forecasts, expected, rtol=1e-6)  # the file of `stconv predict`

    with xr.open_dataset(new_file) as opened:
        in_memory = opened.load()
    from_dataset = forecaster.forecast(in_memory)["synthetic_0"]
    from_data_array = forecaster.forecast(in_memory["synthetic_0"])["synthetic_0"]
    np.testing.assert_allclose(from_dataset.values, expected["synthetic_0"].values, rtol=1e-6)
    np.testing.assert_allclose(from_data_array.values, expected["synthetic_0"].values, rtol=1e-6)


def test_the_runs_cells_in_another_order_are_its_grid(trained):
    """Latitudes north to south where the run's ran south to north, and the
    longitudes rolled: the same cells, so the same forecasts and scores, on
    the run's grid (`field_checks.on_run_cells`), as of a wider area; half the
    grid is another grid."""
    workdir, new_file, output = trained
    forecaster = Forecaster.load(workdir)
    with xr.open_dataset(new_file) as opened:
        data = opened.load()
    reordered = data.isel(lat=slice(None, None, -1), lon=np.roll(np.arange(16), 5))
    with xr.open_dataset(output) as predicted:
        expected = predicted.load()
    xr.testing.assert_allclose(forecaster.forecast(reordered), expected, rtol=1e-6)
    assert forecaster.evaluate(reordered) == forecaster.evaluate(new_file)
    with pytest.raises(DataError, match=r"is not on the run's grid \(lat x lon 8 x 16"):
        forecaster.forecast(reordered.isel(lat=slice(0, 8)))
    # A wider area: the run's cells of it, unless other_grid asks for all of it.
    north = data.assign_coords(lat=data["lat"] + 16)  # rows 8..23 north of the run's -8..7
    wider = xr.concat([data, north], "lat")
    xr.testing.assert_allclose(forecaster.forecast(wider), expected, rtol=1e-6)
    assert forecaster.forecast(wider, other_grid=True)["synthetic_0"].sizes["lat"] == 32


def test_cells_in_another_longitude_convention_are_put_in_the_runs_order():
    run = RunInputs(
        ("t",), ("t",), ("K",), ("t",), 1, np.ones((2, 3, 1), bool),
        lat=np.array([10.0, 0.0]), lon=np.array([-10.0, 0.0, 10.0]),
    )  # fmt: skip
    field = xr.DataArray(
        np.arange(6.0).reshape(1, 2, 3, 1),
        dims=("time", "lat", "lon", "channel"),
        coords={"lat": [0.0, 10.0], "lon": [0.0, 10.0, 350.0]},
    )
    ordered = on_run_cells(field, run)
    assert ordered["lat"].values.tolist() == [10, 0]
    assert ordered["lon"].values.tolist() == [-10, 0, 10]
    assert ordered.values[0, :, :, 0].tolist() == [[5, 3, 4], [2, 0, 1]]
    other = field.assign_coords(lon=[0.0, 10.0, 340.0])
    assert on_run_cells(other, run) is other


def test_valid_time_is_init_time_plus_lead(trained):
    workdir, new_file, _ = trained
    forecast = Forecaster.load(workdir).forecast(new_file)
    times = xr.open_dataset(new_file)["time"].values
    valid = forecast["valid_time"].values
    assert valid.shape == (26, 5)
    assert valid[0, 0] == times[5] and valid[0, 4] == times[9]  # inputs 0-4
    day = np.timedelta64(1, "D")
    assert valid[-1, -1] == times[-1] + 5 * day  # beyond the file: daily steps go on


def test_evaluate_new_data_beside_the_baselines(trained):
    workdir, new_file, _ = trained
    forecaster = Forecaster.load(workdir)
    results = forecaster.evaluate(new_file)["synthetic_0"]
    assert set(results) == {"stconvs2s-r", "persistence", "climatology", "input_mean"}
    for result in results.values():
        assert len(result["rmse_per_lead"]) == 5 and result["rmse"] > 0
    # Persistence and the input mean by hand, over the 21 complete windows.
    field = xr.open_dataset(new_file)["synthetic_0"].values
    errors = [field[s + 5 : s + 10] - field[s + 4] for s in range(21)]
    rmse = np.sqrt(np.mean(np.square(errors)))
    assert results["persistence"]["rmse"] == pytest.approx(rmse, rel=1e-5)
    errors = [field[s + 5 : s + 10] - field[s : s + 5].mean(axis=0) for s in range(21)]
    rmse = np.sqrt(np.mean(np.square(errors)))
    assert results["input_mean"]["rmse"] == pytest.approx(rmse, rel=1e-5)
    # On another grid, the training climatology is not known: no climatology, no ACC.
    other = xr.open_dataset(new_file).isel(lat=slice(0, 8))
    results = forecaster.evaluate(other, other_grid=True)["synthetic_0"]
    assert set(results) == {"stconvs2s-r", "persistence", "input_mean"}
    assert "acc" not in results["input_mean"]


def assert_one_scoring(workdir, test_data, weighted: bool) -> None:
    """The run's own test (at the end of training), `stconv evaluate` and
    `Forecaster.evaluate` of the test split's frames give identical numbers."""
    trained_results = RunDirectory(workdir).results()
    assert cli.main(["evaluate", "--workdir", str(workdir)]) == 0
    assert RunDirectory(workdir).results() == trained_results
    assert Forecaster.load(workdir).evaluate(test_data) == trained_results
    (scores,) = trained_results.values()  # one variable
    assert {r["area_weighted"] for r in scores.values()} == {weighted}


def test_the_test_split_is_scored_one_way_on_a_geographic_grid(trained, tmp_path):
    workdir = tmp_path / "run"  # `stconv evaluate` writes into it
    shutil.copytree(trained[0], workdir)
    field = synthetic_field(400, 16, 16)  # the run's dataset: test split from step 320
    test_data = field.isel(channel=0, time=slice(320, None)).to_dataset(name="synthetic_0")
    assert_one_scoring(workdir, test_data, weighted=True)
    forecaster = Forecaster.load(workdir)
    assert forecaster.config.model.name == "stconvs2s-r" and forecaster.variables == ["synthetic_0"]


def test_the_test_split_is_scored_one_way_on_a_grid_without_latitudes(tmp_path):
    """A file with lat and lon dimensions but no coordinates for them: its rows
    are not latitudes, so no score is area-weighted, in any of the three."""
    data = time_series_dataset(num_steps=40, lat=6, lon=5).drop_vars(["lat", "lon"])
    data["tas"].values += np.random.default_rng(0).standard_normal(data["tas"].shape)
    data.to_netcdf(tmp_path / "rows.nc")
    flags = [*TINY, "--dataset", str(tmp_path / "rows.nc"), "--input-length", "3"]
    flags += ["--horizon", "2", "--batch-size", "4"]
    assert cli.main(["train", "--workdir", str(tmp_path / "run"), *flags]) == 0
    assert_one_scoring(tmp_path / "run", data.isel(time=slice(32, None)), weighted=False)


def test_bad_runs_and_data_raise_one_clear_error(trained, tmp_path):
    workdir, new_file, _ = trained
    with pytest.raises(ValueError, match=r"workdir '.*nothing' has no config.json"):
        Forecaster.load(tmp_path / "nothing")
    half = tmp_path / "half"
    half.mkdir()
    (half / "config.json").write_text((workdir / "config.json").read_text())
    with pytest.raises(ValueError, match=r"has no data.json: train the run first"):
        Forecaster.load(half)
    forecaster = Forecaster.load(workdir)
    with xr.open_dataset(new_file) as opened:
        data = opened.load()
    with pytest.raises(DataError, match="has no gridded variable 'synthetic_0'"):
        forecaster.forecast(data.rename(synthetic_0="other"))
    with pytest.raises(DataError, match=r"DataArray 'other' is not the run's data"):
        forecaster.forecast(data["synthetic_0"].rename("other"))
    with pytest.raises(DataError, match="has 3 time steps: at least input_length=5"):
        forecaster.forecast(data.isel(time=slice(0, 3)))
    with pytest.raises(DataError, match="evaluating needs at least input_length \\+ horizon = 10"):
        forecaster.evaluate(data.isel(time=slice(0, 7)))


def test_the_public_api_is_importable_from_the_package():
    import stconv

    assert stconv.Forecaster is Forecaster and stconv.RunDirectory is RunDirectory
    assert callable(stconv.train_and_evaluate) and stconv.Config().model.name == "stconvs2s-r"
    assert "stconvs2s-r" in stconv.models.available()
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        stconv.nothing  # noqa: B018


def test_a_run_of_an_older_version_still_loads_evaluates_and_predicts(trained, tmp_path):
    """Runs made before several variables: one ``units`` for all, no targets,
    and ``results.json`` of ``{forecast: scores}``."""
    workdir, new_file, _ = trained
    old = tmp_path / "old"
    shutil.copytree(workdir, old, ignore=shutil.ignore_patterns("tensorboard"))
    run = RunDirectory(old)
    described = run.read_json(run.DATA, "")
    kept = ("variables", "input_shape", "lat", "lon", "geographic")
    run.write_json(run.DATA, {**{k: described[k] for k in kept}, "units": "K"})
    (scores,) = run.results().values()
    run.write_json(run.RESULTS, {name: {k: v for k, v in s.items() if k != "units"}
                                 for name, s in scores.items()})  # fmt: skip
    assert run.results() == {"synthetic_0": run.read_json(run.RESULTS, "")}  # read as one variable
    forecaster = Forecaster.load(old)
    assert forecaster.targets == ["synthetic_0"] and forecaster.units == ["K"]
    assert cli.main(["evaluate", "--workdir", str(old)]) == 0
    assert run.results()["synthetic_0"]["stconvs2s-r"]["rmse"] == scores["stconvs2s-r"]["rmse"]
    argv = ["predict", "--workdir", str(old), "--input", str(new_file)]
    assert cli.main([*argv, "--output", str(tmp_path / "forecast.nc")]) == 0
