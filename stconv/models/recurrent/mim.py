"""Memory In Memory (Wang et al., 2019), as the reference implements it."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from stconv.models.recurrent.common import (
    FORGET_BIAS,
    GateConv,
    RecurrentForecaster,
    pointwise_conv,
)
from stconv.models.spec import ModelSpec


def _gate_conv(in_features: int, out_features: int, spec: ModelSpec, rngs: nnx.Rngs) -> GateConv:
    """MIM's gate convolutions have no bias."""
    return GateConv(in_features, out_features, spec, use_bias=False, rngs=rngs)


class MIMState(NamedTuple):
    """MIM's recurrent state, each array ``(batch, lat, lon, hidden_dim)``.

    Attributes:
      started: whether a step has run (the diff layers' first output is discarded).
      hidden, cells: each layer's h and c.
      diff_h, diff_c: each diff layer's h and c.
      memory: the spatiotemporal memory m.
      convlstm_c: the MIMS cell state the blocks share.
    """

    started: jax.Array
    hidden: list[jax.Array]
    cells: list[jax.Array]
    diff_h: list[jax.Array]
    diff_c: list[jax.Array]
    memory: jax.Array
    convlstm_c: jax.Array


def _lon_matmul(x: jax.Array, weight: jax.Array) -> jax.Array:
    """Per channel, ``x[..., lat, :, c] @ weight[:, :, c]``: a matrix product over lon."""
    return jnp.einsum("byxc,xzc->byzc", x, weight)


class MIMCell(nnx.Module):
    """MIM's first layer, the reference's ST-LSTM variant. Its quirks, kept:
    sigmoid (not tanh) on both g gates, convolutions without bias, and the
    output convolution maps ``[c, m]`` to a single channel (with bias), which
    broadcasts over h's channels. h, c and m have ``spec.hidden_dim`` channels.

    Args:
      in_features: input channels.
      spec: the model's hyperparameters.
      rngs: random streams for initialisation.
    """

    def __init__(self, in_features: int, spec: ModelSpec, rngs: nnx.Rngs):
        hidden_dim = spec.hidden_dim
        self.t_cc = _gate_conv(hidden_dim, 4 * hidden_dim, spec, rngs)
        self.s_cc = _gate_conv(hidden_dim, 4 * hidden_dim, spec, rngs)
        self.x_cc = _gate_conv(in_features, 4 * hidden_dim, spec, rngs)
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
    (``ct_weight``, ``oc_weight``, initialised N(0, 1)). x, h and c have
    ``spec.hidden_dim`` channels.

    Args:
      spec: the model's hyperparameters.
      rngs: random streams for initialisation.
    """

    def __init__(self, spec: ModelSpec, rngs: nnx.Rngs):
        hidden_dim, lon = spec.hidden_dim, spec.grid[1]
        self.conv_h = _gate_conv(hidden_dim, 4 * hidden_dim, spec, rngs)
        self.conv_x = _gate_conv(hidden_dim, 4 * hidden_dim, spec, rngs)
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
    output convolution maps ``[c, m]`` to a single channel. The input and h, c
    and m have ``spec.hidden_dim`` channels.

    Args:
      spec: the model's hyperparameters.
      rngs: random streams for initialisation.
    """

    def __init__(self, spec: ModelSpec, rngs: nnx.Rngs):
        hidden_dim = spec.hidden_dim
        self.t_cc = _gate_conv(hidden_dim, 3 * hidden_dim, spec, rngs)
        self.s_cc = _gate_conv(hidden_dim, 4 * hidden_dim, spec, rngs)
        self.x_cc = _gate_conv(hidden_dim, 4 * hidden_dim, spec, rngs)
        self.mims = MIMS(spec, rngs)
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
    maps the top hidden state to the next frame. Every channel is forecast and
    fed back; the first ``output_channels`` are returned.

    Args:
      spec: `ModelSpec`: the first cell plus ``num_layers - 1`` MIM blocks, every
        layer's states of ``hidden_dim`` channels, (k, k) convolutions of an odd
        ``kernel_size``, ``dropout`` the Dropout2d rate after each LayerNorm.
      rngs: random streams for initialisation and dropout.
    """

    def __init__(self, spec: ModelSpec, *, rngs: nnx.Rngs):
        super().__init__(spec, rngs)
        self.first = MIMCell(spec.channels, spec, rngs)
        self.blocks = nnx.List(MIMBlock(spec, rngs) for _ in range(spec.num_layers - 1))
        self.diffs = nnx.List(MIMS(spec, rngs) for _ in range(spec.num_layers - 1))
        self.conv_last = pointwise_conv(spec.hidden_dim, spec.channels, use_bias=False, rngs=rngs)

    def initial_state(self, zeros: jax.Array) -> MIMState:
        """Every layer's, the diff layers' and the memories' states, all zero."""
        layers, diffs = [zeros] * (1 + len(self.blocks)), [zeros] * len(self.diffs)
        return MIMState(jnp.array(False), layers, layers, diffs, diffs, zeros, zeros)

    def step(
        self, x: jax.Array, state: MIMState, rngs: nnx.Rngs | None
    ) -> tuple[MIMState, jax.Array, jax.Array]:
        """One time step through all layers: returns ``(state, frame, frame)``."""
        started, memory, convlstm_c = state.started, state.memory, state.convlstm_c
        hidden, cells = list(state.hidden), list(state.cells)
        diff_h, diff_c = list(state.diff_h), list(state.diff_c)

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
        state = MIMState(jnp.array(True), hidden, cells, diff_h, diff_c, memory, convlstm_c)
        return state, frame, frame
