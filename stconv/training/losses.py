"""Losses."""

import jax
import jax.numpy as jnp

RMSE_EPSILON = 1e-6


def rmse_loss(
    predictions: jax.Array, targets: jax.Array, mask: jax.Array | None = None
) -> jax.Array:
    """The paper's training loss, ``sqrt(MSE + 1e-6)``, over the cells where ``mask``
    is True (all cells without a mask). The epsilon keeps the gradient finite at
    zero error."""
    squared = jnp.square(predictions - targets)
    if mask is None:
        return jnp.sqrt(jnp.mean(squared) + RMSE_EPSILON)
    mean = jnp.sum(jnp.where(mask, squared, 0.0)) / jnp.maximum(jnp.sum(mask), 1)
    return jnp.sqrt(mean + RMSE_EPSILON)
