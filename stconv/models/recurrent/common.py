"""What the recurrent models share: gate convolutions, LayerNorm, the time loop
(`unroll`) and `RecurrentForecaster` (validation, input sequence, dropout keys)."""

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from stconv.models.checks import check_input, output_channels_of, validate_hyperparameters
from stconv.models.layers import Conv

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
      output_channels: the first input channels it forecasts (`output_channels_of`).
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
        output_channels: int | None,
        rngs: nnx.Rngs,
    ):
        validate_hyperparameters(input_shape, horizon, num_layers, hidden_dim, kernel_size, dropout)
        check_odd_kernel(kernel_size)
        self.input_shape = tuple(input_shape)
        self.output_channels = output_channels_of(output_channels, input_shape[-1])
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
        in ``x``'s dtype (bfloat16 in mixed precision, `stconv.training.precision`)."""
        return jnp.zeros((x.shape[0], *self.grid, self.hidden_dim), x.dtype)
