"""Per-cell ARIMA: exact linear-map forecasts, masks, the missing-dependency error, the CLI."""

import dataclasses
import importlib
import json
import sys

import numpy as np
import pytest
import xarray as xr
from conftest import paper_format_dataset

import stconv
from stconv import cli
from stconv.config import Config
from stconv.config.run import check_fitted_settings
from stconv.data.registry import load_dataset
from stconv.data.synthetic import write_synthetic_netcdf
from stconv.evaluation.baselines import persistence
from stconv.models import arima

T, H = 5, 5


def ar2_field(num_steps, lat=2, lon=3, seed=0):
    """Independent oscillating AR(2) series, ``(time, lat, lon, 1)``, mean 1 in every cell."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((num_steps, lat, lon, 1))
    field = np.zeros_like(noise)
    for t in range(2, num_steps):
        field[t] = 0.9 * field[t - 1] - 0.5 * field[t - 2] + noise[t]
    return field + 1.0


def windows(field):
    """Every input window and its targets."""
    starts = range(len(field) - T - H + 1)
    inputs = np.stack([field[s : s + T] for s in starts])
    targets = np.stack([field[s + T : s + T + H] for s in starts])
    return inputs, targets


@pytest.fixture(scope="module")
def fitted():
    field = ar2_field(300)
    train, test = field[:200], field[200:]
    mask = np.ones(field.shape[1:], bool)
    return train, test, arima.fit(train, mask, T, H, workers=1)


@pytest.mark.parametrize("center", ["train", "window"])
def test_linear_map_equals_statsmodels_forecast(fitted, center):
    train, _, forecaster = fitted
    forecaster = dataclasses.replace(forecaster, center=center)
    rng = np.random.default_rng(1)
    inputs = rng.standard_normal((3, T, *train.shape[1:]))
    forecasts = forecaster(inputs)
    assert forecasts.shape == (3, H, *train.shape[1:])
    for y, x in [(0, 0), (1, 2)]:
        series = train[:, y, x, 0] - train[:, y, x, 0].mean()
        results = arima.SARIMAX(series, order=(5, 0, 1)).filter(forecaster.params[y, x, 0])
        for window, forecast in zip(inputs[..., y, x, 0], forecasts[..., y, x, 0], strict=True):
            level = window.mean() if center == "window" else train[:, y, x, 0].mean()
            expected = level + results.apply(window - level).forecast(H)
            np.testing.assert_allclose(forecast, expected, rtol=0, atol=1e-8)


def test_arima_beats_persistence_on_an_ar2_series(fitted):
    _, test, forecaster = fitted
    inputs, targets = windows(test)
    arima_rmse = np.sqrt(np.mean((forecaster(inputs) - targets) ** 2))
    persistence_rmse = np.sqrt(np.mean((persistence(inputs, H) - targets) ** 2))
    assert arima_rmse < 0.8 * persistence_rmse
    assert forecaster.cells == 6 and np.isfinite(forecaster.params).all()


def test_masked_and_missing_cells(tmp_path):
    train = ar2_field(120)
    train[:, 0, 0] = np.nan  # no data: not fitted
    train[10:20, 1, 1] = np.nan  # missing values: fitted by the Kalman filter
    mask = np.isfinite(train).any(0)
    mask[0, 1] = False  # masked by a land mask: not fitted
    forecaster = arima.fit(train, mask, T, H, workers=1)
    assert forecaster.cells == 4
    assert np.isnan(forecaster.params[0, 0]).all() and np.isnan(forecaster.params[0, 1]).all()
    assert not forecaster.weights[0, :2].any() and forecaster.mean[0, :2].tolist() == [[0], [0]]
    inputs, _ = windows(ar2_field(30, seed=3))
    forecasts = forecaster(inputs)
    np.testing.assert_array_equal(forecasts[..., 0, :2, :], 0.0)  # their mean
    assert np.isfinite(forecasts).all() and forecasts.dtype == inputs.dtype

    forecaster.save(tmp_path / "arima.npz")
    loaded = arima.ARIMAForecaster.load(tmp_path / "arima.npz")
    np.testing.assert_array_equal(loaded(inputs), forecasts)
    assert loaded.order == (5, 0, 1) and loaded.cells == 4


def test_missing_statsmodels_is_a_one_line_error(monkeypatch, tmp_path, capsys):
    for name in [m for m in sys.modules if m.split(".")[0] == "statsmodels"]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, "stconv.models.arima")
    monkeypatch.delattr(stconv.models, "arima")
    with pytest.raises(ImportError, match=r"pip install 'stconv\[arima\]'") as error:
        importlib.import_module("stconv.models.arima")
    assert "\n" not in str(error.value)
    arguments = ["train", "--workdir", str(tmp_path / "run"), "--model", "arima"]
    assert cli.main([*arguments, "--dataset", "synthetic"]) == 1
    message = capsys.readouterr().err
    assert message.count("\n") == 1 and "pip install 'stconv[arima]'" in message
    assert not (tmp_path / "run").exists()


def test_train_arima_end_to_end(tmp_path, capsys):
    """Fits in worker processes (one per CPU), as `stconv train` does."""
    data = tmp_path / "tiny.nc"
    write_synthetic_netcdf(data, 120, 2, 3, seed=4, variable="synthetic_0")
    workdir = tmp_path / "run"
    arguments = ["train", "--workdir", str(workdir), "--model", "arima", "--dataset", str(data)]
    assert cli.main([*arguments, "--forecast-samples", "2"]) == 0
    out = capsys.readouterr().out
    assert "fitted SARIMAX(5, 0, 1) to 6 cells" in out and "arima" in out
    results = json.loads((workdir / "results.json").read_text())["synthetic_0"]
    assert set(results) == {"arima", "persistence", "climatology", "input_mean"}
    assert all(len(r["rmse_per_lead"]) == H and r["rmse"] > 0 for r in results.values())
    for name in ("arima.npz", "forecast_maps.png", "config.json", "normalization.json"):
        assert (workdir / name).exists()
    with xr.open_dataset(workdir / "test_forecasts.nc") as forecasts:
        assert forecasts["synthetic_0"].shape == (15, H, 2, 3)  # 24 test steps
        assert np.isfinite(forecasts["synthetic_0"].values).all()

    assert cli.main(["evaluate", "--workdir", str(workdir)]) == 0
    assert json.loads((workdir / "results.json").read_text())["synthetic_0"] == results
    assert cli.main([*arguments, "--forecast-samples", "2", "--resume"]) == 0
    assert "resuming" in capsys.readouterr().out

    new_file, output = tmp_path / "new.nc", tmp_path / "forecast.nc"
    write_synthetic_netcdf(new_file, 12, 2, 3, seed=9, variable="synthetic_0")
    predict = ["predict", "--workdir", str(workdir), "--input", str(new_file)]
    assert cli.main([*predict, "--output", str(output)]) == 0
    with xr.open_dataset(output) as forecast:
        assert forecast["synthetic_0"].shape == (8, H, 2, 3)
        assert 250 < float(forecast["synthetic_0"].mean()) < 310


def test_model_names_and_help(tmp_path, capsys):
    assert cli.main(["train", "--workdir", str(tmp_path), "--model", "unet"]) == 2
    assert "or 'arima'" in capsys.readouterr().err
    assert cli.main(["train", "--workdir", str(tmp_path), "--arima-center", "last"]) == 2
    assert "--arima-center 'last' is invalid" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    assert "refuses the network, optimizer, epoch" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize(
    "flags, named",
    [
        (["--epochs", "5"], "--epochs 5"),
        (["--hidden-dim", "8", "--learning-rate", "0.01"], "--hidden-dim 8"),
        (["--iterations", "3"], "--iterations 3"),
        (["--config", "CONFIG"], "--learning-rate 0.01"),
    ],
)
def test_network_settings_given_to_arima_are_refused(tmp_path, capsys, flags, named):
    (tmp_path / "run.toml").write_text("[training]\nlearning_rate = 0.01\n")
    flags = [str(tmp_path / "run.toml") if flag == "CONFIG" else flag for flag in flags]
    workdir = tmp_path / "run"
    assert cli.main(["train", "--workdir", str(workdir), "--model", "arima", *flags]) == 2
    error = capsys.readouterr().err
    assert error == (
        f"stconv train: error: {named} is not used by --model 'arima', which fits each "
        "cell's series in closed form: leave it out\n"
    )
    assert not workdir.exists()


def test_training_series_of_both_sources(tmp_path, series_file):
    dataset = load_dataset(series_file, input_length=2, horizon=2, normalization="none")
    series = dataset.splits["train"].series()  # value 100 t + 10 i + j, 18 training steps
    np.testing.assert_array_equal(series[:, 1, 2, 0], 100 * np.arange(18) + 12)
    path = tmp_path / "paper.nc"
    paper_format_dataset().to_netcdf(path)
    paper = load_dataset("cfsr", path=str(path), normalization="none")
    samples = paper.splits["train"].samples  # x[s, t] = s + t / 100
    np.testing.assert_allclose(paper.splits["train"].series()[:, 0, 0, 0], np.asarray(samples))


def test_network_settings_at_their_defaults_pass_as_a_printed_config_holds_them():
    config = Config.from_flags(model="arima", epochs=80, hidden_dim=32)
    check_fitted_settings(config, {"epochs": 80, "hidden_dim": 32})  # `info --config`'s
    with pytest.raises(ValueError, match=r"^training.epochs=81 is not used by model.name="):
        check_fitted_settings(Config.from_flags(model="arima", epochs=81), {"epochs": 81})
