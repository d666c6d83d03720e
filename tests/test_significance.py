"""Block bootstrap intervals and paired tests: hand examples, coverage of known
answers on synthetic series, and the oracles arch (block length), scipy (t-test)
and scores (Diebold-Mariano)."""

import math

import numpy as np
import pytest
import xarray as xr
from arch.bootstrap import optimal_block_length
from scipy import signal, stats
from scores.stats.statistical_tests import diebold_mariano

from stconv.evaluation import significance as sig

MEAN = {"mean": lambda s: s["x"] / s["n"]}
RMSE = {"rmse": lambda s: np.sqrt(s["squared"] / s["count"])}


def ar1(rng: np.random.Generator, n: int, phi: float, size: tuple = ()) -> np.ndarray:
    """Stationary AR(1) series of unit variance along the last axis."""
    shocks = rng.normal(size=(*size, n)) * math.sqrt(1 - phi**2)
    shocks[..., 0] /= math.sqrt(1 - phi**2)
    return signal.lfilter([1.0], [1.0, -phi], shocks, axis=-1)


def mean_coverage(phi: float, block: int | None = None, trials: int = 300, n: int = 200) -> float:
    """How often the 95% interval of the mean of an AR(1) series (true mean 3) covers 3."""
    series = ar1(np.random.default_rng(7), n, phi, (trials,)) + 3.0
    covered = 0
    for trial, x in enumerate(series):
        counts = sig.resampling_counts(n, block or sig.block_length(x), 400, trial)
        sums = sig.resampled({"x": x, "n": np.ones(n)}, counts)
        low, high = sig.interval(MEAN["mean"](sums))
        covered += low <= 3.0 <= high
    return covered / trials


def test_the_mean_interval_covers_the_true_mean_of_iid_series():
    assert 0.89 <= mean_coverage(0.0) <= 0.985


def test_the_mean_interval_covers_the_true_mean_of_autocorrelated_series_with_blocks_only():
    # The circular block bootstrap's variance of a mean is short by about G / (b n), G =
    # sum |k| R(k): for phi 0.7, 200 windows and b ~ 12 some 20%, and b is itself estimated,
    # so the coverage is below nominal (0.87 to 0.91 over seeds; it rises with the windows).
    # Windows drawn one by one ignore the autocorrelation: the variance is short by a factor
    # (1 + phi) / (1 - phi) = 5.7, and the coverage falls to about 0.6.
    assert 0.83 <= mean_coverage(0.7) <= 0.985
    assert mean_coverage(0.7, block=1) < 0.7


def test_the_rmse_interval_covers_the_true_rmse():
    # Each window: between 20 and 60 cells, errors = the window's AR(1) anomaly (variance 1)
    # + independent noise (variance 1): the RMSE over all cells is sqrt(2). The coverage is
    # below nominal for the reasons above and the skewness of squares (0.89 to 0.95 over seeds).
    rng = np.random.default_rng(11)
    trials, n = 300, 200
    anomaly = ar1(rng, n, 0.5, (trials,))
    cells = rng.integers(20, 61, size=(trials, n))
    noise_sum = rng.normal(size=(trials, n)) * np.sqrt(cells)  # sum of a window's noise
    noise_squares = rng.chisquare(cells)  # and of its squares
    squared = cells * anomaly**2 + 2 * anomaly * noise_sum + noise_squares
    covered = 0
    for trial in range(trials):
        sums = {"squared": squared[trial], "count": cells[trial] * 1.0}
        result = sig.bootstrap({"model": sums}, RMSE, "model", replicates=400, seed=trial)
        low, high = result["interval"]["model"]["rmse"]
        covered += low <= math.sqrt(2) <= high
    assert 0.87 <= covered / trials <= 0.985


def two_forecasts(rng: np.random.Generator, n: int, noise: float) -> dict:
    """Window sums of two forecasts with a shared autocorrelated error (both verify
    against the same truth) plus their own noise, 30 cells a window; the second's
    noise has standard deviation ``noise``."""
    shared = ar1(rng, n, 0.6)[:, None]
    sums = {}
    for name, scale in (("model", 1.0), ("other", noise)):
        errors = shared + scale * ar1(rng, 30 * n, 0.6).reshape(n, 30)
        sums[name] = {"squared": np.sum(errors**2, axis=1), "count": np.full(n, 30.0)}
    return sums


def test_the_paired_test_rejects_five_percent_of_equal_forecasts():
    rng = np.random.default_rng(5)
    p = [
        sig.bootstrap(two_forecasts(rng, 200, 1.0), RMSE, "model", 400, trial)["comparison"][
            "other"
        ]["rmse"]["p_value"]
        for trial in range(200)
    ]
    assert 0.015 <= np.mean(np.array(p) < 0.05) <= 0.1


def test_the_paired_test_rejects_a_clear_difference():
    result = sig.bootstrap(two_forecasts(np.random.default_rng(6), 200, 1.3), RMSE, "model")
    comparison = result["comparison"]["other"]["rmse"]
    assert comparison["difference"] < 0
    assert comparison["interval"][1] < 0
    assert comparison["p_value"] < 0.01


def difference_forecasts(difference: np.ndarray) -> dict:
    """A forecast whose per-window score (a mean) is ``difference`` and one of score 0."""
    ones = np.ones(len(difference))
    return {"model": {"x": difference, "n": ones}, "zero": {"x": 0 * ones, "n": ones}}


def test_the_p_value_of_iid_differences_is_the_t_tests():
    rng = np.random.default_rng(3)
    for trial, shift in enumerate((0.02, 0.04, 0.06)):
        difference = rng.normal(shift, 1.0, 1000)
        result = sig.bootstrap(difference_forecasts(difference), MEAN, "model", 3000, trial)
        p = result["comparison"]["zero"]["mean"]["p_value"]
        assert p == pytest.approx(stats.ttest_1samp(difference, 0.0).pvalue, abs=0.03)


def test_the_p_value_of_autocorrelated_differences_is_diebold_marianos():
    # scores' Diebold-Mariano test (Hering & Genton's estimate of the long-run variance: an
    # exponential autocovariance model, which an AR(1) follows) and the block bootstrap
    # (close to a Bartlett-kernel estimate with a bandwidth of one block, biased low by
    # O(1 / b)) estimate the same variance in different ways, so they agree loosely; an
    # iid test would give p-values several times too small here (variance 3 times too small).
    rng = np.random.default_rng(4)
    for trial in range(3):
        difference = ar1(rng, 1000, 0.5) + 0.1
        result = sig.bootstrap(difference_forecasts(difference), MEAN, "model", 3000, trial)
        comparison = result["comparison"]["zero"]["mean"]
        series = xr.DataArray(
            difference[None], dims=["series", "time"], coords={"h": ("series", [1])}
        )
        dm = diebold_mariano(series, "series", "h")
        confidence = float(dm["confidence_gt_0"][0])
        assert comparison["p_value"] == pytest.approx(2 * min(confidence, 1 - confidence), abs=0.05)
        low, high = comparison["interval"]
        dm_error = difference.mean() / float(dm["dm_test_stat"][0])
        assert (high - low) / (2 * stats.norm.ppf(0.975)) == pytest.approx(dm_error, rel=0.2)


@pytest.mark.parametrize("phi", [0.0, 0.5, 0.7])
@pytest.mark.parametrize("n", [200, 1000])
def test_the_block_length_is_archs(phi, n):
    rng = np.random.default_rng(int(10 * phi) + n)
    mine, archs = [], []
    for x in ar1(rng, n, phi, (30,)):
        mine.append(sig.block_length(x))
        archs.append(math.ceil(optimal_block_length(x)["circular"].iloc[0]))
    # arch normalises the correlation at lag k with the sums of squares of lag k + 1, so a
    # correlation at the edge of the band can end the lag window one lag apart
    assert np.mean(np.array(mine) == np.array(archs)) >= 0.9
    assert np.allclose(mine, archs, rtol=0.2, atol=1)


def test_the_block_length_grows_with_the_autocorrelation():
    rng = np.random.default_rng(0)
    lengths = [np.median([sig.block_length(ar1(rng, 500, phi)) for _ in range(20)]) for phi in
               (0.0, 0.5, 0.9)]  # fmt: skip
    assert lengths[0] <= 3 < lengths[1] < lengths[2]


def test_the_block_length_of_a_constant_or_short_series_is_1():
    assert sig.block_length(np.full(100, 2.5)) == 1
    assert sig.block_length(np.cumsum(np.ones(sig.SHORT_SERIES - 1))) == 1
    assert sig.block_length(np.cumsum(np.ones(sig.SHORT_SERIES))) > 1


def test_circular_blocks_wrap_around():
    assert sig.circular_blocks(np.array([3]), 5, 5).tolist() == [3, 4, 0, 1, 2]
    assert sig.circular_blocks(np.array([[4, 1], [0, 2]]), 3, 5).tolist() == [
        [4, 0, 1, 1, 2],
        [0, 1, 2, 2, 3],
    ]


def test_resampling_counts():
    counts = sig.resampling_counts(7, 3, 5000, seed=1)
    assert counts.shape == (5000, 7) and counts.dtype == np.float64
    assert np.all(counts.sum(axis=1) == 7)
    # wrapping around, every window is as likely as any: the last as often as the middle
    assert np.allclose(counts.mean(axis=0), 1.0, atol=0.05)
    assert np.array_equal(counts, sig.resampling_counts(7, 3, 5000, seed=1))
    assert not np.array_equal(counts, sig.resampling_counts(7, 3, 5000, seed=2))
    assert np.all(sig.resampling_counts(7, 7, 10, seed=0) == 1)  # a rotation of all windows


def test_resampling_counts_of_blocks_of_one_are_multinomial():
    counts = sig.resampling_counts(10, 1, 20000, seed=3)
    assert np.allclose(counts.mean(axis=0), 1.0, atol=0.03)
    assert np.allclose(counts.var(axis=0), 1 - 1 / 10, atol=0.05)
    assert np.corrcoef(counts[:, 0], counts[:, 1])[0, 1] == pytest.approx(-1 / 9, abs=0.03)


def test_resampled_sums_weigh_each_window_by_its_count():
    counts = np.array([[2.0, 0.0, 1.0], [0.0, 3.0, 0.0]])
    sums = sig.resampled({"a": np.array([[1, 2], [3, 4], [5, 6]]), "b": np.arange(3)}, counts)
    assert sums["a"].tolist() == [[7, 10], [9, 12]]
    assert sums["b"].tolist() == [2, 3]


def test_interval_is_the_percentile_interval_ignoring_nan():
    samples = np.stack([np.arange(101.0), np.full(101, np.nan)], axis=1)
    samples = np.concatenate([samples, [[np.nan, np.nan]]])
    low, high = sig.interval(samples, level=0.9)
    assert low[0] == pytest.approx(5) and high[0] == pytest.approx(95)
    assert np.isnan(low[1]) and np.isnan(high[1])


def test_p_value_counts_centred_replicates_as_extreme_as_observed():
    samples = np.array([1.0, 2.0, 3.0, 4.0, 5.0, np.nan])  # centred: 2, 1, 0, 1, 2
    assert sig.p_value(samples, np.array(1.5)) == pytest.approx(3 / 6)
    assert sig.p_value(samples, np.array(-2.0)) == pytest.approx(3 / 6)
    assert sig.p_value(samples, np.array(2.5)) == pytest.approx(1 / 6)  # never 0
    both = sig.p_value(np.stack([samples, 10 * samples], axis=1), np.array([1.5, np.nan]))
    assert both[0] == pytest.approx(0.5) and np.isnan(both[1])


def test_combined_with_seeds_adds_the_seed_spread_to_the_common_sampling_error():
    z = stats.norm.ppf(0.975)
    half_width = sig.combined_with_seeds(1.0, 1.0 + 2 * z * 0.3, seed_std=0.8, seeds=4)
    assert half_width == pytest.approx(z * 0.5)  # sqrt(0.3^2 + 0.8^2 / 4)
    assert sig.combined_with_seeds(1.0, 1.0 + 2 * z * 0.3, 0.0, 4) == pytest.approx(z * 0.3)


def test_bootstrap_keeps_the_scores_axes_and_survives_windows_without_cells():
    rng = np.random.default_rng(2)
    windows, lead, channel = 60, 3, 2
    count = np.full((windows, lead, channel), 10.0)
    count[5] = 0.0  # a window without a valid cell
    count[:, 2, 1] = 0.0  # a lead and channel without any: NaN throughout
    forecasts = {
        name: {"squared": count * rng.uniform(0.5, 1.5, count.shape) * scale, "count": count}
        for name, scale in (("model", 1.0), ("persistence", 2.0), ("climatology", 3.0))
    }
    values = RMSE | {"mse": lambda s: s["squared"] / s["count"]}
    result = sig.bootstrap(forecasts, values, "model", replicates=200)
    assert set(result["interval"]) == set(forecasts)
    assert set(result["comparison"]) == {"persistence", "climatology"}
    low, high = result["interval"]["model"]["rmse"]
    assert low.shape == high.shape == (lead, channel)
    assert np.isnan(low[2, 1]) and np.all(low[:2] < high[:2])
    comparison = result["comparison"]["climatology"]["mse"]
    assert np.all(comparison["p_value"][:2] < 0.01) and np.isnan(comparison["p_value"][2, 1])
    observed = forecasts["model"]["squared"].sum(0)[:2] / forecasts["model"]["count"].sum(0)[:2]
    assert np.allclose(result["value"]["model"]["mse"][:2], observed)


def test_bootstrap_takes_the_largest_block():
    rng = np.random.default_rng(8)
    autocorrelated, independent = ar1(rng, 300, 0.8), rng.normal(size=300)
    ones = np.ones(300)
    forecasts = {"model": {"x": independent, "n": ones}, "other": {"x": autocorrelated, "n": ones}}
    result = sig.bootstrap(forecasts, MEAN, "model", replicates=10)
    blocks = [
        sig.block_length(s) for s in (independent, autocorrelated, independent - autocorrelated)
    ]
    assert result["block"] == max(blocks) > 1


@pytest.mark.parametrize(
    ("call", "parameter"),
    [
        (lambda: sig.block_length(np.array([])), "series"),
        (lambda: sig.block_length(np.array([1.0, np.nan])), "series"),
        (lambda: sig.interval(np.ones(3), level=1.0), "level"),
        (lambda: sig.interval(np.ones(3), level=0.0), "level"),
        (lambda: sig.resampling_counts(5, 2, 0, seed=0), "replicates"),
        (lambda: sig.resampling_counts(5, 6, 1, seed=0), "block"),
        (lambda: sig.resampling_counts(0, 1, 1, seed=0), "windows"),
        (lambda: sig.combined_with_seeds(0.0, 1.0, 0.1, seeds=0), "seeds"),
        (lambda: sig.bootstrap(difference_forecasts(np.ones(5)), MEAN, "nope"), "model"),
        (lambda: sig.bootstrap(difference_forecasts(np.ones(5)), MEAN, "model", 0), "replicates"),
        (lambda: sig.bootstrap(difference_forecasts(np.ones(5)), {}, "model"), "values"),
        (
            lambda: sig.bootstrap(
                {"model": {"x": np.ones(5)}, "other": {"x": np.ones(4)}}, MEAN, "model"
            ),
            "window_sums",
        ),
        (lambda: sig.resampled({"x": np.ones(4)}, np.ones((2, 5))), "window_sums"),
    ],
)
def test_bad_input_is_a_value_error_naming_the_parameter(call, parameter):
    with pytest.raises(ValueError, match=parameter):
        call()
