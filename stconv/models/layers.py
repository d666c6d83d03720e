"""The nnx layers shared by every model: `Conv`, `BatchNorm` and `ConvBlock`.

Tensors are channels-last: ``(batch, *spatial, channels)``. `Conv` computes
with `stconv.models.conv_algorithms.conv`, which writes each convolution the way
the backend runs it fastest; initialisation and BatchNorm follow PyTorch, as
the reference implementation does.
"""

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from stconv.models.conv_algorithms import Padding, conv

LEAKY_RELU_SLOPE = 0.01
# PyTorch's BatchNorm momentum 0.1 is Flax's 0.9 (the weight of the old value).
BATCH_NORM_MOMENTUM = 0.9
BATCH_NORM_EPSILON = 1e-5


def torch_uniform_init(fan_in: int) -> nnx.Initializer:
    """PyTorch's default conv init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

    Draws a flat vector and reshapes it: XLA's CPU compile time for a random
    draw grows steeply with its rank (about 1 s for a rank-5 kernel).
    """
    bound = fan_in**-0.5

    def init(key, shape, dtype=jnp.float32):
        size = math.prod(shape)
        return jax.random.uniform(key, (size,), dtype, -bound, bound).reshape(shape)

    return init


class Conv(nnx.Module):
    """An N-d convolution (N = len(kernel_size)) with explicit padding.

    Args:
      in_features: input channels.
      out_features: output channels.
      kernel_size: one size per spatial axis.
      strides: one per axis, default 1.
      padding: ``(low, high)`` per axis, default none.
      input_dilation: one per axis; 2 with padding ``k - 1 - p`` gives PyTorch's
        ``ConvTranspose(stride=2, padding=p)``.
      use_bias: add a learned bias.
      fan_in: fan-in for PyTorch's default initialisation; defaults to
        ``in_features * prod(kernel_size)``.
      rngs: random streams for initialisation.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        kernel_size: Sequence[int],
        *,
        strides: Sequence[int] | None = None,
        padding: Padding | None = None,
        input_dilation: Sequence[int] | None = None,
        use_bias: bool = False,
        fan_in: int | None = None,
        rngs: nnx.Rngs,
    ):
        kernel_size = tuple(kernel_size)
        if fan_in is None:
            fan_in = in_features * math.prod(kernel_size)
        init = torch_uniform_init(fan_in)
        self.kernel = nnx.Param(init(rngs.params(), (*kernel_size, in_features, out_features)))
        self.bias = nnx.Param(init(rngs.params(), (out_features,))) if use_bias else None
        self.strides = strides
        self.padding = padding
        self.input_dilation = input_dilation

    def __call__(self, x: jax.Array) -> jax.Array:
        y = conv(x, self.kernel[...], self.strides, self.padding, self.input_dilation)
        if self.bias is not None:
            y = y + self.bias[...]
        return y


class BatchNorm(nnx.BatchNorm):
    """PyTorch's BatchNorm, channels-last: momentum 0.1 (Flax's 0.9), eps 1e-5,
    and the running variance updated with the unbiased batch variance.

    In train mode both normalise with the biased variance of the batch, but
    PyTorch's running variance averages in the unbiased one, ``n / (n - 1)``
    times it, with ``n`` the values per channel (``nnx.BatchNorm`` averages
    in the biased one). Eval mode, which normalises with the running
    statistics, then gives PyTorch's outputs.

    Args:
      num_features: channels.
      rngs: random streams (unused; `nnx.BatchNorm` takes them).
    """

    def __init__(self, num_features: int, *, rngs: nnx.Rngs):
        super().__init__(
            num_features, momentum=BATCH_NORM_MOMENTUM, epsilon=BATCH_NORM_EPSILON, rngs=rngs
        )

    def __call__(self, x: jax.Array, use_running_average: bool | None = None) -> jax.Array:
        training = not (
            self.use_running_average if use_running_average is None else use_running_average
        )
        running_var = self.var[...]
        y = super().__call__(x, use_running_average)
        if training:
            axes = tuple(range(x.ndim - 1))
            count = math.prod(x.shape[:-1])
            stats = x.astype(jnp.promote_types(x.dtype, jnp.float32))
            unbiased = jnp.var(stats, axis=axes) * (count / max(count - 1, 1))
            update = self.momentum * running_var + (1 - self.momentum) * unbiased
            self.var[...] = jax.lax.stop_gradient(update.astype(running_var.dtype))
        return y


class ConvBlock(nnx.Module):
    """Conv (no bias) -> BatchNorm -> LeakyReLU(0.01) -> Dropout, for 1D, 2D or 3D.

    The kernel rank is ``len(kernel_size)``; the input has that many axes
    between batch and channels.

    Args:
      in_features: input channels.
      out_features: output channels.
      kernel_size: one size per spatial axis.
      padding: ``(low, high)`` per axis, default none.
      strides: one per axis, default 1.
      input_dilation: one per axis, default 1 (see `Conv`).
      dropout: dropout rate; 0 adds no dropout layer.
      fan_in: fan-in for initialisation (see `Conv`).
      rngs: random streams for initialisation and dropout.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        kernel_size: Sequence[int],
        *,
        padding: Padding | None = None,
        strides: Sequence[int] | None = None,
        input_dilation: Sequence[int] | None = None,
        dropout: float = 0.0,
        fan_in: int | None = None,
        rngs: nnx.Rngs,
    ):
        self.conv = Conv(
            in_features,
            out_features,
            kernel_size,
            strides=strides,
            padding=padding,
            input_dilation=input_dilation,
            fan_in=fan_in,
            rngs=rngs,
        )
        self.norm = BatchNorm(out_features, rngs=rngs)
        self.dropout = nnx.Dropout(dropout, rngs=rngs) if dropout > 0 else None

    def __call__(self, x: jax.Array) -> jax.Array:
        y = nnx.leaky_relu(self.norm(self.conv(x)), LEAKY_RELU_SLOPE)
        if self.dropout is not None:
            y = self.dropout(y)
        return y
