"""Zonal power spectra (Parseval, against scipy's periodogram, a cosine, the
exact damping of a running mean, accumulation, missing rows) and the figures
of per-cell scores, a forecast and spectra."""

import numpy as np
import pytest
import scipy.signal
import xarray as xr
from matplotlib.figure import Figure

from stconv.evaluation.maps import (
    cell_score_maps,
    chosen_leads,
    forecast_figure,
    spectra_figure,
)
from stconv.evaluation.spectra import (
    SpectrumAccumulator,
    spectral_ratio,
    zonal_power_spectrum,
)


def running_mean(values: np.ndarray, axis: int) -> np.ndarray:
    """The circular 3-cell running mean along ``axis``."""
    shifted = (np.roll(values, shift, axis=axis) for shift in (-1, 0, 1))
    return sum(shifted) / 3


@pytest.mark.parametrize("lon", [16, 17])
def test_parseval_sum_of_spectrum_is_mean_square(lon):
    field = np.random.default_rng(lon).normal(2.0, 3.0, size=(2, 3, 5, lon))
    spectrum = zonal_power_spectrum(field)
    assert spectrum.shape == (2, 3, lon // 2 + 1)
    np.testing.assert_allclose(spectrum.sum(axis=-1), np.mean(field**2, axis=(-2, -1)))


@pytest.mark.parametrize("lon", [10, 11])
def test_spectrum_is_scipys_periodogram_averaged_over_rows(lon):
    field = np.random.default_rng(1).normal(size=(4, lon)).astype(np.float32)
    _, periodogram = scipy.signal.periodogram(field, scaling="spectrum", detrend=False)
    np.testing.assert_allclose(zonal_power_spectrum(field), periodogram.mean(axis=0), rtol=1e-6)


@pytest.mark.parametrize("lon", [12, 13])
def test_cosine_of_wavenumber_3_puts_half_its_squared_amplitude_at_3(lon):
    n = np.arange(lon)
    field = np.stack([2.5 * np.cos(2 * np.pi * 3 * n / lon + phase) for phase in (0.0, 1.0)])
    expected = np.zeros(lon // 2 + 1)
    expected[3] = 2.5**2 / 2
    np.testing.assert_allclose(zonal_power_spectrum(field), expected, atol=1e-12)


def test_nyquist_wavenumber_and_mean_are_not_doubled():
    alternating = 1.5 * (-1.0) ** np.arange(8)
    np.testing.assert_allclose(zonal_power_spectrum(alternating[None])[-1], 1.5**2)
    constant = np.full((1, 7), -2.0)
    np.testing.assert_allclose(zonal_power_spectrum(constant), [4.0, 0, 0, 0], atol=1e-12)


def test_rows_with_a_missing_cell_are_skipped():
    field = np.random.default_rng(2).normal(size=(3, 4, 9))
    field[0, 1, 5] = np.nan
    field[1, :, 0] = np.nan
    spectrum = zonal_power_spectrum(field)
    np.testing.assert_allclose(spectrum[0], zonal_power_spectrum(field[0, [0, 2, 3]]))
    assert np.isnan(spectrum[1]).all()
    np.testing.assert_allclose(spectrum[2], zonal_power_spectrum(field[2]))


def test_zonal_power_spectrum_rejects_a_field_without_rows():
    with pytest.raises(ValueError, match=r"field: shape \(5,\) is not \(\.\.\., lat, lon\)"):
        zonal_power_spectrum(np.zeros(5))


def batches(seed: int = 0, shape=(3, 2, 5, 16, 2)) -> tuple[np.ndarray, np.ndarray]:
    """A truth and its 3-cell running mean along longitude (the blurred forecast)."""
    truth = np.random.default_rng(seed).normal(size=shape)
    return truth, running_mean(truth, axis=3)


def accumulated(pairs, names=("model", "truth")) -> xr.Dataset:
    accumulator = SpectrumAccumulator(names)
    for truth, forecast in pairs:
        accumulator.add("truth", truth)
        accumulator.add("model", forecast)
    return accumulator.result(["t2m", "z500"], ["K", "m"])


def test_result_layout_and_mean_over_windows():
    truth, forecast = batches()
    spectra = accumulated([(truth, forecast)])
    assert spectra["power"].dims == ("source", "variable", "lead_time", "wavenumber")
    assert list(spectra["source"].values) == ["model", "truth"]
    assert list(spectra["lead_time"].values) == [1, 2]
    assert list(spectra["wavenumber"].values) == list(range(9))
    assert list(spectra["units"].values) == ["K", "m"]
    assert (spectra["windows"].values == 3).all()
    per_window = zonal_power_spectrum(truth[:, 1, :, :, 0])  # lead 2, channel t2m
    np.testing.assert_allclose(
        spectra["power"].sel(source="truth", variable="t2m", lead_time=2), per_window.mean(axis=0)
    )


def test_running_mean_damps_high_wavenumbers_by_its_transfer_function():
    truth, forecast = batches()
    ratio = spectral_ratio(accumulated([(truth, forecast)]))["ratio"]
    assert list(ratio["source"].values) == ["model"]
    k = np.arange(9)
    damping = ((1 + 2 * np.cos(2 * np.pi * k / 16)) / 3) ** 2  # |H_k|^2 of the running mean
    expected = np.broadcast_to(damping, ratio.shape[1:])
    np.testing.assert_allclose(ratio.sel(source="model").values, expected, atol=1e-12)
    assert (ratio.sel(wavenumber=slice(3, None)) < 0.5).all()
    np.testing.assert_allclose(ratio.sel(wavenumber=0), 1.0)


def test_two_batches_accumulate_as_one():
    first, second = batches(seed=3), batches(seed=4, shape=(2, 2, 5, 16, 2))
    joined = tuple(np.concatenate(parts) for parts in zip(first, second, strict=True))
    xr.testing.assert_allclose(accumulated([first, second]), accumulated([joined]))


def test_masked_and_nan_windows_are_left_out_of_the_mean():
    truth, _ = batches()
    mask = np.ones(truth.shape, bool)
    mask[0, 0, :, 3, 1] = False  # window 0, lead 1, z500: no complete row
    accumulator = SpectrumAccumulator(("truth",))
    accumulator.add("truth", truth, mask=mask)
    spectra = accumulator.result(["t2m", "z500"], ["K", "m"])
    assert spectra["windows"].sel(source="truth").values.tolist() == [[3, 3], [2, 3]]
    expected = zonal_power_spectrum(truth[1:, 0, :, :, 1]).mean(axis=0)
    np.testing.assert_allclose(
        spectra["power"].sel(source="truth", variable="z500", lead_time=1), expected
    )
    truth[0, 0, :, 3, 1] = np.nan
    nan_accumulator = SpectrumAccumulator(("truth",))
    nan_accumulator.add("truth", truth)
    xr.testing.assert_allclose(nan_accumulator.result(["t2m", "z500"], ["K", "m"]), spectra)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda a: a.add("persistence", np.zeros((1, 2, 3, 4, 1))), "name: 'persistence'"),
        (lambda a: a.add("truth", np.zeros((2, 3, 4, 1))), r"values of 'truth': shape \(2, 3"),
        (lambda a: a.result(["t2m"], ["K"]), "no values were added"),
    ],
)
def test_accumulator_rejects_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call(SpectrumAccumulator(("model", "truth")))


def test_accumulator_rejects_a_changed_shape_and_miscounted_variables():
    accumulator = SpectrumAccumulator(("model", "truth"))
    accumulator.add("truth", np.zeros((1, 2, 3, 8, 1)))
    with pytest.raises(
        ValueError, match=r"differs from the earlier batches' \(batch, 2, 3, 8, 1\)"
    ):
        accumulator.add("model", np.zeros((1, 2, 3, 9, 1)))
    with pytest.raises(ValueError, match="variables: 2 given for 1 channels"):
        accumulator.result(["t2m", "z500"], ["K", "m"])
    with pytest.raises(ValueError, match="need 'truth' and at least one forecast"):
        spectral_ratio(accumulator.result(["t2m"], ["K"]))


def test_default_leads_spread_over_the_horizon():
    assert chosen_leads(np.arange(1, 7), None) == [1, 3, 4, 6]
    assert chosen_leads(np.arange(1, 3), None) == [1, 2]
    assert chosen_leads(np.arange(1, 2), None) == [1]


def cell_scores() -> xr.Dataset:
    """Per-cell scores of two forecasts, 6 leads, a 4 x 5 grid, 2 variables."""
    rng = np.random.default_rng(5)
    shape = (2, 6, 4, 5, 2)
    dims = ("forecast", "lead_time", "lat", "lon", "variable")
    return xr.Dataset(
        {
            "rmse": (dims, rng.uniform(0.5, 2.0, shape)),
            "bias": (dims, rng.normal(0.3, 1.0, shape)),
            "acc": (dims, rng.uniform(0.2, 0.9, shape)),
        },
        coords={
            "forecast": ["model", "persistence"],
            "lead_time": np.arange(1, 7),
            "lat": [60.0, 30.0, 0.0, -30.0],
            "lon": [0.0, 72.0, 144.0, 216.0, 288.0],
            "variable": ["t2m", "z500"],
            "units": ("variable", ["K", "m"]),
        },
    )


def maps_of(figure: Figure) -> list:
    """The map axes of ``figure`` (those with a title; the colour bars have none)."""
    return [axis for axis in figure.axes if axis.get_title()]


def test_cell_score_maps_rows_of_variables_columns_of_leads():
    figure = cell_score_maps(cell_scores(), "rmse", "model")
    maps = maps_of(figure)
    assert len(maps) == 2 * 4 and len(figure.axes) == 2 * 4 + 2  # a colour bar per variable
    titles = [axis.get_title() for axis in maps]
    assert titles[0] == "t2m, lead 1: model rmse (K)"
    assert titles[7] == "z500, lead 6: model rmse (m)"
    assert [title.split(",")[1].split(":")[0] for title in titles[:4]] == [
        " lead 1",
        " lead 3",
        " lead 4",
        " lead 6",
    ]
    low, high = maps[0].collections[0].get_clim()
    t2m = cell_scores()["rmse"].sel(forecast="model", variable="t2m", lead_time=[1, 3, 4, 6])
    assert (low, high) == (0.0, pytest.approx(float(t2m.max())))


def test_cell_score_maps_bias_symmetric_and_acc_on_minus_one_to_one(tmp_path):
    scores = cell_scores()
    figure = cell_score_maps(scores, "bias", "persistence", leads=[2, 5])
    figure.savefig(tmp_path / "bias.png", dpi=40)
    assert (tmp_path / "bias.png").stat().st_size > 0
    bias = maps_of(figure)
    assert len(bias) == 4
    largest = np.abs(scores["bias"].sel(forecast="persistence", variable="z500", lead_time=[2, 5]))
    assert bias[3].collections[0].get_clim() == (-float(largest.max()), float(largest.max()))
    assert bias[3].get_title() == "z500, lead 5: persistence bias (m)"
    acc = maps_of(cell_score_maps(scores, "acc", "model", leads=[1]))
    assert [axis.collections[0].get_clim() for axis in acc] == [(-1.0, 1.0)] * 2
    assert acc[0].get_title() == "t2m, lead 1: model acc"


@pytest.mark.parametrize(
    "arguments, message",
    [
        (("mae", "model", None), "metric: 'mae' is not in the scores; allowed: rmse, bias, acc"),
        (("rmse", "unet", None), "forecast: 'unet' is not in the scores; allowed: model, pers"),
        (("rmse", "model", [2, 7]), r"leads: \[7\] not lead times of the data; allowed: 1\.\.6"),
    ],
)
def test_cell_score_maps_rejects_bad_choices(arguments, message):
    with pytest.raises(ValueError, match=message) as error:
        cell_score_maps(cell_scores(), *arguments)
    assert "\n" not in str(error.value)


def forecast_case() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(6)
    truth = rng.normal(280.0, 5.0, size=(5, 4, 6))
    forecast = truth + rng.normal(0.0, 1.0, size=truth.shape) * np.arange(1, 6)[:, None, None]
    return truth, forecast, np.array([-45.0, -15.0, 15.0, 45.0]), np.arange(0.0, 360.0, 60.0)


def test_forecast_figure_truth_forecast_error_per_lead(tmp_path):
    truth, forecast, lat, lon = forecast_case()
    figure = forecast_figure(truth, forecast, lat, lon, "t2m 2020-01-01", [1, 5], units="K")
    maps = maps_of(figure)
    assert len(maps) == 6 and len(figure.axes) == 6 + 2  # truth and forecast share a colour bar
    assert [axis.get_title() for axis in maps[:3]] == [
        "t2m 2020-01-01, lead 1: truth",
        "t2m 2020-01-01, lead 1: forecast",
        "t2m 2020-01-01, lead 1: forecast - truth",
    ]
    shown = np.concatenate([truth[[0, 4]], forecast[[0, 4]]])
    limits = {maps[i].collections[0].get_clim() for i in (0, 1, 3, 4)}
    assert limits == {(shown.min(), shown.max())}
    bound = np.abs(forecast[[0, 4]] - truth[[0, 4]]).max()
    assert maps[5].collections[0].get_clim() == (-bound, bound)
    assert maps[5].get_title() == "t2m 2020-01-01, lead 5: forecast - truth"
    figure.savefig(tmp_path / "forecast.png", dpi=40)
    assert (tmp_path / "forecast.png").stat().st_size > 0


def test_forecast_figure_rejects_bad_leads_and_shapes():
    truth, forecast, lat, lon = forecast_case()
    with pytest.raises(ValueError, match=r"leads: \[0, 6\] not lead times .*allowed: 1\.\.5"):
        forecast_figure(truth, forecast, lat, lon, "t2m", [0, 3, 6])
    with pytest.raises(ValueError, match=r"truth \(5, 4, 6\), forecast \(5, 4, 5\)"):
        forecast_figure(truth, forecast[..., :5], lat, lon, "t2m", [1])


def test_spectra_figure_truth_and_forecasts_per_lead_and_variable(tmp_path):
    spectra = accumulated([batches()])
    figure = spectra_figure(spectra)
    assert len(figure.axes) == 2 * 2  # leads 1 and 2, variables t2m and z500
    axis = figure.axes[3]
    assert axis.get_title() == "z500, lead 2"
    assert axis.get_xscale() == axis.get_yscale() == "log"
    assert axis.get_ylabel() == "power (m²)"
    lines = {line.get_label(): line for line in axis.get_lines()}
    assert set(lines) == {"model", "truth"}
    assert list(lines["truth"].get_xdata()) == list(range(1, 9))
    expected = spectra["power"].sel(source="model", variable="z500", lead_time=2, wavenumber=[8])
    np.testing.assert_allclose(lines["model"].get_ydata()[-1:], expected)
    assert len(maps_of(spectra_figure(spectra, leads=[2]))) == 2
    figure.savefig(tmp_path / "spectra.png", dpi=40)
    assert (tmp_path / "spectra.png").stat().st_size > 0
    with pytest.raises(
        ValueError, match=r"leads: \[3\] not lead times of the data; allowed: 1\.\.2"
    ):
        spectra_figure(spectra, leads=[3])
