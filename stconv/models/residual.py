"""A wrapper that makes any forecaster predict the change from the last input frame."""

from collections.abc import Callable

import jax
from flax import nnx


class LastFrameResidual(nnx.Module):
    """``forecast = last + model(inputs - last)``, ``last`` the last input frame.

    The network sees and predicts changes relative to the last frame, so its
    forecasts do not depend on the field's level (a warming trend moves the
    test period out of the training range) and persistence is its zero
    output. The wrapped model's layers and parameters are unchanged.
    """

    def __init__(self, model: nnx.Module):
        self.model = model

    def __call__(self, x: jax.Array) -> jax.Array:
        last = x[:, -1:]
        return last + self.model(x - last)

    def wrap_network(self, wrap: Callable[[nnx.Module], nnx.Module]) -> "LastFrameResidual":
        """The same residual around ``wrap(network)``. Mixed precision
        (`stconv.training.precision`) computes only the network in bfloat16 and
        keeps the residual in float32: the network sees and predicts changes
        from the last frame, which bfloat16 resolves even on raw fields."""
        return LastFrameResidual(wrap(self.model))
