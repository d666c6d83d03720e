"""Confidence intervals and paired significance tests of scores, by a circular
block bootstrap over windows (forecast initialisation times).

Every score is a function ``value`` of sums over windows (`stconv.evaluation.metrics`:
e.g. RMSE ``sqrt(squared / count)``). Kept per window, ``sums[w]`` of window ``w``,
a bootstrap replicate of the score is

    value(sum_w c_w sums[w])

with ``c_w`` how often window ``w`` is drawn in the resample (`resampling_counts`,
``sum_w c_w`` = the number of windows): a resample of windows, not of cells,
since the cells of one window share its weather and are far from independent.

Consecutive windows (daily forecasts) are autocorrelated, so windows are drawn in
blocks: the circular block bootstrap (Politis & Romano 1992) draws
``ceil(windows / block)`` blocks of ``block`` consecutive windows, each starting at a
uniform window and wrapping around the end of the series to its start, and cuts their
concatenation to ``windows``. Its block length (`block_length`) is Politis & White's
(2004) automatic choice, with the correction of Patton, Politis & White (2009),
estimated from the autocorrelation of one series per window:

    b = (2 G^2 / D)^(1/3) n^(1/3),  D = 4/3 g^2,
    G = sum_{|k| <= M} lambda(k / M) |k| R(k),  g = sum_{|k| <= M} lambda(k / M) R(k),

``R(k)`` the sample autocovariances, ``lambda`` the flat-top window
``min(1, 2 (1 - |t|))`` and ``M = 2 m``, ``m`` the first lag from which ``K = 5``
consecutive autocorrelations lie inside ``+-2 sqrt(log10(n) / n)`` (``M`` at most
``ceil(sqrt(n)) + K``). ``b`` is rounded up and capped at ``ceil(min(3 sqrt(n), n / 3))``.

- Intervals (`interval`): the percentile interval of the replicates.
- Paired comparisons (`p_value`): two forecasts scored on the same resampled windows
  (one set of counts for all forecasts) give replicates ``d*`` of the difference of
  their scores; the two-sided p-value of "no difference" is the share of centred
  replicates ``|d* - mean(d*)|`` at least the observed ``|d|``, counted as
  ``(1 + k) / (1 + B)`` so that it is never 0.
- Several training seeds on the same test windows (`combined_with_seeds`): the
  windows' sampling error is common to all seeds and the seeds' spread adds to it.

`bootstrap` does all of it for a set of forecasts.
"""

import math
import warnings
from collections.abc import Callable, Mapping

import numpy as np
from scipy import stats

Sums = Mapping[str, np.ndarray]
Value = Callable[[Sums], np.ndarray]

INSIGNIFICANT_RUN = 5  # K: consecutive insignificant autocorrelations that end the lag window
SHORT_SERIES = 20  # windows: below it the autocorrelations up to lag ceil(sqrt(n)) + K
# do not each rest on at least half the series, and `block_length` is 1


def block_length(series: np.ndarray) -> int:
    """The optimal block length of the circular block bootstrap for the mean of
    ``series`` (Politis & White 2004, corrected by Patton, Politis & White 2009;
    the module docstring gives the formula), rounded up and clipped to
    ``[1, len(series)]``.

    Args:
      series: 1-D, finite, in time order (one value per window).

    Returns:
      The block length; 1 for a constant series or one shorter than `SHORT_SERIES`
      (20 values).

    Raises:
      ValueError: for an empty, multi-dimensional or non-finite series.
    """
    x = np.asarray(series, np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"series must be a non-empty 1-D array, not of shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("series must be finite: leave out the windows without a score")
    n = x.size
    centred = x - x.mean()
    if n < SHORT_SERIES or np.ptp(x) == 0:
        return 1
    run = max(INSIGNIFICANT_RUN, math.ceil(math.sqrt(math.log10(n))))
    max_lag = math.ceil(math.sqrt(n)) + run
    covariance = np.array([centred[k:] @ centred[: n - k] / n for k in range(max_lag + 1)])
    lags = lag_window(lagged_correlation(centred, max_lag), n, run)
    k = np.arange(1, lags + 1)
    flat_top = np.minimum(1.0, 2.0 * (1.0 - k / lags))
    g = 2.0 * np.sum(flat_top * k * covariance[1 : lags + 1])
    long_run_variance = covariance[0] + 2.0 * np.sum(flat_top * covariance[1 : lags + 1])
    cap = math.ceil(min(3.0 * math.sqrt(n), n / 3.0))
    if long_run_variance <= 0:  # the flat-top estimate can be negative: take the longest
        return min(cap, n)
    optimal = (2.0 * g**2 / (4.0 / 3.0 * long_run_variance**2)) ** (1 / 3) * n ** (1 / 3)
    return int(np.clip(math.ceil(min(optimal, cap)), 1, n))


def lagged_correlation(centred: np.ndarray, max_lag: int) -> np.ndarray:
    """``|corr(x[t], x[t - k])|`` of the pairs ``k`` apart, ``k = 1..max_lag``, of a
    series centred at its mean (as Patton's reference code computes them, rather
    than ``R(k) / R(0)``: the two differ by ``O(k / n)``)."""
    correlation = np.empty(max_lag)
    for k in range(1, max_lag + 1):
        later, earlier = centred[k:], centred[:-k]
        scale = math.sqrt((later @ later) * (earlier @ earlier))
        correlation[k - 1] = abs(later @ earlier) / scale if scale > 0 else 0.0
    return correlation


def lag_window(correlation: np.ndarray, n: int, run: int) -> int:
    """Politis & White's ``M``: twice the first lag ``m`` from which ``run``
    autocorrelations (``correlation[k - 1]`` the absolute one at lag ``k``) lie
    inside ``+-2 sqrt(log10(n) / n)``, at most the largest lag computed."""
    max_lag = len(correlation)
    inside = correlation < 2.0 * math.sqrt(math.log10(n) / n)
    for first in range(1, max_lag - run + 2):
        if np.all(inside[first - 1 : first - 1 + run]):
            return min(2 * first, max_lag)
    return max_lag


def circular_blocks(starts: np.ndarray, block: int, windows: int) -> np.ndarray:
    """The windows drawn by blocks of ``block`` consecutive windows from
    ``starts`` ``(..., blocks)``, wrapping around after the last window, their
    concatenation cut to ``windows``: ``(..., windows)`` indices."""
    twice_around = np.tile(np.arange(windows), 2)  # starts < windows and block <= windows
    drawn = twice_around[np.asarray(starts)[..., None] + np.arange(block)]
    return drawn.reshape(*drawn.shape[:-2], -1)[..., :windows]


def resampling_counts(windows: int, block: int, replicates: int, seed: int) -> np.ndarray:
    """How often each window is drawn in each of ``replicates`` circular block
    bootstrap resamples of ``windows`` windows, blocks of ``block`` windows
    starting at uniform windows (`circular_blocks`), drawn from
    ``np.random.default_rng(seed)``.

    Returns:
      ``(replicates, windows)`` float64 counts, each row summing to ``windows``.

    Raises:
      ValueError: for ``windows`` or ``replicates`` under 1, or ``block`` outside
        ``[1, windows]``.
    """
    if windows < 1:
        raise ValueError(f"windows must be 1 or more, not {windows}")
    if not 1 <= block <= windows:
        raise ValueError(f"block must be between 1 and windows ({windows}), not {block}")
    check_replicates(replicates)
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, windows, size=(replicates, -(-windows // block)))
    drawn = circular_blocks(starts, block, windows)
    rows = np.arange(replicates)[:, None] * windows
    counts = np.bincount((drawn + rows).ravel(), minlength=replicates * windows)
    return counts.reshape(replicates, windows).astype(np.float64)


def resampled(window_sums: Sums, counts: np.ndarray) -> dict[str, np.ndarray]:
    """Each ``(windows, ...)`` array of ``window_sums`` summed over the windows
    of every resample, weighted by ``counts`` ``(replicates, windows)``:
    ``(replicates, ...)`` arrays."""
    counts = np.asarray(counts, np.float64)
    resampled_sums = {}
    for name, sums in window_sums.items():
        sums = np.asarray(sums, np.float64)
        if sums.shape[:1] != counts.shape[1:]:
            raise ValueError(
                f"window_sums[{name!r}] has {sums.shape[:1]} windows, the counts "
                f"{counts.shape[1:]}: both must be over the same windows"
            )
        resampled_sums[name] = np.tensordot(counts, sums, axes=(1, 0))
    return resampled_sums


def interval(samples: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """The percentile interval at ``level`` of ``samples`` over axis 0 (the
    replicates), ignoring NaN replicates (NaN where all are)."""
    check_level(level)
    tail = (1.0 - level) / 2.0
    return nan_quantile(samples, tail), nan_quantile(samples, 1.0 - tail)


def nan_quantile(samples: np.ndarray, q: float) -> np.ndarray:
    """``np.nanquantile(samples, q, axis=0)`` (linear interpolation), vectorised
    over the other axes (numpy's loops over them) and NaN where all are NaN."""
    ordered = np.sort(np.asarray(samples, np.float64), axis=0)  # NaN last
    valid = np.sum(~np.isnan(ordered), axis=0)
    position = q * np.maximum(valid - 1, 0)
    below = np.floor(position).astype(np.int64)
    above = np.minimum(below + 1, np.maximum(valid - 1, 0))
    low = np.take_along_axis(ordered, below[None], axis=0)[0]
    high = np.take_along_axis(ordered, above[None], axis=0)[0]
    quantile = low + (position - below) * (high - low)
    return np.where(valid > 0, quantile, np.nan)


def p_value(samples: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Two-sided bootstrap p-value of "the difference is 0", elementwise: from
    replicates ``samples`` ``(B, ...)`` of a difference and its ``observed``
    value ``(...)``, ``(1 + k) / (1 + B)`` with ``k`` the replicates whose
    centred value ``|d* - mean(d*)|`` is at least ``|observed|``. NaN
    replicates are left out (of ``B`` too); NaN where ``observed`` is NaN."""
    samples = np.asarray(samples, np.float64)
    observed = np.asarray(observed, np.float64)
    valid = ~np.isnan(samples)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        centred = np.abs(samples - np.nanmean(samples, axis=0))
    extreme = np.sum(valid & (centred >= np.abs(observed)), axis=0)
    p = (1.0 + extreme) / (1.0 + np.sum(valid, axis=0))
    return np.where(np.isnan(observed), np.nan, p)


def combined_with_seeds(
    low: np.ndarray, high: np.ndarray, seed_std: np.ndarray, seeds: int, level: float = 0.95
) -> np.ndarray:
    """The half-width of the interval at ``level`` of the mean score of ``seeds``
    training seeds, all evaluated on the same test windows.

    ``low``, ``high``: the bootstrap interval (at ``level``) of the score over the
    windows (of the seeds' mean score, or of one seed's). Its sampling standard
    error is taken as ``se = (high - low) / (2 z)``, ``z`` the standard normal
    quantile ``Phi^-1((1 + level) / 2)``. ``seed_std``: the standard deviation of
    the score over the seeds (``ddof = 1``). The seeds are scored on the SAME
    windows, so their sampling errors are one and the same and do not average
    out over the seeds, while the seeds' spread does: the mean's standard error
    is ``sqrt(se^2 + seed_std^2 / seeds)``, and the half-width returned is

        z * sqrt(se^2 + seed_std^2 / seeds)

    (centre-free: add it to either side of the mean score).

    Raises:
      ValueError: for ``seeds`` under 1 or ``level`` outside (0, 1).
    """
    check_level(level)
    if seeds < 1:
        raise ValueError(f"seeds must be 1 or more, not {seeds}")
    z = stats.norm.ppf((1.0 + level) / 2.0)
    sampling = (np.asarray(high, np.float64) - np.asarray(low, np.float64)) / (2.0 * z)
    return z * np.sqrt(sampling**2 + np.asarray(seed_std, np.float64) ** 2 / seeds)


def bootstrap(
    window_sums: Mapping[str, Sums],
    values: Mapping[str, Value],
    model: str,
    replicates: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    series: Callable[[Sums], np.ndarray] | None = None,
) -> dict:
    """Intervals of every score of every forecast, and paired tests of ``model``
    against every other forecast, on one set of circular block bootstrap
    resamples of the windows.

    The block length is the largest `block_length` of these per-window series:
    ``series`` of the ``model``'s sums minus ``series`` of each other
    forecast's (what a paired difference's variance depends on), and each
    forecast's own ``series`` (what its interval's depends on). The largest,
    because too short a block understates the variance (too narrow intervals,
    too small p-values) while too long a block only makes the variance estimate
    noisier. Windows whose series is NaN (no valid cell) are left out of it.

    Args:
      window_sums: forecast name -> its sums per window ``{sum name: (windows, ...)}``;
        all forecasts over the same windows, in time order.
      values: score name -> its value from summed sums, elementwise (it may give an
        array over the sums' trailing axes, e.g. per lead time and channel).
      model: the forecast under test, compared with each of the others.
      replicates: bootstrap resamples.
      seed: seed of the resamples.
      level: of the intervals, in (0, 1).
      series: one forecast's sums ``(windows, ...)`` -> a ``(windows,)`` series for
        the block length; by default the first score of ``values`` per window,
        averaged over its trailing axes (ignoring NaN).

    Returns:
      ``{"block": the block length, "value": {forecast: {score: value}},
      "interval": {forecast: {score: (low, high)}},
      "comparison": {other: {score: {"difference": value(model) - value(other),
      "interval": (low, high), "p_value": p}}}}``, each value an array
      over the score's trailing axes.

    Raises:
      ValueError: for an unknown ``model``, no ``values``, forecasts over different
        windows, ``replicates`` under 1 or ``level`` outside (0, 1).
    """
    windows = check_forecasts(window_sums, values, model)
    check_replicates(replicates)
    check_level(level)
    series = series or first_score_series(next(iter(values.values())))
    block = largest_block(window_sums, model, series)
    counts = resampling_counts(windows, block, replicates, seed)
    observed, samples = {}, {}
    for forecast, sums in window_sums.items():
        total = {name: np.sum(np.asarray(s, np.float64), axis=0) for name, s in sums.items()}
        observed[forecast] = scores_of(total, values)
        samples[forecast] = scores_of(resampled(sums, counts), values)
    result = {"block": block, "value": observed, "interval": {}, "comparison": {}}
    for forecast, forecast_samples in samples.items():
        result["interval"][forecast] = {
            score: interval(s, level) for score, s in forecast_samples.items()
        }
    for other in window_sums:
        if other != model:
            result["comparison"][other] = {
                score: paired(
                    observed[model][score] - observed[other][score],
                    samples[model][score] - samples[other][score],
                    level,
                )
                for score in values
            }
    return result


def paired(difference: np.ndarray, samples: np.ndarray, level: float) -> dict:
    """The observed ``difference``, the interval and p-value of its replicates."""
    return {
        "difference": difference,
        "interval": interval(samples, level),
        "p_value": p_value(samples, difference),
    }


def scores_of(sums: Sums, values: Mapping[str, Value]) -> dict[str, np.ndarray]:
    """Every score's value of ``sums`` (NaN, silently, where it divides by 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return {score: np.asarray(value(sums), np.float64) for score, value in values.items()}


def first_score_series(value: Value) -> Callable[[Sums], np.ndarray]:
    """The default ``series`` of `bootstrap`: ``value`` of each window's sums,
    averaged over the trailing axes, ignoring NaN."""

    def per_window(sums: Sums) -> np.ndarray:
        scores = scores_of(sums, {"score": value})["score"]
        scores = scores.reshape(len(scores), -1)
        finite = np.isfinite(scores)
        total = np.where(finite, scores, 0.0).sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return total / finite.sum(axis=1)

    return per_window


def largest_block(
    window_sums: Mapping[str, Sums], model: str, series: Callable[[Sums], np.ndarray]
) -> int:
    """The largest `block_length` of each forecast's ``series`` and of the
    ``model``'s minus each other's, over the windows where it is finite."""
    per_forecast = {f: np.asarray(series(s), np.float64) for f, s in window_sums.items()}
    candidates = list(per_forecast.values())
    candidates += [per_forecast[model] - s for f, s in per_forecast.items() if f != model]
    return max(block_length(c[np.isfinite(c)]) if np.isfinite(c).any() else 1 for c in candidates)


def check_forecasts(
    window_sums: Mapping[str, Sums], values: Mapping[str, Value], model: str
) -> int:
    """The number of windows of the forecasts, checked to be the same for all."""
    if model not in window_sums:
        raise ValueError(f"model {model!r} is not one of the forecasts {sorted(window_sums)}")
    if not values:
        raise ValueError("values must name at least one score")
    lengths = {
        f"{forecast}[{name!r}]": np.shape(array)[0] if np.ndim(array) else 0
        for forecast, sums in window_sums.items()
        for name, array in sums.items()
    }
    if len(set(lengths.values())) != 1 or 0 in lengths.values():
        raise ValueError(f"window_sums must all have the same windows (1 or more), not {lengths}")
    return next(iter(lengths.values()))


def check_replicates(replicates: int) -> None:
    if replicates < 1:
        raise ValueError(f"replicates must be 1 or more, not {replicates}")


def check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), not {level}")
