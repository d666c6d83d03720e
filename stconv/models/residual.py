"""A wrapper that makes any forecaster predict the change from the last input frame."""

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
