"""Per-cell ARIMA, the paper's classical baseline: SARIMAX(5, 0, 1) in statsmodels.

    forecaster = arima.fit_dataset(dataset)      # one model per grid cell and channel
    forecaster(batch["inputs"])                  # (batch, T, lat, lon, C) -> (batch, H, ...)

One SARIMAX(5, 0, 1) is fitted to every valid grid cell and channel, on that
cell's training-split series in normalized units minus the cell's mean
(SARIMAX without a trend has mean zero), optionally on its last
``max_train_length`` steps only. Cells outside the mask are not fitted and
forecast their mean. Fits run in parallel over cells, in worker processes.

Forecasting is exact and fast. With the parameters fixed, statsmodels'
forecast of H steps from a window of T values,
``results.apply(window).forecast(H)``, runs a Kalman filter started from the
model's stationary distribution (mean zero) whose gains do not depend on the
data, so the forecast is linear in the window. Each cell's H x T matrix W is
therefore computed once, from the T unit windows, and every window of every
batch is forecast as ``center + W @ (window - center)``: one einsum
(``tests/test_arima.py`` checks it against statsmodels' own forecast).

The center is the cell's training mean by default (``center="train"``): the
model as fitted, whose forecasts relax towards that mean. Where the field
drifts away from its training period (the A1B warming of the embedded data),
that pulls every forecast back towards the old climate; ``center="window"``
takes the mean of the window's T inputs instead, so the model forecasts
departures from the window's own level (like ``model.residual`` for the networks).

Like the deep models, the forecaster sees only the T input frames of a window,
and it is scored by `stconv.evaluation.scoring.evaluate` on every test window, in
physical units, masked, over the whole test set and per lead time.

The reference (``arima.py`` in MLRG-CEFET-RJ/stconvs2s) differs: it fits each
cell's raw series (no mean removed) up to its last ``horizon + 5`` steps,
which it keeps as the test; it then "refits" once per test sequence, but on
the same series (its ``np.append`` result is discarded), so all six
forecasts are the same forecast from the end of the training series, scored
against sequences shifted by 0 to 5 steps; it reports the mean over cells of
each cell's mean per-sequence RMSE. Here the fit uses the training split
only and every test window is forecast from its own inputs.
"""

import concurrent.futures
import dataclasses
import functools
import multiprocessing
import os
import time
import warnings

import numpy as np

from stconv.checks import check_choice
from stconv.models import ARIMA_CENTERS
from stconv.outputs import progress_bar

try:
    from statsmodels.tools.sm_exceptions import ConvergenceWarning
    from statsmodels.tsa.statespace.sarimax import SARIMAX
    from threadpoolctl import threadpool_limits
except ImportError:
    raise ImportError(
        "the ARIMA baseline needs statsmodels and threadpoolctl: pip install 'stconv[arima]'"
    ) from None

ORDER = (5, 0, 1)


def single_threaded_blas() -> None:
    """Limits BLAS to one thread in this process. A fit's matrices are tiny, and
    idle BLAS threads spinning on busy cores made fits up to 30 times slower."""
    threadpool_limits(1)


def linear_map(results, input_length: int, horizon: int) -> np.ndarray:
    """The ``(horizon, input_length)`` matrix W with
    ``results.apply(window).forecast(horizon) == W @ window`` for every window.

    Args:
      results: fitted statsmodels results of a zero-mean model.
      input_length: T, the length of a window.
      horizon: H, the steps to forecast.
    """
    units = np.eye(input_length)
    return np.stack([results.apply(unit).forecast(horizon) for unit in units], axis=1)


def fit_cell(
    series: np.ndarray, input_length: int, horizon: int, order: tuple = ORDER
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Fits SARIMAX to one cell's zero-mean series, scaled to unit variance for the
    optimizer (the forecast's linear map does not depend on the scale; the noise
    variance is scaled back).

    Args:
      series: ``(time,)`` the cell's series minus its mean; NaNs are missing values.
      input_length: T, the length of a forecast's input window.
      horizon: H, the steps to forecast.
      order: the ARIMA ``(p, d, q)`` order.

    Returns:
      ``(params, W, warned)``: the fitted parameters (AR, MA coefficients and
      the noise variance), the forecast's linear map (`linear_map`) and whether
      the fit warned that it did not converge (the warning itself is silenced).
    """
    scale = np.nanstd(series) or 1.0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = SARIMAX(series / scale, order=order).fit(disp=False)
        weights = linear_map(results, input_length, horizon)
    warned = any(issubclass(w.category, ConvergenceWarning) for w in caught)
    params = np.array(results.params)
    params[-1] *= scale**2  # sigma2
    return params, weights, warned


@dataclasses.dataclass(frozen=True)
class ARIMAForecaster:
    """Fitted per-cell ARIMA models as a forecaster of normalized windows.

    Attributes:
      mean: ``(lat, lon, channels)`` every cell's mean over the fitted series
        (normalized units; 0 where nothing was fitted).
      weights: ``(lat, lon, channels, horizon, input_length)`` each cell's
        linear map from window anomalies to forecast anomalies; 0 where nothing
        was fitted, so those cells forecast their center.
      params: ``(lat, lon, channels, p + q + 1)`` the fitted AR, MA
        coefficients and noise variance; NaN where nothing was fitted.
      order: the ``(p, d, q)`` order.
      center: ``train`` (forecast around ``mean``) or ``window`` (around the
        mean of each window's inputs).
      convergence_warnings: fits that warned that they did not converge.
    """

    mean: np.ndarray
    weights: np.ndarray
    params: np.ndarray
    order: tuple[int, int, int] = ORDER
    center: str = "train"
    convergence_warnings: int = 0

    @property
    def cells(self) -> int:
        """The number of fitted models."""
        return int(np.isfinite(self.params[..., 0]).sum())

    def __call__(self, inputs: np.ndarray) -> np.ndarray:
        """Forecasts ``(batch, input_length, lat, lon, channels)`` normalized windows.

        Returns:
          ``(batch, horizon, lat, lon, channels)``, in the inputs' dtype.
        """
        inputs = np.asarray(inputs)
        center = inputs.mean(axis=1, keepdims=True) if self.center == "window" else self.mean
        anomalies = inputs - center
        forecast = center + np.einsum("yxcht,btyxc->bhyxc", self.weights, anomalies)
        return forecast.astype(inputs.dtype, copy=False)

    def save(self, path: str | os.PathLike) -> None:
        """Writes every field to an ``.npz`` file."""
        np.savez(path, **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)})

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ARIMAForecaster":
        with np.load(path) as saved:
            return cls(
                mean=saved["mean"],
                weights=saved["weights"],
                params=saved["params"],
                order=tuple(int(n) for n in saved["order"]),
                center=str(saved["center"]),
                convergence_warnings=int(saved["convergence_warnings"]),
            )


def fit(
    series: np.ndarray,
    mask: np.ndarray,
    input_length: int,
    horizon: int,
    *,
    order: tuple[int, int, int] = ORDER,
    center: str = "train",
    max_train_length: int | None = None,
    workers: int | None = None,
) -> ARIMAForecaster:
    """Fits one ARIMA model per valid cell and channel, in parallel over cells.

    Args:
      series: ``(time, lat, lon, channels)`` the training series, normalized;
        NaNs are missing values.
      mask: ``(lat, lon, channels)`` the cells to fit; the others forecast their mean.
      input_length: T, the frames of a forecast's input window.
      horizon: H, the frames to forecast.
      order: the ARIMA ``(p, d, q)`` order; the paper's is (5, 0, 1).
      center: forecast around each cell's training mean (``train``) or around
        each window's mean (``window``).
      max_train_length: fit on the last this many steps only; None fits all.
      workers: processes to fit in; None uses every CPU, 1 fits in this process.
        Workers are spawned, so a script that fits with several needs the
        ``if __name__ == "__main__":`` guard.

    Returns:
      The fitted forecaster.
    """
    check_choice("center", center, ARIMA_CENTERS)
    series = np.asarray(series, np.float64)
    if max_train_length is not None:
        series = series[-max_train_length:]
    finite = np.isfinite(series)
    fitted_cells = mask & finite.any(0)
    mean = np.where(finite, series, 0.0).sum(0) / np.maximum(finite.sum(0), 1)
    mean = np.where(fitted_cells, mean, 0.0)
    cells = list(zip(*np.nonzero(fitted_cells), strict=True))
    anomalies = [series[:, y, x, c] - mean[y, x, c] for y, x, c in cells]
    fit_one = functools.partial(fit_cell, input_length=input_length, horizon=horizon, order=order)
    description = f"fitting SARIMAX{tuple(order)} to {len(cells)} cells"
    workers = min(workers or os.cpu_count() or 1, max(len(cells), 1))
    if workers == 1:
        with threadpool_limits(1):
            fitted = [fit_one(a) for a in progress_bar(anomalies, desc=description)]
    else:
        # Spawned, not forked: the workers hold none of the parent's (JAX) threads.
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(
            workers, mp_context=context, initializer=single_threaded_blas
        ) as pool:
            results = pool.map(fit_one, anomalies, chunksize=8)
            fitted = list(progress_bar(results, total=len(cells), desc=description))

    params = np.full((*mask.shape, order[0] + order[2] + 1), np.nan)
    weights = np.zeros((*mask.shape, horizon, input_length))
    for cell, (cell_params, cell_weights, _) in zip(cells, fitted, strict=True):
        params[cell], weights[cell] = cell_params, cell_weights
    warned = sum(warned for _, _, warned in fitted)
    return ARIMAForecaster(mean, weights, params, tuple(order), center, warned)


def fit_dataset(
    dataset,
    *,
    center: str = "train",
    max_train_length: int | None = None,
    workers: int | None = None,
) -> ARIMAForecaster:
    """Fits `fit` on a `stconv.data.registry.Dataset`'s training split, normalized.

    Args:
      dataset: the dataset; its training split gives the series, its mask the cells.
      center: ``train`` or ``window`` (see `fit`).
      max_train_length: fit on the last this many training steps only; None fits all.
      workers: processes to fit in; None uses every CPU.

    Returns:
      The fitted forecaster of the dataset's normalized windows.
    """
    series = dataset.normalizer.normalize(dataset.splits["train"].series())
    spec = dataset.spec
    return fit(
        series,
        dataset.mask,
        spec.input_length,
        spec.horizon,
        center=center,
        max_train_length=max_train_length,
        workers=workers,
    )


# The interface of a fitted model (`stconv.models.FITTED`): fit on a run's
# dataset and save into its directory, or load back from it.


def fit_run(config, dataset, run, resume: bool = False) -> ARIMAForecaster:
    """Fits the run's ARIMA models (`fit_dataset` with the config's options) and
    saves them as the run's ``arima.npz``; with ``resume``, loads a saved fit.

    Args:
      config: the run's `stconv.config.Config`.
      dataset: its `stconv.data.registry.Dataset`.
      run: its `stconv.runs.directory.RunDirectory`.
      resume: reuse a fit saved by an interrupted run.
    """
    if resume and run.has(run.ARIMA):
        forecaster = ARIMAForecaster.load(run.file(run.ARIMA))
        print(f"resuming {run.path}: {forecaster.cells} fitted cells")
        return forecaster
    start = time.perf_counter()
    forecaster = fit_dataset(
        dataset,
        center=config.model.arima_center,
        max_train_length=config.model.arima_max_train_length,
    )
    print(
        f"fitted SARIMAX{forecaster.order} to {forecaster.cells} cells in "
        f"{time.perf_counter() - start:.1f} s; {forecaster.convergence_warnings} fits "
        "warned that they did not converge"
    )
    forecaster.save(run.file(run.ARIMA))
    return forecaster


def load_run(run) -> ARIMAForecaster:
    """The ARIMA models a finished run saved (`fit_run`)."""
    return ARIMAForecaster.load(run.require(run.ARIMA, "train the run first"))
