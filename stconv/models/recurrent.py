"""ConvLSTM, PredRNN and MIM: the paper's recurrent baselines.

They follow the reference PyTorch implementation (MLRG-CEFET-RJ/stconvs2s,
``model/baselines/``): the same layers, gate orders, initialisation and
trainable parameter counts, and, given the same weights, the same outputs,
gradients and optimizer steps (``tests/test_reference.py``).

Each model runs ``horizon`` time steps. At step ``t < input_length`` its input
is frame ``t``; afterwards the previous generated frame is fed back (in
ConvLSTM, each layer's own 1x1 projection of its previous hidden state). When
``horizon < input_length`` only the first ``horizon`` frames are used, as the
reference's ConvLSTM does (its PredRNN and MIM fail there).

The time loop is one `jax.lax.scan`, so compile time does not grow with the
horizon; the convolutions inside it are `stconv.layers.Conv`s, which stay fast
inside a loop body on XLA's CPU backend (`stconv.layers.spatial_conv` and, for
5x5 kernels between 32+ channels, `stconv.layers.fourier_conv`).
Dropout is PyTorch's Dropout2d, which drops whole channels, with a new mask at every step.

Differences from the reference:
  * Its LayerNorms normalise over ``[channels, W, W]`` with W the grid width,
    so it only runs on square grids. Here they normalise over
    ``(lat, lon, channels)`` jointly: the same on square grids, same parameter
    counts, and non-square grids (the embedded 37 x 49 dataset) work.
  * MIM's ``ct_weight`` and ``oc_weight`` are stored channels-last,
    ``(lon, lon, channels)`` instead of ``(channels, W, W)``; they are the
    same per-channel matrix products over the lon axis.
"""

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from stconv.layers import Conv
from stconv.models.validation import check_input, validate_hyperparameters

FORGET_BIAS = 1.0
LAYER_NORM_EPSILON = 1e-5

State = Any  # a pytree of (batch, lat, lon, hidden_dim) arrays


def check_odd_kernel(kernel_size: int) -> None:
    """The cells pad by ``kernel_size // 2``, which keeps the grid only for odd sizes."""
    if kernel_size % 2 == 0:
        raise ValueError(
            f"kernel_size={kernel_size} is invalid: must be odd, so that padding "
            "kernel_size // 2 keeps the grid size"
        )


def same_conv(
    in_features: int, out_features: int, kernel_size: int, *, use_bias: bool, rngs: nnx.Rngs
) -> Conv:
    """A 2D (k, k) convolution padded by k // 2, which keeps the grid for odd k."""
    pad = kernel_size // 2
    return Conv(
        in_features,
        out_features,
        (kernel_size, kernel_size),
        padding=((pad, pad), (pad, pad)),
        use_bias=use_bias,
        rngs=rngs,
    )


def pointwise_conv(in_features: int, out_features: int, *, use_bias: bool, rngs: nnx.Rngs) -> Conv:
    """A 1x1 convolution."""
    return Conv(in_features, out_features, (1, 1), use_bias=use_bias, rngs=rngs)


def dropout2d(rate: float) -> nnx.Dropout:
    """PyTorch's Dropout2d on ``(batch, lat, lon, channels)``: drops whole channels.

    It has no random stream of its own: call it with ``rngs``.
    """
    return nnx.Dropout(rate, broadcast_dims=(1, 2))


class LayerNorm(nnx.Module):
    """LayerNorm over the last three axes jointly, ``(lat, lon, channels)``,
    with an elementwise scale and bias, like PyTorch's ``nn.LayerNorm([C, H, W])``.

    Args:
      shape: ``(lat, lon, channels)``.
    """

    def __init__(self, shape: Sequence[int]):
        self.scale = nnx.Param(jnp.ones(tuple(shape)))
        self.bias = nnx.Param(jnp.zeros(tuple(shape)))

    def __call__(self, x: jax.Array) -> jax.Array:
        axes = (-3, -2, -1)
        mean = jnp.mean(x, axis=axes, keepdims=True)
        variance = jnp.mean(jnp.square(x - mean), axis=axes, keepdims=True)
        normalized = (x - mean) * jax.lax.rsqrt(variance + LAYER_NORM_EPSILON)
        return normalized * self.scale[...] + self.bias[...]


class GateConv(nnx.Module):
    """Conv (k, k) -> LayerNorm over (lat, lon, channels) -> Dropout2d.

    Args:
      in_features: input channels.
      out_features: output channels (several gates, split by the caller).
      kernel_size: k.
      grid: ``(lat, lon)``.
      use_bias: give the convolution a bias.
      dropout: Dropout2d rate.
      rngs: random streams for initialisation.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        kernel_size: int,
        grid: Sequence[int],
        *,
        use_bias: bool,
        dropout: float,
        rngs: nnx.Rngs,
    ):
        self.conv = same_conv(in_features, out_features, kernel_size, use_bias=use_bias, rngs=rngs)
        self.norm = LayerNorm((*grid, out_features))
        self.dropout = dropout2d(dropout)

    def __call__(self, x: jax.Array, rngs: nnx.Rngs | None) -> jax.Array:
        return self.dropout(self.norm(self.conv(x)), rngs=rngs)


def unroll(
    module: nnx.Module,
    step: Callable[..., tuple[State, jax.Array, jax.Array]],
    frames: jax.Array,
    observed: jax.Array,
    state: State,
    keys: jax.Array | None,
) -> jax.Array:
    """Runs ``step`` over time in one `jax.lax.scan`, feeding back its output.

    Args:
      module: the module holding the step's parameters.
      step: ``step(module, x, state, rngs) -> (state, output, feedback)``;
        ``feedback`` is the input of the next step when that step is not observed.
      frames: ``(steps, batch, lat, lon, channels)`` inputs.
      observed: ``(steps,)`` booleans: where true the input is the frame,
        elsewhere the previous step's feedback.
      state: the initial recurrent state.
      keys: ``(steps,)`` dropout keys, or None for no dropout.

    Returns:
      The outputs stacked along a leading time axis.
    """
    graphdef, variables = nnx.split(module)

    def body(carry, inputs):
        state, feedback = carry
        frame, is_observed, key = inputs
        x = jnp.where(is_observed, frame, feedback)
        rngs = None if key is None else nnx.Rngs(dropout=key)
        state, output, feedback = step(nnx.merge(graphdef, variables), x, state, rngs)
        return (state, feedback), output

    carry = (state, jnp.zeros_like(frames[0]))
    _, outputs = jax.lax.scan(body, carry, (frames, observed, keys))
    return outputs


class RecurrentForecaster(nnx.Module):
    """What the three models share: validation, the input sequence and dropout keys.

    Args:
      input_shape: ``(input_length, lat, lon, channels)`` of one sample.
      horizon: number of steps to forecast.
      num_layers, hidden_dim, kernel_size, dropout: see the subclasses.
      rngs: random streams; the ``dropout`` stream (or ``default``) draws the masks.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        horizon: int,
        num_layers: int,
        hidden_dim: int,
        kernel_size: int,
        dropout: float,
        rngs: nnx.Rngs,
    ):
        validate_hyperparameters(input_shape, horizon, num_layers, hidden_dim, kernel_size, dropout)
        check_odd_kernel(kernel_size)
        self.input_shape = tuple(input_shape)
        self.horizon = horizon
        self.hidden_dim = hidden_dim
        self.kernel_size = kernel_size
        self.dropout_rate = dropout
        self.deterministic = False  # set by `train()` and `eval()`
        self.rngs = rngs["dropout"].fork()

    @property
    def grid(self) -> tuple[int, int]:
        return self.input_shape[1:3]

    def check_input(self, x: jax.Array) -> None:
        """Raises ValueError unless ``x`` is ``(batch, *input_shape)``: the
        LayerNorms and MIM's weights are built for the grid."""
        check_input(x, self.input_shape, self.kernel_size)
        if tuple(x.shape[2:4]) != self.grid:
            raise ValueError(
                f"input of shape {tuple(x.shape)} is invalid: the model was built for "
                f"the grid (lat, lon) = {self.grid}"
            )

    def sequence(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """The ``horizon`` steps' input frames, time first, and which are observed."""
        frames = jnp.moveaxis(x, 1, 0)[: self.horizon]
        missing = self.horizon - frames.shape[0]
        frames = jnp.pad(frames, ((0, missing), (0, 0), (0, 0), (0, 0), (0, 0)))
        return frames, jnp.arange(self.horizon) < x.shape[1]

    def dropout_keys(self) -> jax.Array | None:
        """One key per step in training mode with dropout, else None."""
        if self.deterministic or self.dropout_rate == 0.0:
            return None
        return jax.random.split(self.rngs(), self.horizon)

    def zeros(self, x: jax.Array) -> jax.Array:
        """A zero hidden state for the input ``x``, ``(batch, lat, lon, hidden_dim)``
        in ``x``'s dtype (bfloat16 in mixed precision, `stconv.precision`)."""
        return jnp.zeros((x.shape[0], *self.grid, self.hidden_dim), x.dtype)


# ConvLSTM


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
    last layer's hidden states to the input channels.

    Args:
      input_shape: ``(input_length, lat, lon, channels)`` of one sample.
      horizon: number of steps to forecast.
      num_layers: stacked ConvLSTM layers.
      hidden_dim: hidden channels of every layer.
      kernel_size: k of the (k, k) gate convolutions; odd.
      dropout: Dropout2d rate on the gates.
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
        rngs: nnx.Rngs,
    ):
        super().__init__(input_shape, horizon, num_layers, hidden_dim, kernel_size, dropout, rngs)
        channels = self.input_shape[-1]
        self.layers = nnx.List(
            ConvLSTMLayer(
                channels if i == 0 else hidden_dim, hidden_dim, kernel_size, dropout, rngs
            )
            for i in range(num_layers)
        )
        self.output = Conv(hidden_dim, channels, (1, 1, 1), use_bias=True, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        """Maps ``(batch, T, lat, lon, C)`` to ``(batch, horizon, lat, lon, C)``."""
        self.check_input(x)
        frames, observed = self.sequence(x)
        state = (self.zeros(x), self.zeros(x))
        for layer in self.layers:
            frames = unroll(
                layer, ConvLSTMLayer.__call__, frames, observed, state, self.dropout_keys()
            )
        return self.output(jnp.moveaxis(frames, 0, 1))


# PredRNN


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
        rngs: nnx.Rngs,
    ):
        super().__init__(input_shape, horizon, num_layers, hidden_dim, kernel_size, dropout, rngs)
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
        """Maps ``(batch, T, lat, lon, C)`` to ``(batch, horizon, lat, lon, C)``."""
        self.check_input(x)
        frames, observed = self.sequence(x)
        zeros = [self.zeros(x)] * len(self.cells)
        state = (zeros, zeros, self.zeros(x))
        outputs = unroll(self, PredRNN.step, frames, observed, state, self.dropout_keys())
        return jnp.moveaxis(outputs, 0, 1)


# MIM


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
        rngs: nnx.Rngs,
    ):
        super().__init__(input_shape, horizon, num_layers, hidden_dim, kernel_size, dropout, rngs)
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
        """Maps ``(batch, T, lat, lon, C)`` to ``(batch, horizon, lat, lon, C)``."""
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
        return jnp.moveaxis(outputs, 0, 1)
