"""Memory In Memory (Wang et al., 2019), as the reference implements it."""

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


def _mim_gate_conv(
    in_features: int,
    out_features: int,
    kernel_size: int,
    grid: Sequence[int],
    dropout: float,
    rngs: nnx.Rngs,
) -> GateConv:
    """MIM's gate convolutions have no bias."""
    return GateConv(
        in_features, out_features, kernel_size, grid, use_bias=False, dropout=dropout, rngs=rngs
    )


def _lon_matmul(x: jax.Array, weight: jax.Array) -> jax.Array:
    """Per channel, ``x[..., lat, :, c] @ weight[:, :, c]``: a matrix product over lon."""
    return jnp.einsum("byxc,xzc->byzc", x, weight)


class MIMCell(nnx.Module):
    """MIM's first layer, the reference's ST-LSTM variant. Its quirks, kept:
    sigmoid (not tanh) on both g gates, convolutions without bias, and the
    output convolution maps ``[c, m]`` to a single channel (with bias), which
    broadcasts over h's channels.

    Args:
      in_features: input channels.
      hidden_dim: channels of h, c and m.
      kernel_size: k of the convolutions.
      grid: ``(lat, lon)``.
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
        self.t_cc = _mim_gate_conv(hidden_dim, 4 * hidden_dim, kernel_size, grid, dropout, rngs)
        self.s_cc = _mim_gate_conv(hidden_dim, 4 * hidden_dim, kernel_size, grid, dropout, rngs)
        self.x_cc = _mim_gate_conv(in_features, 4 * hidden_dim, kernel_size, grid, dropout, rngs)
        self.last = pointwise_conv(2 * hidden_dim, 1, use_bias=True, rngs=rngs)

    def __call__(
        self, x: jax.Array, h: jax.Array, c: jax.Array, m: jax.Array, rngs: nnx.Rngs | None
    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        """One step: returns the new ``(h, c, m)``."""
        i_s, g_s, f_s, o_s = jnp.split(self.s_cc(m, rngs), 4, axis=-1)
        i_t, g_t, f_t, o_t = jnp.split(self.t_cc(h, rngs), 4, axis=-1)
        i_x, g_x, f_x, o_x = jnp.split(self.x_cc(x, rngs), 4, axis=-1)
        c = nnx.sigmoid(f_x + f_t + FORGET_BIAS) * c + nnx.sigmoid(i_x + i_t) * nnx.sigmoid(
            g_x + g_t
        )
        m = nnx.sigmoid(f_x + f_s + FORGET_BIAS) * m + nnx.sigmoid(i_x + i_s) * nnx.sigmoid(
            g_x + g_s
        )
        o = nnx.sigmoid(o_x + o_t + o_s)
        return o * jnp.tanh(self.last(jnp.concatenate([c, m], axis=-1))), c, m


class MIMS(nnx.Module):
    """MIM's stationarity module: an LSTM on ``(x, h, c)`` whose c also enters
    the gates through per-channel matrix products over the lon axis
    (``ct_weight``, ``oc_weight``, initialised N(0, 1)).

    Args:
      hidden_dim: channels of x, h and c.
      kernel_size: k of the convolutions.
      grid: ``(lat, lon)``.
      dropout: Dropout2d rate after each LayerNorm.
      rngs: random streams for initialisation.
    """

    def __init__(
        self, hidden_dim: int, kernel_size: int, grid: Sequence[int], dropout: float, rngs: nnx.Rngs
    ):
        lon = grid[1]
        self.conv_h = _mim_gate_conv(hidden_dim, 4 * hidden_dim, kernel_size, grid, dropout, rngs)
        self.conv_x = _mim_gate_conv(hidden_dim, 4 * hidden_dim, kernel_size, grid, dropout, rngs)
        normal = nnx.initializers.normal(1.0)
        self.ct_weight = nnx.Param(normal(rngs.params(), (lon, lon, 2 * hidden_dim)))
        self.oc_weight = nnx.Param(normal(rngs.params(), (lon, lon, hidden_dim)))

    def __call__(
        self, x: jax.Array, h: jax.Array, c: jax.Array, rngs: nnx.Rngs | None
    ) -> tuple[jax.Array, jax.Array]:
        """One step: returns the new ``(h, c)``."""
        i_h, g_h, f_h, o_h = jnp.split(self.conv_h(h, rngs), 4, axis=-1)
        i_x, g_x, f_x, o_x = jnp.split(self.conv_x(x, rngs), 4, axis=-1)
        i_c, f_c = jnp.split(_lon_matmul(jnp.concatenate([c, c], -1), self.ct_weight[...]), 2, -1)
        i = nnx.sigmoid(i_h + i_c + i_x)
        f = nnx.sigmoid(f_h + f_c + f_x + FORGET_BIAS)
        c = f * c + i * jnp.tanh(g_h + g_x)
        o = nnx.sigmoid(o_h + o_x + _lon_matmul(c, self.oc_weight[...]))
        return o * jnp.tanh(c), c


class MIMBlock(nnx.Module):
    """A MIM layer above the first: its temporal memory is replaced by a MIMS
    of the differences coming from below, and it hands on a MIMS cell state
    (``convlstm_c``) shared across layers and time. As in `MIMCell`, the
    output convolution maps ``[c, m]`` to a single channel.

    Args:
      hidden_dim: channels of the input and of h, c and m.
      kernel_size: k of the convolutions.
      grid: ``(lat, lon)``.
      dropout: Dropout2d rate after each LayerNorm.
      rngs: random streams for initialisation.
    """

    def __init__(
        self, hidden_dim: int, kernel_size: int, grid: Sequence[int], dropout: float, rngs: nnx.Rngs
    ):
        self.t_cc = _mim_gate_conv(hidden_dim, 3 * hidden_dim, kernel_size, grid, dropout, rngs)
        self.s_cc = _mim_gate_conv(hidden_dim, 4 * hidden_dim, kernel_size, grid, dropout, rngs)
        self.x_cc = _mim_gate_conv(hidden_dim, 4 * hidden_dim, kernel_size, grid, dropout, rngs)
        self.mims = MIMS(hidden_dim, kernel_size, grid, dropout, rngs)
        self.last = pointwise_conv(2 * hidden_dim, 1, use_bias=True, rngs=rngs)

    def __call__(
        self,
        x: jax.Array,
        diff_h: jax.Array,
        h: jax.Array,
        c: jax.Array,
        m: jax.Array,
        convlstm_c: jax.Array,
        rngs: nnx.Rngs | None,
    ) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
        """One step: returns the new ``(h, c, m, convlstm_c)``."""
        i_s, g_s, f_s, o_s = jnp.split(self.s_cc(m, rngs), 4, axis=-1)
        i_t, g_t, o_t = jnp.split(self.t_cc(h, rngs), 3, axis=-1)
        i_x, g_x, f_x, o_x = jnp.split(self.x_cc(x, rngs), 4, axis=-1)
        m = nnx.sigmoid(f_x + f_s + FORGET_BIAS) * m + nnx.sigmoid(i_x + i_s) * jnp.tanh(g_x + g_s)
        c, convlstm_c = self.mims(diff_h, c, convlstm_c, rngs)
        c = c + nnx.sigmoid(i_x + i_t) * jnp.tanh(g_x + g_t)
        o = nnx.sigmoid(o_x + o_t + o_s)
        return o * jnp.tanh(self.last(jnp.concatenate([c, m], axis=-1))), c, m, convlstm_c


class MIM(RecurrentForecaster):
    """Memory In Memory (Wang et al., 2019): a `MIMCell`, then `MIMBlock`s fed
    by a chain of "diff" `MIMS` layers over the step-to-step differences of the
    first layer's hidden state. At the first step the diff layers' output is
    discarded, so their state stays zero, as in the reference. The
    spatiotemporal memory zig-zags as in PredRNN; a 1x1 convolution (no bias)
    maps the top hidden state to the next frame.

    Args:
      input_shape: ``(input_length, lat, lon, channels)`` of one sample.
      horizon: number of steps to forecast.
      num_layers: the first cell plus ``num_layers - 1`` MIM blocks.
      hidden_dim: channels of every layer's states.
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
        channels, grid = self.input_shape[-1], self.grid
        self.first = MIMCell(channels, hidden_dim, kernel_size, grid, dropout, rngs)
        self.blocks = nnx.List(
            MIMBlock(hidden_dim, kernel_size, grid, dropout, rngs) for _ in range(num_layers - 1)
        )
        self.diffs = nnx.List(
            MIMS(hidden_dim, kernel_size, grid, dropout, rngs) for _ in range(num_layers - 1)
        )
        self.conv_last = pointwise_conv(hidden_dim, channels, use_bias=False, rngs=rngs)

    def step(
        self, x: jax.Array, state: State, rngs: nnx.Rngs | None
    ) -> tuple[State, jax.Array, jax.Array]:
        """One time step through all layers: returns ``(state, frame, frame)``."""
        started = state["started"]
        hidden, cells = list(state["hidden"]), list(state["cells"])
        diff_h, diff_c = list(state["diff_h"]), list(state["diff_c"])
        memory, convlstm_c = state["memory"], state["convlstm_c"]

        previous_h = hidden[0]
        hidden[0], cells[0], memory = self.first(x, hidden[0], cells[0], memory, rngs)
        for i, (block, diff) in enumerate(zip(self.blocks, self.diffs, strict=True)):
            change = hidden[0] - previous_h if i == 0 else diff_h[i - 1]
            new_h, new_c = diff(change, diff_h[i], diff_c[i], rngs)
            # At the first step the reference discards the diff layers' output.
            diff_h[i] = jnp.where(started, new_h, diff_h[i])
            diff_c[i] = jnp.where(started, new_c, diff_c[i])
            hidden[i + 1], cells[i + 1], memory, convlstm_c = block(
                hidden[i], diff_h[i], hidden[i + 1], cells[i + 1], memory, convlstm_c, rngs
            )
        frame = self.conv_last(hidden[-1])
        state = dict(
            started=jnp.array(True),
            hidden=hidden,
            cells=cells,
            diff_h=diff_h,
            diff_c=diff_c,
            memory=memory,
            convlstm_c=convlstm_c,
        )
        return state, frame, frame

    def __call__(self, x: jax.Array) -> jax.Array:
        """Maps ``(batch, T, lat, lon, C)`` to ``(batch, horizon, lat, lon, output_channels)``:
        every channel is forecast and fed back, the first ``output_channels`` returned."""
        self.check_input(x)
        frames, observed = self.sequence(x)
        zeros = self.zeros(x)
        layers, diffs = [zeros] * (1 + len(self.blocks)), [zeros] * len(self.diffs)
        state = dict(
            started=jnp.array(False),
            hidden=layers,
            cells=layers,
            diff_h=diffs,
            diff_c=diffs,
            memory=zeros,
            convlstm_c=zeros,
        )
        outputs = unroll(self, MIM.step, frames, observed, state, self.dropout_keys())
        return jnp.moveaxis(outputs, 0, 1)[..., : self.output_channels]
