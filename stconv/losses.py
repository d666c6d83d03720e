"""Losses."""

import jax
import jax.numpy as jnp

RMSE_EPSILON = 1e-6


def rmse_loss(predictions: jax.Array, targets: jax.Array) -> jax.Array:
    """The paper's training loss, ``sqrt(MSE + 1e-6)`` (the epsilon keeps the
    gradient finite at zero error)."""
    return jnp.sqrt(jnp.mean(jnp.square(predictions - targets)) + RMSE_EPSILON)
