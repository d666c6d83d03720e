"""Losses."""

import jax
import jax.numpy as jnp

RMSE_EPSILON = 1e-6


def rmse_loss(
    predictions: jax.Array,
    targets: jax.Array,
    mask: jax.Array | None = None,
    weights: jax.Array | None = None,
) -> jax.Array:
    """The paper's training loss, ``sqrt(MSE + 1e-6)``, over the cells where ``mask``
    is True (all cells without a mask). The epsilon keeps the gradient finite at
    zero error.

    With several target variables (channels, last axis; normalized, so their
    errors are comparable), ``weights`` ``(channels,)`` weigh each variable's
    squared errors and cells: the MSE is ``sum_c w_c sum e_c^2 / sum_c w_c n_c``,
    the plain MSE when every weight is 1."""
    squared = jnp.square(predictions - targets)
    if mask is None and weights is None:
        return jnp.sqrt(jnp.mean(squared) + RMSE_EPSILON)
    if mask is None:
        mask = jnp.ones(squared.shape, bool)
    if weights is None:
        mean = jnp.sum(jnp.where(mask, squared, 0.0)) / jnp.maximum(jnp.sum(mask), 1)
    else:
        weight = jnp.where(mask, jnp.asarray(weights, squared.dtype), 0.0)
        mean = jnp.sum(weight * squared) / jnp.maximum(jnp.sum(weight), 1e-30)
    return jnp.sqrt(mean + RMSE_EPSILON)
