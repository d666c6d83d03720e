"""Data with seasons: the climatology by time of year as a baseline, an ACC
reference and a normalization; calendar and static inputs, read by the model
and never forecast, in training and in `predict` alike."""

import json
import shutil

import numpy as np
import pytest
import xarray as xr
from flax import nnx

from stconv import cli
from stconv.data.climatology import Climatology
from stconv.data.errors import DataError
from stconv.data.registry import ClimatologyWarning, load_dataset
from stconv.data.weather import weather_dataset
from stconv.evaluation.baselines import fit_damping
from stconv.runs.assembly import load_config_dataset
from stconv.runs.directory import RunDirectory
from stconv.runs.forecaster import Forecaster

TINY = ["--num-layers", "1", "--hidden-dim", "4", "--kernel-size", "3", "--epochs", "1"]
TINY += ["--input-length", "3", "--horizon", "2", "--forecast-samples", "0", "--no-maps"]


@pytest.fixture(scope="module")
def weather(tmp_path_factory):
    """Three years of the weather dataset on a small grid: the variables in one
    file, the orography in another."""
    folder = tmp_path_factory.mktemp("weather")
    dataset = weather_dataset(years=3, lat=6, lon=8, seed=1)
    dataset.drop_vars("orography").to_netcdf(folder / "weather.nc")
    dataset[["orography"]].to_netcdf(folder / "orography.nc")
    return folder


@pytest.fixture(scope="module")
def seasonal_run(weather, tmp_path_factory):
    """A tiny run that reads the winds, the orography and the calendar,
    normalized as anomalies from the climatology, forecasting t2m."""
    workdir = tmp_path_factory.mktemp("runs") / "seasonal"
    argv = ["train", "--workdir", str(workdir), *TINY, "--dataset", str(weather / "weather.nc")]
    argv += ["--variables", "t2m,u10,v10", "--targets", "t2m", "--normalization", "climatology"]
    argv += ["--static", f"{weather / 'orography.nc'}:orography", "--time-features"]
    argv += ["--climatology-window", "31"]
    assert cli.main(argv) == 0
    return workdir


def test_the_climatology_of_daily_data_is_by_day_of_year(weather):
    dataset = load_dataset(str(weather / "weather.nc"), variables="t2m", climatology_window=31)
    climatology = dataset.climatology
    assert (climatology.kind, climatology.calendar, climatology.window) == ("daily", "standard", 31)
    assert climatology.values.shape == (366, 6, 8, 1)
    # The band is northern: July is warmer than January by several kelvin.
    january, july = climatology.values[10].mean(), climatology.values[190].mean()
    assert july - january > 5


def test_less_than_a_year_falls_back_to_each_cells_mean_with_a_warning(weather):
    with pytest.warns(ClimatologyWarning, match=r"one full year .*each cell's training mean"):
        dataset = load_dataset(
            str(weather / "weather.nc"), variables="t2m", fractions=(0.3, 0.35, 0.35)
        )
    assert dataset.climatology.kind == "annual"


def test_an_even_window_is_refused_not_fallen_back_from(weather):
    with pytest.raises(DataError, match=r"data\.climatology_window=4 is invalid: must be odd"):
        load_dataset(str(weather / "weather.nc"), variables="t2m", climatology_window=4)


def test_climatology_normalization_makes_anomalies_and_inverts(weather):
    dataset = load_dataset(
        str(weather / "weather.nc"), variables="t2m", normalization="climatology",
        input_length=2, horizon=1,
    )  # fmt: skip
    normalizer, source = dataset.normalizer, dataset.splits["validation"]
    start = source.starts[0]
    frames = source.field.isel(time=slice(start, start + 3))
    times = frames["time"].values
    expected = (frames.values - dataset.climatology.at(times)) / normalizer.std
    example = source[0]
    np.testing.assert_allclose(example["inputs"], expected[:2], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(example["targets"], expected[2:], rtol=1e-5, atol=1e-5)
    back = normalizer.denormalize(example["targets"], times[2:])
    np.testing.assert_allclose(back, frames.values[2:], rtol=1e-6)


def test_calendar_and_static_inputs_are_inputs_only(weather):
    static = f"{weather / 'orography.nc'}:orography"
    dataset = load_dataset(
        str(weather / "weather.nc"), variables=["t2m", "u10"], targets=["t2m"], input_length=2,
        horizon=1, static=static, time_features=True,
    )  # fmt: skip
    assert dataset.extra.names == ["orography", "sin_day_of_year", "cos_day_of_year"]
    assert dataset.input_shape == (2, 6, 8, 5)
    example = dataset.splits["train"][0]
    assert example["inputs"].shape == (2, 6, 8, 5) and example["targets"].shape == (1, 6, 8, 1)
    orography = xr.open_dataset(weather / "orography.nc")["orography"].values
    normalized = (orography - orography.mean()) / orography.std()
    np.testing.assert_allclose(example["inputs"][0, ..., 2], normalized, rtol=1e-4, atol=1e-5)
    # 1 and 2 January 1990: days 0 and 1 of 365.
    angles = 2 * np.pi * np.array([0, 1]) / 365
    np.testing.assert_allclose(example["inputs"][:, 0, 0, 3], np.sin(angles), atol=1e-6)
    np.testing.assert_allclose(example["inputs"][:, 0, 0, 4], np.cos(angles), atol=1e-6)


def test_a_seasonal_run_scores_forecasts_and_predicts_its_targets_only(seasonal_run, weather):
    run = RunDirectory(seasonal_run)
    description = json.loads((seasonal_run / "data.json").read_text())
    assert description["extra_inputs"] == {
        "static": ["orography"], "calendar": ["sin_day_of_year", "cos_day_of_year"]
    }  # fmt: skip
    assert description["input_shape"] == [3, 6, 8, 6]  # t2m, u10, v10, orography, sin, cos
    inputs = [item["path"] for item in run.provenance()["inputs"]]
    assert inputs == [str(weather / "weather.nc"), str(weather / "orography.nc")]
    results = run.results()
    assert list(results) == ["t2m"]
    assert results["t2m"]["climatology"]["climatology"] == "by day of year, smoothed over 31 days"
    assert "acc" in results["t2m"]["stconvs2s-r"]
    forecaster = Forecaster.load(seasonal_run)
    assert forecaster.climatology.kind == "daily"
    assert forecaster.normalizer.climatology is not None
    forecast = forecaster.forecast(weather / "weather.nc")
    assert list(forecast.data_vars) == ["t2m"]
    values = forecast["t2m"].isel(init_time=slice(0, 3)).values
    assert np.all(np.isfinite(values)) and 200 < values.mean() < 330  # kelvin, not anomalies
    again = forecaster.evaluate(weather / "weather.nc")
    assert again["t2m"]["climatology"]["climatology"] == "by day of year, smoothed over 31 days"


def test_the_table_names_a_climatology_by_time_of_year(seasonal_run):
    out = (seasonal_run / "results.json").read_text()
    assert "by day of year" in out
    assert cli.main(["evaluate", "--workdir", str(seasonal_run)]) == 0


def test_events_are_scored_beside_the_baselines_of_the_seasons(seasonal_run, tmp_path):
    run = shutil.copytree(seasonal_run, tmp_path / "run")
    assert cli.main(["evaluate", "--workdir", str(run), "--thresholds", "q90"]) == 0
    results = json.loads((run / "results.json").read_text())["t2m"]
    for name in ("stconvs2s-r", "anomaly_persistence", "damped_anomaly_persistence"):
        events = results[name]["events"]
        assert events["thresholds"] == ["q90"] and 0 < events["hit_rate"][0] <= 1


def test_new_data_without_dates_or_on_another_grid_is_refused(seasonal_run, weather, tmp_path):
    forecaster = Forecaster.load(seasonal_run)
    data = xr.open_dataset(weather / "weather.nc")
    numbers = data.assign_coords(time=np.arange(data.sizes["time"], dtype=float))
    with pytest.raises(DataError, match=r"data\.time_features=True needs a time axis of dates"):
        forecaster.forecast(numbers)
    other = data.isel(lat=slice(0, 4))
    with pytest.raises(DataError, match=r"reads static fields \['orography'\] of its own grid"):
        forecaster.forecast(other, other_grid=True)


def test_a_static_file_on_another_grid_is_refused(weather, tmp_path):
    plain = load_dataset(str(weather / "weather.nc"), static=str(weather / "orography.nc"))
    orography = xr.open_dataset(weather / "orography.nc")
    orography.isel(lat=slice(None, None, -1)).to_netcdf(tmp_path / "flipped.nc")  # the same cells
    flipped = load_dataset(str(weather / "weather.nc"), static=str(tmp_path / "flipped.nc"))
    np.testing.assert_array_equal(flipped.extra.static, plain.extra.static)
    orography.isel(lon=slice(0, 5)).to_netcdf(tmp_path / "small.nc")
    with pytest.raises(DataError, match=r"data.static='.*small.nc' is on another grid \(lon"):
        load_dataset(str(weather / "weather.nc"), static=str(tmp_path / "small.nc"))


def test_static_fields_of_one_time_step_are_read_as_era5_gives_its_invariants(weather, tmp_path):
    orography = xr.open_dataset(weather / "orography.nc")
    orography.expand_dims(valid_time=[np.datetime64("1940-01-01")]).to_netcdf(tmp_path / "one.nc")
    one = load_dataset(str(weather / "weather.nc"), static=str(tmp_path / "one.nc"))
    plain = load_dataset(str(weather / "weather.nc"), static=str(weather / "orography.nc"))
    np.testing.assert_array_equal(one.extra.static, plain.extra.static)
    assert one.extra.static_names == ("orography",)
    two = xr.concat([orography, orography + 1], "valid_time")
    two.to_netcdf(tmp_path / "two.nc")
    with pytest.raises(DataError, match=r"not static: orography \(valid_time: 2, lat, lon\)$"):
        load_dataset(str(weather / "weather.nc"), static=str(tmp_path / "two.nc"))


def test_time_features_need_dates(tmp_path):
    data = weather_dataset(years=1, lat=4, lon=4).drop_vars("orography")
    data = data.assign_coords(time=np.arange(data.sizes["time"], dtype=float))
    data["time"].attrs = {"axis": "T"}
    data.to_netcdf(tmp_path / "numbers.nc")
    with pytest.raises(DataError, match=r"data\.time_features=True needs a time axis of dates"):
        load_dataset(str(tmp_path / "numbers.nc"), time_features=True)


def test_an_ensemble_of_a_seasonal_run_is_scored_against_the_seasons(seasonal_run):
    forecaster = Forecaster.load(seasonal_run)
    dataset = load_config_dataset(forecaster.config)
    ensemble = forecaster.perturbed(2, 0.3)
    test, train = dataset.splits["test"], dataset.splits["train"]
    results = ensemble.score(test, dataset.grid.lat, "the test split", train=train)["t2m"]
    assert set(results) == {
        "stconvs2s-r", "persistence", "climatology", "input_mean", "anomaly_persistence",
        "damped_anomaly_persistence", "climatological_ensemble",
    }  # fmt: skip
    assert "acc" in results["stconvs2s-r"] and results["stconvs2s-r"]["ensemble"]["members"] == 2
    assert not any("events" in record for record in results.values())  # t2m: no events
    # three years, 60% of them for training: one complete year from its first day
    climate = results["climatological_ensemble"]
    assert climate["ensemble"]["members"] == 1
    assert climate["ensemble"]["crps"] == pytest.approx(climate["weighted_mae"], rel=1e-5)
    assert climate["climatology"] == "by day of year, smoothed over 31 days"


def by_hand_rmse(forecasts: np.ndarray, truth: np.ndarray) -> float:
    valid = np.isfinite(truth)
    return float(np.sqrt(np.mean(np.square(forecasts - truth)[valid])))


def test_the_baselines_mean_the_same_whatever_the_normalization(seasonal_run):
    """The run subtracts the climatology (``--normalization climatology``), yet
    persistence is the last input frame and the input mean the inputs' mean,
    in kelvin; the anomaly persistence adds the last anomaly to each lead's
    climatology, the damped one times the factors fitted on the training
    split: each checked against the raw frames by hand."""
    forecaster = Forecaster.load(seasonal_run)
    dataset = load_config_dataset(forecaster.config)
    test, train = dataset.splits["test"], dataset.splits["train"]
    results = forecaster.score(test, dataset.grid.lat, "the test split", train=train)["t2m"]
    climatology = dataset.climatology.first(1)
    windows = np.stack([test.field.isel(time=slice(s, s + 5)).values[..., :1] for s in test.starts])
    inputs, truth = windows[:, :3], windows[:, 3:]  # 3 inputs, 2 leads
    truth = np.where(dataset.mask[..., :1], truth, np.nan)
    init_clim = climatology.at(test.init_times())[:, None]
    valid_clim = climatology.at(test.valid_times())
    anomaly = inputs[:, -1:] - init_clim
    damping = fit_damping(train.series()[..., :1], train.series_times(), climatology, 2)
    expected = {
        "persistence": np.repeat(inputs[:, -1:], 2, axis=1),
        "input_mean": np.repeat(inputs.mean(axis=1, keepdims=True), 2, axis=1),
        "anomaly_persistence": valid_clim + anomaly,
        "damped_anomaly_persistence": valid_clim + damping[:, None, None, :] * anomaly,
    }
    for name, forecasts in expected.items():
        assert results[name]["rmse"] == pytest.approx(by_hand_rmse(forecasts, truth), rel=1e-4)
    assert results["damped_anomaly_persistence"]["rmse"] != results["anomaly_persistence"]["rmse"]


def test_the_damping_is_the_lag_regression_of_the_anomalies():
    """An AR(1) anomaly of factor 0.8 around a seasonal cycle: the fitted
    damping is 0.8 at lead 1 and 0.64 at lead 2; a hand example of three frames."""
    times = np.arange("2001-01-01", "2011-01-01", dtype="datetime64[D]")
    rng = np.random.default_rng(0)
    anomalies = np.zeros((len(times), 2, 2, 1))
    for t in range(1, len(times)):
        anomalies[t] = 0.8 * anomalies[t - 1] + rng.normal(size=(2, 2, 1))
    values = np.zeros((366, 2, 2, 1))  # a climatology by day of year
    values[:, 0, 0, 0] = 10 * np.sin(np.arange(366) / 366 * 2 * np.pi)
    climatology = Climatology("daily", values, "standard")
    series = climatology.at(times) + anomalies
    np.testing.assert_allclose(
        fit_damping(series, times, climatology, 2)[:, 0], [0.8, 0.64], atol=0.02
    )
    hand = np.array([1.0, 2.0, 3.0])[:, None, None, None]  # anomalies 1, 2, 3 (climatology 0)
    zero = Climatology("daily", np.zeros((366, 1, 1, 1)), "standard")
    factors = fit_damping(hand, times[:3], zero, 2)[:, 0]
    np.testing.assert_allclose(factors, [(1 * 2 + 2 * 3) / (1 + 4), (1 * 3) / 1])


def test_a_damped_residual_keeps_the_factors_fitted_on_the_training_split(weather, tmp_path):
    from stconv.runs.assembly import build
    from stconv.training.step import make_train_step

    workdir = tmp_path / "damped"
    argv = ["train", "--workdir", str(workdir), *TINY, "--dataset", str(weather / "weather.nc")]
    argv += ["--variables", "t2m", "--normalization", "climatology", "--climatology-window", "31"]
    assert cli.main([*argv, "--residual", "--residual-base", "damped", "--bootstrap", "0"]) == 0
    config = Forecaster.load(workdir).config
    dataset = load_config_dataset(config)
    train = dataset.splits["train"]
    expected = fit_damping(train.series(), train.series_times(), dataset.climatology, 2)
    model, optimizer = build(config, dataset.input_shape, 1)
    _, state = make_train_step(model, optimizer)
    RunDirectory(workdir).checkpoints().restore("best", state)
    nnx.update((model, optimizer), state)
    np.testing.assert_allclose(model.damping[...], expected, rtol=1e-6)
    assert 0 < expected[1, 0] < expected[0, 0] < 1  # the anomaly fades with the lead time


def test_the_anomaly_bases_need_anomaly_inputs(tmp_path, capsys):
    workdir = tmp_path / "refused"
    argv = ["train", "--residual", "--residual-base", "anomaly", "--workdir", str(workdir)]
    assert cli.main(argv) == 2
    error = capsys.readouterr().err
    assert "--residual-base 'anomaly' is invalid with --normalization 'channel'" in error
    assert "(--normalization climatology)" in error and not workdir.exists()
