"""RMSE and MAE over a whole dataset, per lead time, in physical units, masked.

Errors are accumulated as sums (squared error, absolute error, valid cells)
per lead time over all batches, so the RMSE is that of the whole set, not a
mean of per-batch RMSEs (which the reference reports).
"""

import jax
import jax.numpy as jnp
import numpy as np


@jax.jit
def error_sums(
    predictions: jax.Array, targets: jax.Array, mask: jax.Array, std: jax.Array
) -> dict[str, jax.Array]:
    """Per-lead-time sums over one batch ``(batch, lead, lat, lon, channels)``.

    ``std`` (per channel) turns normalized errors into physical units.
    """
    error = jnp.where(mask, (predictions - targets) * std, 0.0)
    axes = (0, 2, 3, 4)
    return {
        "squared": jnp.sum(jnp.square(error), axis=axes),
        "absolute": jnp.sum(jnp.abs(error), axis=axes),
        "count": jnp.sum(mask, axis=axes),
    }


class ErrorAccumulator:
    """Adds up `error_sums` batch by batch (in float64 on the host)."""

    def __init__(self):
        self.sums = None

    def add(self, predictions, targets, mask, std) -> None:
        batch = {
            k: np.asarray(v, np.float64)
            for k, v in error_sums(predictions, targets, mask, std).items()
        }
        self.sums = batch if self.sums is None else {k: self.sums[k] + batch[k] for k in batch}

    def result(self) -> dict:
        """``rmse``, ``mae`` over everything and ``rmse_per_lead``, ``mae_per_lead``."""
        squared, absolute, count = self.sums["squared"], self.sums["absolute"], self.sums["count"]
        if count.sum() == 0:
            raise ValueError(
                "no valid target to score: every target cell is missing (NaN) or masked"
            )
        per_lead = np.maximum(count, 1)
        total = max(count.sum(), 1)
        return {
            "rmse": float(np.sqrt(squared.sum() / total)),
            "mae": float(absolute.sum() / total),
            "rmse_per_lead": np.sqrt(squared / per_lead).tolist(),
            "mae_per_lead": (absolute / per_lead).tolist(),
            "cells": int(count.sum()),
        }
