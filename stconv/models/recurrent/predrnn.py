"""PredRNN (Wang et al., 2017): stacked spatiotemporal LSTM cells."""

import functools

import jax
import jax.numpy as jnp
from flax import nnx

from stconv.models.recurrent.common import (
    FORGET_BIAS,
    GateConv,
    RecurrentForecaster,
    State,
    pointwise_conv,
    stacked,
)
from stconv.models.spec import ModelSpec


class SpatioTemporalLSTMCell(nnx.Module):
    """PredRNN's ST-LSTM cell: a temporal memory c and a spatiotemporal memory m,
    each of ``spec.hidden_dim`` channels, with (k, k) gate convolutions
    (`GateConv`, with bias).

    Args:
      in_features: input channels.
      spec: the model's hyperparameters.
      rngs: random streams for initialisation.
    """

    def __init__(self, in_features: int, spec: ModelSpec, rngs: nnx.Rngs):
        gate_conv = functools.partial(GateConv, spec=spec, use_bias=True, rngs=rngs)
        hidden_dim = spec.hidden_dim
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
    Every channel is forecast and fed back; the first ``output_channels`` are
    returned.

    Args:
      spec: `ModelSpec`: ``num_layers`` cells (`SpatioTemporalLSTMCell`) whose
        h, c and m have ``hidden_dim`` channels, (k, k) convolutions of an odd
        ``kernel_size``, ``dropout`` the Dropout2d rate after each LayerNorm.
      rngs: random streams for initialisation and dropout.
    """

    def __init__(self, spec: ModelSpec, *, rngs: nnx.Rngs):
        super().__init__(spec, rngs)
        self.cells = stacked(SpatioTemporalLSTMCell, spec, rngs)
        self.conv_last = pointwise_conv(spec.hidden_dim, spec.channels, use_bias=False, rngs=rngs)

    def initial_state(self, zeros: jax.Array) -> State:
        """``(hidden, cells, memory)``, all zero."""
        return [zeros] * len(self.cells), [zeros] * len(self.cells), zeros

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
