"""Convolution and the conv block shared by every model.

Tensors are channels-last: ``(batch, *spatial, channels)``. For STConvS2S the
spatial axes are ``(time, lat, lon)``.

`conv` writes stride-1 3D convolutions the way XLA's CPU backend runs them
fastest (measured in ``experiments/benchmark.py``): a sum over the kernel's
time offsets of 2D convolutions over ``batch * time`` frames, so a ``(1, k, k)``
kernel is one 2D convolution and a ``(k, 1, 1)`` kernel k matrix products.
These are exact rewrites of the 3D convolution, not approximations.
"""

import functools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

Padding = Sequence[tuple[int, int]]

LEAKY_RELU_SLOPE = 0.01
# PyTorch's BatchNorm momentum 0.1 is Flax's 0.9 (the weight of the old value).
BATCH_NORM_MOMENTUM = 0.9
BATCH_NORM_EPSILON = 1e-5


def conv_general(
    x: jax.Array,
    kernel: jax.Array,
    strides: Sequence[int],
    padding: Padding,
    input_dilation: Sequence[int],
) -> jax.Array:
    """Plain N-d convolution, channels-last, kernel laid out ``(*k, in, out)``."""
    rank = kernel.ndim - 2
    if not 1 <= rank <= 3:
        raise ValueError(
            f"kernel of shape {kernel.shape} is invalid: must have 1, 2 or 3 spatial axes"
        )
    spatial = "DHW"[3 - rank :]
    numbers = jax.lax.conv_dimension_numbers(
        x.shape, kernel.shape, (f"N{spatial}C", f"{spatial}IO", f"N{spatial}C")
    )
    return jax.lax.conv_general_dilated(
        x,
        kernel,
        window_strides=tuple(strides),
        padding=tuple(padding),
        lhs_dilation=tuple(input_dilation),
        dimension_numbers=numbers,
    )


def _plain_frame_conv(frames: jax.Array, kernel: jax.Array, padding: Padding) -> jax.Array:
    if kernel.shape[:2] == (1, 1) and all(tuple(p) == (0, 0) for p in padding):
        return frames @ kernel[0, 0]
    return conv_general(frames, kernel, (1, 1), padding, (1, 1))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def frame_conv(frames: jax.Array, kernel: jax.Array, padding: Padding) -> jax.Array:
    """Stride-1 2D convolution of ``(n, lat, lon, c)`` frames with a ``(kh, kw, in, out)`` kernel.

    Its kernel gradient is computed as that of a unit-depth 3D convolution,
    which XLA's CPU backend runs several times faster than the 2D one.
    """
    return _plain_frame_conv(frames, kernel, padding)


def _frame_conv_fwd(frames, kernel, padding):
    return _plain_frame_conv(frames, kernel, padding), (frames, kernel)


def _frame_conv_bwd(padding, residuals, grad):
    frames, kernel = residuals
    _, input_vjp = jax.vjp(lambda f: _plain_frame_conv(f, kernel, padding), frames)
    _, kernel_vjp = jax.vjp(
        lambda k: conv_general(frames[:, None], k[None], (1, 1, 1), ((0, 0), *padding), (1, 1, 1)),
        kernel,
    )
    return input_vjp(grad)[0], kernel_vjp(grad[:, None])[0]


frame_conv.defvjp(_frame_conv_fwd, _frame_conv_bwd)


def conv(
    x: jax.Array,
    kernel: jax.Array,
    strides: Sequence[int] | None = None,
    padding: Padding | None = None,
    input_dilation: Sequence[int] | None = None,
) -> jax.Array:
    """N-d convolution (N = 1, 2, 3) with a fast path for 3D kernels.

    A stride-1 3D convolution is computed as a sum over the kernel's time
    offsets of `frame_conv`s, one per offset, each over ``batch * time``
    frames; a (k, 1, 1) kernel thus becomes k matrix products. Other
    convolutions go to `conv_general`.

    Args:
      x: input ``(batch, *spatial, in_channels)``.
      kernel: weights ``(*kernel_size, in_channels, out_channels)``.
      strides: one per spatial axis, default 1.
      padding: ``(low, high)`` zeros per spatial axis, default none.
      input_dilation: one per spatial axis, default 1; a transposed convolution
        with stride s is a convolution of the s-dilated input.

    Returns:
      ``(batch, *out_spatial, out_channels)`` with
      ``out = (dilated_in + low + high - k) // stride + 1`` per axis.
    """
    rank = kernel.ndim - 2
    strides = tuple(strides or (1,) * rank)
    padding = tuple(tuple(p) for p in (padding or ((0, 0),) * rank))
    input_dilation = tuple(input_dilation or (1,) * rank)
    if rank != 3 or strides != (1, 1, 1) or input_dilation != (1, 1, 1):
        return conv_general(x, kernel, strides, padding, input_dilation)

    x = jnp.pad(x, ((0, 0), padding[0], (0, 0), (0, 0), (0, 0)))
    batch, padded_time, lat, lon, channels = x.shape
    time = padded_time - kernel.shape[0] + 1
    y = 0
    for offset in range(kernel.shape[0]):
        frames = x[:, offset : offset + time].reshape(batch * time, lat, lon, channels)
        y = y + frame_conv(frames, kernel[offset], padding[1:])
    return y.reshape(batch, time, *y.shape[1:])


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
        self.norm = nnx.BatchNorm(
            out_features,
            momentum=BATCH_NORM_MOMENTUM,
            epsilon=BATCH_NORM_EPSILON,
            rngs=rngs,
        )
        self.dropout = nnx.Dropout(dropout, rngs=rngs) if dropout > 0 else None

    def __call__(self, x: jax.Array) -> jax.Array:
        y = nnx.leaky_relu(self.norm(self.conv(x)), LEAKY_RELU_SLOPE)
        if self.dropout is not None:
            y = self.dropout(y)
        return y
