"""A wrapper that makes any forecaster predict the change from a base: the
last input frame, the mean of the input frames, or, on inputs that are
anomalies from a climatology, one of the seasonal forecaster's simple
forecasts (the climatology, the persisted anomaly, the damped one)."""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from stconv.checks import check_choice
from stconv.models import ANOMALY_BASES, RESIDUAL_BASES


class Damping(nnx.Variable):
    """The damping factors of the persisted anomaly, ``(horizon, outputs)``:
    fitted on the training split (`stconv.evaluation.baselines.fit_damping`),
    saved and restored with the model, never trained."""


class Residual(nnx.Module):
    """``forecast = base + model(inputs - shift)``: the network sees and
    predicts changes, so its forecasts do not depend on the field's level (a
    warming trend moves the test period out of the training range) and its
    zero output is a simple forecast.

    Bases (``base``):

    - ``"last"``: the last input frame (shift and base): zero is persistence;
    - ``"mean"``: the mean of the input frames: zero is the input mean;
    - on anomaly inputs (``data.normalization=climatology``): ``"climatology"``
      (no shift, base 0: zero is the climatology), ``"anomaly"`` (the last
      anomaly: zero is the anomaly persistence) and ``"damped"`` (shift the
      last anomaly, base the last anomaly times the `Damping` factor of each
      lead time: zero is the damped anomaly persistence; set the factors with
      `set_damping` before training).

    The wrapped model's layers and parameters are unchanged. A model that
    forecasts the first ``output_channels`` input channels (the targets) gets
    those channels of the base added back; None: all of them.
    """

    def __init__(
        self,
        model: nnx.Module,
        base: str = "last",
        output_channels: int | None = None,
        horizon: int | None = None,
    ):
        check_choice("residual_base", base, RESIDUAL_BASES)
        self.model = model
        self.base = base
        self.output_channels = output_channels
        if base == "damped":
            channels = output_channels or 1
            self.damping = Damping(jnp.ones((horizon, channels), jnp.float32))

    def __call__(self, x: jax.Array) -> jax.Array:
        if self.base == "mean":
            shift = jnp.mean(x, axis=1, keepdims=True)
        elif self.base == "climatology":
            shift = jnp.zeros_like(x[:, -1:])
        else:
            shift = x[:, -1:]
        base = shift[..., : self.output_channels]
        changes = self.model(x - shift)
        if self.base == "damped":  # a network may forecast more steps than the horizon: cut later
            factors = self.damping[...].astype(x.dtype)
            factors = jnp.pad(factors, ((0, changes.shape[1] - len(factors)), (0, 0)), "edge")
            base = base * factors[None, :, None, None, :]
        return base + changes

    def set_damping(self, factors: np.ndarray) -> None:
        """The damping factors ``(horizon, outputs)`` of the ``"damped"`` base."""
        self.damping[...] = jnp.asarray(factors, jnp.float32)

    def wrap_network(self, wrap: Callable[[nnx.Module], nnx.Module]) -> "Residual":
        """The same residual around ``wrap(network)``. Mixed precision
        (`stconv.training.precision`) computes only the network in bfloat16 and
        keeps the residual in float32: the network sees and predicts changes
        from the base, which bfloat16 resolves even on raw fields."""
        horizon = self.damping[...].shape[0] if self.base == "damped" else None
        wrapped = Residual(wrap(self.model), self.base, self.output_channels, horizon)
        if self.base == "damped":
            wrapped.damping = self.damping
        return wrapped


__all__ = ["ANOMALY_BASES", "Damping", "Residual"]
