"""What the recurrent models share: gate convolutions, LayerNorm, the time loop
(`unroll`) and `RecurrentForecaster` (validation, input sequence, dropout keys,
the forecast of a model that feeds its frames back)."""

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from stconv.models.checks import check_input
from stconv.models.layers import Conv
from stconv.models.spec import ModelSpec

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


def _normalized_rows(rows: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Each row of ``rows`` minus its mean, over its standard deviation, and that
    deviation's reciprocal ``(n, 1)``."""
    centered = rows - jnp.mean(rows, axis=1, keepdims=True)
    variance = jnp.mean(jnp.square(centered), axis=1, keepdims=True)
    reciprocal = jax.lax.rsqrt(variance + LAYER_NORM_EPSILON)
    return centered * reciprocal, reciprocal


@jax.custom_vjp
def layer_norm(x: jax.Array, scale: jax.Array, bias: jax.Array) -> jax.Array:
    """``x`` normalised over all axes but the first, then ``* scale + bias``
    (both of shape ``x.shape[1:]``).

    The gradients are written by hand: JAX's own sum the scale's and bias's
    over the batch axis, a reduction to ``lat * lon * channels`` values that
    XLA's CPU backend runs slowly (850 of the 1946 ms of XLA operations in
    PredRNN's train step at CHIRPS, `experiments/profile_step.py`); here they
    are products by a vector of ones.
    """
    return _layer_norm_fwd(x, scale, bias)[0]


def _layer_norm_fwd(x, scale, bias):
    normalized, reciprocal = _normalized_rows(x.reshape(x.shape[0], -1))
    y = normalized * scale.reshape(1, -1) + bias.reshape(1, -1)
    return y.reshape(x.shape), (normalized, reciprocal, scale)


def _layer_norm_bwd(residuals, grad):
    normalized, reciprocal, scale = residuals
    grad = grad.reshape(normalized.shape)
    ones = jnp.ones((grad.shape[0],), grad.dtype)
    scale_grad = (ones @ (grad * normalized)).reshape(scale.shape)
    bias_grad = (ones @ grad).reshape(scale.shape)
    grad = grad * scale.reshape(1, -1)
    x_grad = reciprocal * (
        grad
        - jnp.mean(grad, axis=1, keepdims=True)
        - normalized * jnp.mean(grad * normalized, axis=1, keepdims=True)
    )
    x_grad = x_grad.reshape(grad.shape[0], *scale.shape).astype(normalized.dtype)
    return x_grad, scale_grad.astype(scale.dtype), bias_grad.astype(scale.dtype)


layer_norm.defvjp(_layer_norm_fwd, _layer_norm_bwd)


class LayerNorm(nnx.Module):
    """LayerNorm over the last three axes jointly, ``(lat, lon, channels)``,
    with an elementwise scale and bias, like PyTorch's ``nn.LayerNorm([C, H, W])``
    (`layer_norm`).

    Args:
      shape: ``(lat, lon, channels)``.
    """

    def __init__(self, shape: Sequence[int]):
        self.scale = nnx.Param(jnp.ones(tuple(shape)))
        self.bias = nnx.Param(jnp.zeros(tuple(shape)))

    def __call__(self, x: jax.Array) -> jax.Array:
        return layer_norm(x, self.scale[...], self.bias[...])


class GateConv(nnx.Module):
    """Conv (k, k) -> LayerNorm over (lat, lon, channels) -> Dropout2d, of the
    model's ``spec.kernel_size``, ``spec.grid`` and ``spec.dropout``.

    Args:
      in_features: input channels.
      out_features: output channels (several gates, split by the caller).
      spec: the model's hyperparameters.
      use_bias: give the convolution a bias.
      rngs: random streams for initialisation.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        spec: ModelSpec,
        *,
        use_bias: bool,
        rngs: nnx.Rngs,
    ):
        self.conv = same_conv(
            in_features, out_features, spec.kernel_size, use_bias=use_bias, rngs=rngs
        )
        self.norm = LayerNorm((*spec.grid, out_features))
        self.dropout = dropout2d(spec.dropout)

    def __call__(self, x: jax.Array, rngs: nnx.Rngs | None) -> jax.Array:
        return self.dropout(self.norm(self.conv(x)), rngs=rngs)


def stacked(layer: Callable[..., nnx.Module], spec: ModelSpec, rngs: nnx.Rngs) -> nnx.List:
    """``spec.num_layers`` layers ``layer(in_features, spec, rngs)``: the first
    takes the input channels, the others ``spec.hidden_dim``."""
    return nnx.List(
        layer(spec.channels if i == 0 else spec.hidden_dim, spec, rngs)
        for i in range(spec.num_layers)
    )


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
    """What the three models share: validation, the input sequence, dropout keys,
    and the forecast of a model whose `step` runs all its layers and feeds its
    frame back (PredRNN, MIM; ConvLSTM, whose layers each run over the whole
    sequence, has its own ``__call__``).

    Args:
      spec: the hyperparameters every model takes; ``kernel_size`` must be odd.
      rngs: random streams; the ``dropout`` stream (or ``default``) draws the masks.
    """

    def __init__(self, spec: ModelSpec, rngs: nnx.Rngs):
        check_odd_kernel(spec.kernel_size)
        self.spec = spec
        self.deterministic = False  # set by `train()` and `eval()`
        self.rngs = rngs["dropout"].fork()

    def initial_state(self, zeros: jax.Array) -> State:
        """The state before the first step, from a zero hidden state (`zeros`)."""
        raise NotImplementedError

    def step(
        self, x: jax.Array, state: State, rngs: nnx.Rngs | None
    ) -> tuple[State, jax.Array, jax.Array]:
        """One time step through all layers: returns ``(state, frame, frame)``."""
        raise NotImplementedError

    def __call__(self, x: jax.Array) -> jax.Array:
        """Maps ``(batch, T, lat, lon, C)`` to ``(batch, horizon, lat, lon, output_channels)``:
        every channel is forecast and fed back, the first ``output_channels`` returned."""
        self.check_input(x)
        frames, observed = self.sequence(x)
        state = self.initial_state(self.zeros(x))
        outputs = unroll(self, type(self).step, frames, observed, state, self.dropout_keys())
        return jnp.moveaxis(outputs, 0, 1)[..., : self.spec.targets]

    def check_input(self, x: jax.Array) -> None:
        """Raises ValueError unless ``x`` is ``(batch, *input_shape)``: the
        LayerNorms and MIM's weights are built for the grid."""
        check_input(x, self.spec)
        if tuple(x.shape[2:4]) != self.spec.grid:
            raise ValueError(
                f"input of shape {tuple(x.shape)} is invalid: the model was built for "
                f"the grid (lat, lon) = {self.spec.grid}"
            )

    def sequence(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """The ``horizon`` steps' input frames, time first, and which are observed."""
        horizon = self.spec.horizon
        frames = jnp.moveaxis(x, 1, 0)[:horizon]
        missing = horizon - frames.shape[0]
        frames = jnp.pad(frames, ((0, missing), (0, 0), (0, 0), (0, 0), (0, 0)))
        return frames, jnp.arange(horizon) < x.shape[1]

    def dropout_keys(self) -> jax.Array | None:
        """One key per step in training mode with dropout, else None."""
        if self.deterministic or self.spec.dropout == 0.0:
            return None
        return jax.random.split(self.rngs(), self.spec.horizon)

    def zeros(self, x: jax.Array) -> jax.Array:
        """A zero hidden state for the input ``x``, ``(batch, lat, lon, hidden_dim)``
        in ``x``'s dtype (bfloat16 in mixed precision, `stconv.training.precision`)."""
        return jnp.zeros((x.shape[0], *self.spec.grid, self.spec.hidden_dim), x.dtype)
