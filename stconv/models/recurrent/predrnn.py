"""PredRNN (Wang et al., 2017): stacked spatiotemporal LSTM cells."""

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from stconv.models.recurrent.common import (
    FORGET_BIAS,
    GateConv,
    RecurrentForecaster,
    State,
    pointwise_conv,
    unroll,
)


class SpatioTemporalLSTMCell(nnx.Module):
    """PredRNN's ST-LSTM cell: a temporal memory c and a spatiotemporal memory m.

    Args:
      in_features: input channels.
      hidden_dim: channels of h, c and m.
      kernel_size: k of the convolutions.
      grid: ``(lat, lon)``, the LayerNorms' shape.
      dropout: Dropout2d rate after each LayerNorm.
      rngs: random streams for initialisation.
    """

    def __init__(
        self,
        in_features: int,
        hidden_dim: int,
        kernel_size: int,
        grid: Sequence[int],
        dropout: float,
        rngs: nnx.Rngs,
    ):
        def gate_conv(in_features, out_features):
            return GateConv(
                in_features,
                out_features,
                kernel_size,
                grid,
                use_bias=True,
                dropout=dropout,
                rngs=rngs,
            )

        self.conv_x = gate_conv(in_features, 7 * hidden_dim)
        self.conv_h = gate_conv(hidden_dim, 4 * hidden_dim)
        self.conv_m = gate_conv(hidden_dim, 3 * hidden_dim)
        self.conv_o = gate_conv(2 * hidden_dim, hidden_dim)
        self.conv_last = pointwise_conv(2 * hidden_dim, hidden_dim, use_bias=True, rngs=rngs)

    def __call__(
        self, x: jax.Array, h: jax.Array, c: jax.Array, m: jax.Array, rngs: nnx.Rngs | None
    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        """One step: returns the new ``(h, c, m)``."""
        i_x, f_x, g_x, i_xm, f_xm, g_xm, o_x = jnp.split(self.conv_x(x, rngs), 7, axis=-1)
        i_h, f_h, g_h, o_h = jnp.split(self.conv_h(h, rngs), 4, axis=-1)
        i_m, f_m, g_m = jnp.split(self.conv_m(m, rngs), 3, axis=-1)
        i = nnx.sigmoid(i_x + i_h)
        f = nnx.sigmoid(f_x + f_h + FORGET_BIAS)
        c = f * c + i * jnp.tanh(g_x + g_h)
        i_m = nnx.sigmoid(i_xm + i_m)
        f_m = nnx.sigmoid(f_xm + f_m + FORGET_BIAS)
        m = f_m * m + i_m * jnp.tanh(g_xm + g_m)
        memory = jnp.concatenate([c, m], axis=-1)
        o = nnx.sigmoid(o_x + o_h + self.conv_o(memory, rngs))
        return o * jnp.tanh(self.conv_last(memory)), c, m


class PredRNN(RecurrentForecaster):
    """PredRNN (Wang et al., 2017): stacked ST-LSTM cells whose spatiotemporal
    memory zig-zags up the layers and on to the first layer at the next step;
    a 1x1 convolution (no bias) maps the top hidden state to the next frame.

    Args:
      input_shape: ``(input_length, lat, lon, channels)`` of one sample.
      horizon: number of steps to forecast.
      num_layers: stacked ST-LSTM cells.
      hidden_dim: channels of every cell's h, c and m.
      kernel_size: k of the (k, k) convolutions; odd.
      dropout: Dropout2d rate after each LayerNorm.
      output_channels: the first input channels (the targets) it returns; it forecasts
        and feeds back every channel. None: all of them.
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
        self.cells = nnx.List(
            SpatioTemporalLSTMCell(
                channels if i == 0 else hidden_dim,
                hidden_dim,
                kernel_size,
                self.grid,
                dropout,
                rngs,
            )
            for i in range(num_layers)
        )
        self.conv_last = pointwise_conv(hidden_dim, channels, use_bias=False, rngs=rngs)

    def step(
        self, x: jax.Array, state: State, rngs: nnx.Rngs | None
    ) -> tuple[State, jax.Array, jax.Array]:
        """One time step through all layers: returns ``(state, frame, frame)``."""
        hidden, cells, memory = state
        hidden, cells = list(hidden), list(cells)
        for i, cell in enumerate(self.cells):
            below = x if i == 0 else hidden[i - 1]
            hidden[i], cells[i], memory = cell(below, hidden[i], cells[i], memory, rngs)
        frame = self.conv_last(hidden[-1])
        return (hidden, cells, memory), frame, frame

    def __call__(self, x: jax.Array) -> jax.Array:
        """Maps ``(batch, T, lat, lon, C)`` to ``(batch, horizon, lat, lon, output_channels)``:
        every channel is forecast and fed back, the first ``output_channels`` returned."""
        self.check_input(x)
        frames, observed = self.sequence(x)
        zeros = [self.zeros(x)] * len(self.cells)
        state = (zeros, zeros, self.zeros(x))
        outputs = unroll(self, PredRNN.step, frames, observed, state, self.dropout_keys())
        return jnp.moveaxis(outputs, 0, 1)[..., : self.output_channels]
