"""Forecast scores over a whole dataset, per lead time, in physical units, masked.

For every lead time, over all windows and valid cells (``e`` the error
forecast - truth in physical units, ``w`` the area weight of the cell's
latitude, `area_weights`):

- RMSE ``sqrt(sum e^2 / n)`` and MAE ``sum |e| / n``, unweighted, as the paper reports;
- area-weighted RMSE ``sqrt(sum w e^2 / sum w)`` and MAE ``sum w |e| / sum w``
  (WeatherBench 2);
- mean bias ``sum e / n``;
- the anomaly correlation coefficient against the training climatology ``c``:
  per window, ``ACC = sum w f' o' / sqrt(sum w f'^2 * sum w o'^2)`` with
  ``f' = forecast - c`` and ``o' = truth - c`` over the window's valid cells,
  then the mean over windows (WeatherBench 2's uncentred ACC). A forecast
  without anomaly (climatology itself) scores 0.

Errors are accumulated as sums per lead time over all batches, so the RMSE is
that of the whole set, not a mean of per-batch RMSEs (which the reference
reports).
"""

import jax
import jax.numpy as jnp
import numpy as np

from stconv.data.errors import DataError


def area_weights(lat: np.ndarray, source: str = "the data") -> np.ndarray | None:
    """``cos(latitude)`` per row, normalised to mean 1 (WeatherBench 2); None
    for a single row (nothing to weight).

    Raises:
      DataError: naming ``source``, for latitudes outside [-90, 90] or not monotonic.
    """
    lat = np.asarray(lat, np.float64)
    if len(lat) < 2:
        return None
    if not np.all(np.abs(lat) <= 90):
        raise DataError(
            f"{source}: latitudes {lat.min():g}..{lat.max():g} are outside [-90, 90]: area "
            "weights need geographic latitudes (pass --no-area-weights for another grid)"
        )
    steps = np.diff(lat)
    if not (np.all(steps > 0) or np.all(steps < 0)):
        raise DataError(
            f"{source}: latitudes are not monotonic: area weights need a regular "
            "latitude-longitude grid (pass --no-area-weights for another grid)"
        )
    weights = np.cos(np.deg2rad(lat))
    return (weights / weights.mean()).astype(np.float32)


@jax.jit
def error_sums(
    predictions: jax.Array,
    targets: jax.Array,
    mask: jax.Array,
    std: jax.Array,
    climatology: jax.Array,
    weights: jax.Array,
) -> dict[str, jax.Array]:
    """Per-lead-time sums over one batch ``(batch, lead, lat, lon, channels)``.

    ``std`` (per channel) turns normalized values into physical units;
    ``climatology`` ``(lat, lon, channels)`` (normalized) is the ACC's reference;
    ``weights`` ``(lat,)`` the area weights.
    """
    error = jnp.where(mask, (predictions - targets) * std, 0.0)
    weight = jnp.where(mask, weights[:, None, None], 0.0)
    forecast_anomaly = jnp.where(mask, (predictions - climatology) * std, 0.0)
    truth_anomaly = jnp.where(mask, (targets - climatology) * std, 0.0)
    space = (2, 3, 4)
    covariance = jnp.sum(weight * forecast_anomaly * truth_anomaly, axis=space)
    forecast_power = jnp.sum(weight * jnp.square(forecast_anomaly), axis=space)
    truth_power = jnp.sum(weight * jnp.square(truth_anomaly), axis=space)
    scored = truth_power > 0  # windows (and padding) with no valid anomaly are not scored
    acc = covariance / jnp.sqrt(jnp.where(scored, forecast_power * truth_power, 1.0) + 1e-30)
    axes = (0, 2, 3, 4)
    return {
        "squared": jnp.sum(jnp.square(error), axis=axes),
        "absolute": jnp.sum(jnp.abs(error), axis=axes),
        "signed": jnp.sum(error, axis=axes),
        "count": jnp.sum(mask, axis=axes),
        "weighted_squared": jnp.sum(weight * jnp.square(error), axis=axes),
        "weighted_absolute": jnp.sum(weight * jnp.abs(error), axis=axes),
        "weight": jnp.sum(weight, axis=axes),
        "acc": jnp.sum(jnp.where(scored, acc, 0.0), axis=0),
        "acc_windows": jnp.sum(scored, axis=0),
    }


class ErrorAccumulator:
    """Adds up `error_sums` batch by batch (in float64 on the host).

    Args:
      climatology: ``(lat, lon, channels)`` normalized reference of the ACC;
        None leaves the ACC out.
      weights: ``(lat,)`` area weights (`area_weights`); None weighs every
        cell alike (then the weighted scores equal the unweighted ones).
    """

    def __init__(self, climatology: np.ndarray | None = None, weights: np.ndarray | None = None):
        self.climatology = climatology
        self.weights = weights
        self.sums = None

    def add(self, predictions, targets, mask, std) -> None:
        lat = targets.shape[2]
        climatology = 0.0 if self.climatology is None else self.climatology
        weights = np.ones(lat, np.float32) if self.weights is None else self.weights
        batch = {
            k: np.asarray(v, np.float64)
            for k, v in error_sums(predictions, targets, mask, std, climatology, weights).items()
        }
        self.sums = batch if self.sums is None else {k: self.sums[k] + batch[k] for k in batch}

    def result(self) -> dict:
        """The scores of the module docstring, over everything and ``..._per_lead``,
        the number of ``cells`` scored and whether they were ``area_weighted``."""
        sums = self.sums
        count = sums["count"]
        if count.sum() == 0:
            raise ValueError(
                "no valid target to score: every target cell is missing (NaN) or masked"
            )
        per_lead, total = np.maximum(count, 1), max(count.sum(), 1)
        weight, weight_total = np.maximum(sums["weight"], 1e-30), max(sums["weight"].sum(), 1e-30)
        result = {
            "rmse": float(np.sqrt(sums["squared"].sum() / total)),
            "mae": float(sums["absolute"].sum() / total),
            "rmse_per_lead": np.sqrt(sums["squared"] / per_lead).tolist(),
            "mae_per_lead": (sums["absolute"] / per_lead).tolist(),
            "weighted_rmse": float(np.sqrt(sums["weighted_squared"].sum() / weight_total)),
            "weighted_mae": float(sums["weighted_absolute"].sum() / weight_total),
            "weighted_rmse_per_lead": np.sqrt(sums["weighted_squared"] / weight).tolist(),
            "weighted_mae_per_lead": (sums["weighted_absolute"] / weight).tolist(),
            "bias": float(sums["signed"].sum() / total),
            "bias_per_lead": (sums["signed"] / per_lead).tolist(),
            "cells": int(count.sum()),
            "area_weighted": self.weights is not None,
        }
        if self.climatology is not None:
            windows = np.maximum(sums["acc_windows"], 1)
            result["acc"] = float(sums["acc"].sum() / max(sums["acc_windows"].sum(), 1))
            result["acc_per_lead"] = (sums["acc"] / windows).tolist()
        return result


def skill(mse: float | np.ndarray, reference_mse: float | np.ndarray) -> float | np.ndarray:
    """``1 - MSE / MSE_reference``: 1 is perfect, 0 no better than the reference."""
    return 1.0 - np.asarray(mse) / np.maximum(np.asarray(reference_mse), 1e-30)
