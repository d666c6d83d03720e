"""ConvLSTM (Shi et al., 2015), the paper's first recurrent baseline."""

import jax
import jax.numpy as jnp
from flax import nnx

from stconv.models.layers import Conv
from stconv.models.recurrent.common import (
    RecurrentForecaster,
    State,
    dropout2d,
    pointwise_conv,
    same_conv,
    stacked,
    unroll,
)
from stconv.models.spec import ModelSpec


class ConvLSTMLayer(nnx.Module):
    """A ConvLSTM cell and its feedback: a 1x1 projection (no bias) of h to the
    layer's input channels, the layer's input once the frames run out.

    Args:
      in_features: input channels.
      spec: the model's hyperparameters: ``hidden_dim`` hidden and cell
        channels, ``kernel_size`` of the gates' convolution, ``dropout`` the
        Dropout2d rate on the gates.
      rngs: random streams for initialisation.
    """

    def __init__(self, in_features: int, spec: ModelSpec, rngs: nnx.Rngs):
        hidden_dim = spec.hidden_dim
        self.gates = same_conv(
            in_features + hidden_dim, 4 * hidden_dim, spec.kernel_size, use_bias=True, rngs=rngs
        )
        self.dropout = dropout2d(spec.dropout)
        self.feedback = pointwise_conv(hidden_dim, in_features, use_bias=False, rngs=rngs)

    def __call__(
        self, x: jax.Array, state: State, rngs: nnx.Rngs | None
    ) -> tuple[State, jax.Array, jax.Array]:
        """One step: returns ``((h, c), h, feedback)``."""
        h, c = state
        gates = self.dropout(self.gates(jnp.concatenate([x, h], axis=-1)), rngs=rngs)
        i, f, o, g = jnp.split(gates, 4, axis=-1)
        c = nnx.sigmoid(f) * c + nnx.sigmoid(i) * jnp.tanh(g)
        h = nnx.sigmoid(o) * jnp.tanh(c)
        return (h, c), h, self.feedback(h)


class ConvLSTM(RecurrentForecaster):
    """Stacked ConvLSTM (Shi et al., 2015); each layer runs over the whole
    sequence before the next, then a 1x1x1 convolution (with bias) maps the
    last layer's hidden states to the output channels (each layer feeds its
    own projection back, so it forecasts the targets only).

    Args:
      spec: `ModelSpec`: ``num_layers`` stacked layers (`ConvLSTMLayer`) of
        ``hidden_dim`` hidden channels, (k, k) gate convolutions of an odd
        ``kernel_size``, ``dropout`` the Dropout2d rate on the gates.
      rngs: random streams for initialisation and dropout.
    """

    def __init__(self, spec: ModelSpec, *, rngs: nnx.Rngs):
        super().__init__(spec, rngs)
        self.layers = stacked(ConvLSTMLayer, spec, rngs)
        self.output = Conv(spec.hidden_dim, spec.targets, (1, 1, 1), use_bias=True, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        """Maps ``(batch, T, lat, lon, C)`` to ``(batch, horizon, lat, lon, output_channels)``."""
        self.check_input(x)
        frames, observed = self.sequence(x)
        state = (self.zeros(x), self.zeros(x))
        for layer in self.layers:
            frames = unroll(
                layer, ConvLSTMLayer.__call__, frames, observed, state, self.dropout_keys()
            )
        return self.output(jnp.moveaxis(frames, 0, 1))
