"""ConvLSTM (Shi et al., 2015), the paper's first recurrent baseline."""

from collections.abc import Sequence

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
    unroll,
)


class ConvLSTMLayer(nnx.Module):
    """A ConvLSTM cell and its feedback: a 1x1 projection (no bias) of h to the
    layer's input channels, the layer's input once the frames run out.

    Args:
      in_features: input channels.
      hidden_dim: hidden and cell channels.
      kernel_size: k of the gates' convolution.
      dropout: Dropout2d rate on the gates.
      rngs: random streams for initialisation.
    """

    def __init__(
        self, in_features: int, hidden_dim: int, kernel_size: int, dropout: float, rngs: nnx.Rngs
    ):
        self.gates = same_conv(
            in_features + hidden_dim, 4 * hidden_dim, kernel_size, use_bias=True, rngs=rngs
        )
        self.dropout = dropout2d(dropout)
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
      input_shape: ``(input_length, lat, lon, channels)`` of one sample.
      horizon: number of steps to forecast.
      num_layers: stacked ConvLSTM layers.
      hidden_dim: hidden channels of every layer.
      kernel_size: k of the (k, k) gate convolutions; odd.
      dropout: Dropout2d rate on the gates.
      output_channels: the channels its output convolution forecasts, the first input
        channels (the targets); None: all of them.
      rngs: random streams for initialisation and dropout.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        horizon: int,
        *,
        num_layers: int = 3,
        hidden_dim: int = 32,
        kernel_size: int = 5,
        dropout: float = 0.0,
        output_channels: int | None = None,
        rngs: nnx.Rngs,
    ):
        super().__init__(
            input_shape, horizon, num_layers, hidden_dim, kernel_size, dropout, output_channels,
            rngs,
        )  # fmt: skip
        channels = self.input_shape[-1]
        self.layers = nnx.List(
            ConvLSTMLayer(
                channels if i == 0 else hidden_dim, hidden_dim, kernel_size, dropout, rngs
            )
            for i in range(num_layers)
        )
        self.output = Conv(hidden_dim, self.output_channels, (1, 1, 1), use_bias=True, rngs=rngs)

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
