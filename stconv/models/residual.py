"""A wrapper that makes any forecaster predict the change from a base frame:
the last input frame, or the mean of the input frames."""

from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import nnx

from stconv.checks import check_choice
from stconv.config import RESIDUAL_BASES


class Residual(nnx.Module):
    """``forecast = base + model(inputs - base)``, ``base`` the last input frame
    (``"last"``) or the mean of the input frames (``"mean"``).

    The network sees and predicts changes relative to the base, so its
    forecasts do not depend on the field's level (a warming trend moves the
    test period out of the training range), and its zero output is a baseline:
    persistence for ``"last"``, the input mean for ``"mean"``. The wrapped
    model's layers and parameters are unchanged. A model that forecasts the
    first ``output_channels`` input channels (the targets) gets those
    channels of the base added back; None: all of them.
    """

    def __init__(self, model: nnx.Module, base: str = "last", output_channels: int | None = None):
        check_choice("residual_base", base, RESIDUAL_BASES)
        self.model = model
        self.base = base
        self.output_channels = output_channels

    def __call__(self, x: jax.Array) -> jax.Array:
        base = x[:, -1:] if self.base == "last" else jnp.mean(x, axis=1, keepdims=True)
        return base[..., : self.output_channels] + self.model(x - base)

    def wrap_network(self, wrap: Callable[[nnx.Module], nnx.Module]) -> "Residual":
        """The same residual around ``wrap(network)``. Mixed precision
        (`stconv.training.precision`) computes only the network in bfloat16 and
        keeps the residual in float32: the network sees and predicts changes
        from the base, which bfloat16 resolves even on raw fields."""
        return Residual(wrap(self.model), self.base, self.output_channels)
