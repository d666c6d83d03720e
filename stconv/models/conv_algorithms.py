"""The convolution algorithms behind `stconv.models.layers.Conv`.

Tensors are channels-last: ``(batch, *spatial, channels)``. For STConvS2S the
spatial axes are ``(time, lat, lon)``.

`conv` writes stride-1 convolutions the way XLA's CPU backend runs them
fastest (measured by ``experiments/benchmark.py``, its layers included):

- a 3D kernel is a sum over its time offsets of 2D convolutions over
  ``batch * time`` frames, so a ``(1, k, k)`` kernel is one 2D convolution
  and a ``(k, 1, 1)`` kernel k matrix products;
- an unpadded (1, 1) kernel is one 2D matrix product (`pointwise`);
- on the CPU, a float32 kernel of at least 5x5 (`fourier_applies`) between
  at least 32 channels is a `fourier_conv`: 2D real FFTs and one complex
  matrix product per frequency, about 9x fewer FLOP than the direct
  convolution (`uses_fourier`); between fewer channels, the forward pass is
  direct and only its gradients go through FFTs (`spatial_conv`); a 3D kernel
  of that size with more than one time offset, or between 32+ channels, is a
  `fourier_time_conv`, whose time offsets are summed in frequency, so each
  frame is transformed once;
- a 3D transposed convolution (``input_dilation``) is the stride-1 one of
  the `dilate`d input, and one whose kernel equals its stride (enc-dec3d's
  decoder) a single matrix product (`block_transposed_conv`);
- on the CPU, a strided 2D or 3D convolution is a sum of stride-1 ones over
  its phases (`polyphase_conv`);
- other 2D kernels are a `spatial_conv`, whose hand-written gradients stay
  fast inside ``lax.scan`` bodies and whose kernel gradient
  (`spatial_kernel_grad`) is a few large matrix products.

A forecast takes no gradient, and three forms are faster there than the
train step's (`jax.custom_vjp` primal functions; the train step keeps its
own forward pass and gradients): a 3D convolution with several time offsets
to few channels, such as every model's final one, is a `banded_time_conv`;
a 2D one through FFTs to more channels than it reads (ConvLSTM's and MIM's
gates) is direct (both `time_conv`); a strided convolution from 8 input
channels is XLA's own (`strided_conv`).

These are exact rewrites of the convolution, not approximations (the FFT's
rounding is about 1e-6 relative in float32); the tests check values and
gradients against `conv_general`.
"""

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp

Padding = Sequence[tuple[int, int]]

# Where FFTs measured faster than the direct convolution on the CPU (forward
# and backward: from 5x5 kernels between any channels; a 2D forward pass
# alone: from 32 channels). experiments/results/benchmark-reference-all.md.
FOURIER_MIN_KERNEL_AREA = 25
FOURIER_MIN_CHANNELS = 32
# From how many input channels XLA's own strided 3D convolution beat the
# polyphase one in a forward pass alone at the eval batch (enc-dec3d's
# encoder at batch 64: 81 against 281 ms from 8 channels, 210 against 55 ms
# from 1). experiments/results/benchmark-reference-eval.md.
STRIDED_DIRECT_MIN_CHANNELS = 8
# Up to how many output channels and steps a 3D convolution's forward pass
# measured faster as one 2D convolution with time in the channels than
# through FFTs (1.2-2.8x to 1 channel over 5 or 15 steps, 1.06-1.17x to 8;
# 1.6-2x slower to 32). experiments/results/benchmark-reference-eval.md.
BANDED_MAX_FEATURES = 8
BANDED_MAX_STEPS = 15


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


def pointwise(x: jax.Array, matrix: jax.Array) -> jax.Array:
    """``x @ matrix`` over the last axis, as one 2D matrix product.

    XLA's CPU backend runs the gradient of a matrix product over several
    leading axes as a slow multi-axis contraction; flattened to 2D, it is one
    fast matrix product.
    """
    y = x.reshape(-1, x.shape[-1]) @ matrix
    return y.reshape(*x.shape[:-1], matrix.shape[-1])


def _conv2d(frames: jax.Array, kernel: jax.Array, padding: Padding) -> jax.Array:
    return conv_general(frames, kernel, (1, 1), padding, (1, 1))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def spatial_conv(
    frames: jax.Array, kernel: jax.Array, padding: Padding, fourier_gradients: bool
) -> jax.Array:
    """Stride-1 2D convolution of ``(n, lat, lon, in)`` frames by a ``(kh, kw, in, out)`` kernel.

    Both gradients are written in forms XLA's CPU backend runs fast, also
    inside `jax.lax.scan` bodies, where XLA does not rewrite a convolution's
    own gradients and falls back to a generic loop nest (about 25x slower):
    with ``fourier_gradients``, those of `fourier_conv`; else the input
    gradient is the convolution of the output gradient by the flipped
    kernel, the kernel gradient `spatial_kernel_grad`.
    """
    return _conv2d(frames, kernel, padding)


def spatial_kernel_grad(
    frames: jax.Array, grad: jax.Array, kernel_size: Sequence[int], padding: Padding
) -> jax.Array:
    """The kernel gradient of `spatial_conv` as a few large matrix products,
    contracting over ``(n, lat, lon)``, in whichever of two forms copies less.

    - Per tap (`kernel_grad_by_tap`): ``kh * kw`` shifted copies of the input,
      one product each with the output gradient as it is.
    - Per kernel row (`kernel_grad_by_row`): ``kh`` shifted copies of the input
      and ``kw`` of the output gradient, side by side.

    Per tap copies ``kh * kw * in`` values per pixel, per row ``kh * in + kw * out``.
    Measured (one process, alternating; throwaway scripts, the numbers in
    experiments/results/benchmark-reference-recurrent.md): per tap, PredRNN's
    train step at CHIRPS (inputs of 1-64 channels, outputs of 8-224) took
    0.79-0.86 s against 0.95-1.02 s per row; per row, enc-dec3d's, whose phase
    convolutions have up to 256 channels in and 128 out, took 0.093 s against
    0.132 s per tap at CHIRPS and 0.36 s against 0.40 s at CFSR.

    Args:
      frames: the input ``(n, lat, lon, in)``.
      grad: the output gradient ``(n, out_lat, out_lon, out)``.
      kernel_size: ``(kh, kw)``.
      padding: the convolution's ``(low, high)`` padding of lat and lon.

    Returns:
      ``(kh, kw, in, out)``.
    """
    (kh, kw), channels, features = kernel_size, frames.shape[-1], grad.shape[-1]
    padded = jnp.pad(frames, ((0, 0), *padding, (0, 0)))
    if kh * kw * channels < kh * channels + kw * features:
        return kernel_grad_by_tap(padded, grad, kernel_size)
    return kernel_grad_by_row(padded, grad, kernel_size)


def kernel_grad_by_tap(padded: jax.Array, grad: jax.Array, kernel_size: Sequence[int]) -> jax.Array:
    """`spatial_kernel_grad` of the padded input: tap ``(i, j)`` is the input
    shifted by ``(i, j)``, ``(in, n * lat * lon)``, times the output gradient
    ``(n * lat * lon, out)``."""
    (kh, kw), channels, features = kernel_size, padded.shape[-1], grad.shape[-1]
    out_lat, out_lon = grad.shape[1:3]
    grad = grad.reshape(-1, features)
    taps = [
        padded[:, i : i + out_lat, j : j + out_lon].reshape(-1, channels).T @ grad
        for i in range(kh)
        for j in range(kw)
    ]
    return jnp.stack(taps).reshape(kh, kw, channels, features)


def kernel_grad_by_row(padded: jax.Array, grad: jax.Array, kernel_size: Sequence[int]) -> jax.Array:
    """`spatial_kernel_grad` of the padded input: row ``i`` contracts the input
    rows ``i .. i + out_lat`` with ``kw`` copies of the output gradient, copy
    ``j`` shifted ``j`` columns right: ``(in, n * lat * lon)`` by
    ``(n * lat * lon, kw * out)``."""
    (kh, kw), channels, features = kernel_size, padded.shape[-1], grad.shape[-1]
    out_lat = grad.shape[1]
    shifted = jnp.concatenate(
        [jnp.pad(grad, ((0, 0), (0, 0), (j, kw - 1 - j), (0, 0))) for j in range(kw)], axis=-1
    ).reshape(-1, kw * features)
    rows = [padded[:, i : i + out_lat].reshape(-1, channels).T @ shifted for i in range(kh)]
    return jnp.stack(rows).reshape(kh, channels, kw, features).transpose(0, 2, 1, 3)


def _spatial_conv_fwd(frames, kernel, padding, fourier_gradients):
    return _conv2d(frames, kernel, padding), (frames, kernel)


def _spatial_conv_bwd(padding, fourier_gradients, residuals, grad):
    frames, kernel = residuals
    if fourier_gradients:
        return jax.vjp(functools.partial(fourier_conv, padding=padding), frames, kernel)[1](grad)
    sizes = kernel.shape[:2]
    flipped = jnp.flip(kernel, (0, 1)).swapaxes(2, 3)
    back = tuple((k - 1 - low, k - 1 - high) for k, (low, high) in zip(sizes, padding, strict=True))
    frames_grad = _conv2d(grad, flipped, back)
    kernel_grad = spatial_kernel_grad(frames, grad, sizes, padding)
    return frames_grad.astype(frames.dtype), kernel_grad.astype(kernel.dtype)


spatial_conv.defvjp(_spatial_conv_fwd, _spatial_conv_bwd)


def kernel_dft(
    kernel_size: Sequence[int], height: int, width: int, dtype: jnp.dtype = jnp.float32
) -> jax.Array:
    """The conjugate 2D DFT of a kernel zero-padded to ``height x width``, as a matrix.

    Row ``p * (width // 2 + 1) + q`` (the rfft2 frequencies), column ``i * kw + j``
    holds ``exp(2 pi i (p i / height + q j / width))``: multiplying a spectrum by
    the kernel's conjugate spectrum cross-correlates, as a convolution layer does.
    Built in the graph from iotas, not embedded as a constant (about 100 MB
    on a global 0.25 degree grid); the integer products are reduced modulo
    the period first, so the float phases stay exact to rounding.

    Returns:
      ``(2, height * (width // 2 + 1), kh * kw)``: real and imaginary parts.
    """
    kh, kw = kernel_size
    shape = (height, width // 2 + 1, kh, kw)
    p, q, i, j = (jax.lax.broadcasted_iota(jnp.int32, shape, axis) for axis in range(4))
    turns = (p * i % height) / height + (q * j % width) / width
    phase = 2 * jnp.pi * turns.astype(jnp.float32)
    return jnp.stack([jnp.cos(phase), jnp.sin(phase)]).astype(dtype).reshape(2, -1, kh * kw)


def fourier_conv(frames: jax.Array, kernel: jax.Array, padding: Padding) -> jax.Array:
    """Stride-1 2D convolution of ``(n, lat, lon, in)`` frames by a ``(kh, kw, in, out)``
    kernel, as a product of 2D real FFTs (`fourier_time_conv` with one time offset)."""
    return fourier_time_conv(frames[:, None], kernel[None], padding)[:, 0]


def fourier_time_conv(x: jax.Array, kernel: jax.Array, padding: Padding) -> jax.Array:
    """Stride-1 3D convolution of ``(batch, time, lat, lon, in)`` by a
    ``(kt, kh, kw, in, out)`` kernel without time padding, through 2D real FFTs.

    Every padded frame is transformed once per channel. At each of the
    ``P * (Q // 2 + 1)`` frequencies (P x Q the padded frame) the output is one
    complex matrix product: the spectra of the ``kt`` frames an output step
    reads, side by side, ``(batch * out_time, kt * in)``, by the kernel's
    conjugate spectrum ``(kt * in, out)``, itself one real matrix product with
    `kernel_dft`. The inverse FFT, cropped, is the cross-correlation (no
    wrap-around: the transform is as large as the padded frame). Gradients are
    JAX's own: FFTs and products again.

    Args:
      x: the input ``(batch, time, lat, lon, in)``.
      kernel: ``(kt, kh, kw, in, out)``.
      padding: the ``(low, high)`` zeros of lat and lon.

    Returns:
      ``(batch, time - kt + 1, out_lat, out_lon, out)``.
    """
    batch, time, lat, lon, channels = x.shape
    kt, kh, kw, _, features = kernel.shape
    (top, bottom), (left, right) = padding
    height, width = lat + top + bottom, lon + left + right
    frequencies, out_time = height * (width // 2 + 1), time - kt + 1
    dft = kernel_dft((kh, kw), height, width, kernel.dtype)
    taps = kernel.transpose(1, 2, 0, 3, 4).reshape(kh * kw, -1)
    kernel_spectrum = (dft.reshape(-1, kh * kw) @ taps).reshape(
        2, frequencies, kt * channels, features
    )
    kernel_spectrum = jax.lax.complex(kernel_spectrum[0], kernel_spectrum[1])
    padded = jnp.pad(
        x.transpose(0, 1, 4, 2, 3), ((0, 0), (0, 0), (0, 0), (top, bottom), (left, right))
    )
    spectrum = jnp.fft.rfft2(padded).reshape(batch, time, channels, frequencies)
    spectrum = spectrum.transpose(3, 0, 1, 2)
    if kt > 1:
        spectrum = jnp.concatenate(
            [spectrum[:, :, offset : offset + out_time] for offset in range(kt)], axis=-1
        )
    spectrum = spectrum.reshape(frequencies, batch * out_time, kt * channels)
    product = jnp.einsum("fnc,fco->fno", spectrum, kernel_spectrum)
    product = product.transpose(1, 2, 0).reshape(batch * out_time, features, height, -1)
    y = jnp.fft.irfft2(product, s=(height, width))[:, :, : height - kh + 1, : width - kw + 1]
    return y.transpose(0, 2, 3, 1).reshape(batch, out_time, *y.shape[2:], features)


def banded_time_conv(x: jax.Array, kernel: jax.Array, padding: Padding) -> jax.Array:
    """Stride-1 3D convolution of ``(batch, time, lat, lon, in)`` by a
    ``(kt, kh, kw, in, out)`` kernel without time padding, as one 2D
    convolution of ``batch`` frames whose channels are all ``time * in``
    values of a cell, by a kernel banded in time: output step t, channel o
    reads input steps ``t .. t + kt - 1`` through the kernel's time offsets and
    zeros elsewhere.

    It does ``time / kt`` times the direct convolution's FLOP, but XLA's CPU
    convolution runs ``time * in`` channels in and ``out_time * out`` out far
    faster than a convolution to one channel.
    """
    batch, time, lat, lon, channels = x.shape
    kt, kh, kw, _, features = kernel.shape
    out_time = time - kt + 1
    taps = kernel.transpose(1, 2, 0, 3, 4)  # (kh, kw, kt, in, out)
    columns = [
        jnp.pad(taps, ((0, 0), (0, 0), (step, out_time - 1 - step), (0, 0), (0, 0)))
        for step in range(out_time)
    ]  # each (kh, kw, time, in, out)
    banded = jnp.stack(columns, axis=-2).reshape(kh, kw, time * channels, out_time * features)
    frames = x.transpose(0, 2, 3, 1, 4).reshape(batch, lat, lon, time * channels)
    y = _conv2d(frames, banded, padding)
    y = y.reshape(batch, *y.shape[1:3], out_time, features)
    return y.transpose(0, 3, 1, 2, 4)


def uses_banded(kernel: jax.Array, out_time: int) -> bool:
    """Whether a `time_conv`'s forward pass is a `banded_time_conv`: several
    time offsets, to at most `BANDED_MAX_FEATURES` channels over at most
    `BANDED_MAX_STEPS` steps, where it measured faster than the FFTs."""
    return (
        kernel.shape[0] > 1
        and kernel.shape[-1] <= BANDED_MAX_FEATURES
        and out_time <= BANDED_MAX_STEPS
    )


def forecast_is_direct(x: jax.Array, kernel: jax.Array) -> bool:
    """Whether a `time_conv`'s forward pass is direct: a 2D convolution (one
    step, one time offset) to more channels than it reads, such as ConvLSTM's
    and MIM's gates, where XLA's CPU convolution measured faster than the
    FFTs. STConvS2S's (1, k, k) ones over 5 steps measured slower direct."""
    kt, _, _, channels, features = kernel.shape
    return x.shape[1] == kt == 1 and features > channels


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def time_conv(x: jax.Array, kernel: jax.Array, padding: Padding) -> jax.Array:
    """`fourier_time_conv` in the train step; a forecast's forward pass (no
    gradient) is a `banded_time_conv` where `uses_banded` (the final
    convolutions to the forecast's channels), direct where
    `forecast_is_direct`, else the FFTs too."""
    if uses_banded(kernel, x.shape[1] - kernel.shape[0] + 1):
        return banded_time_conv(x, kernel, padding)
    if forecast_is_direct(x, kernel):
        return _conv2d(x[:, 0], kernel[0], padding)[:, None]
    return fourier_time_conv(x, kernel, padding)


def _time_conv_fwd(x, kernel, padding):
    return jax.vjp(functools.partial(fourier_time_conv, padding=padding), x, kernel)


def _train_step_gradients(*nondiff_args_pullback_and_grad):
    """The bwd rule of `time_conv` and `strided_conv`: the pullback their fwd
    rule took of the train step's form, applied to the output gradient."""
    *_, pullback, grad = nondiff_args_pullback_and_grad
    return pullback(grad)


time_conv.defvjp(_time_conv_fwd, _train_step_gradients)


def fourier_applies(frames: jax.Array, kernel: jax.Array) -> bool:
    """Whether FFTs beat the direct convolution by a ``(kh, kw, in, out)`` kernel,
    forward and backward: on the CPU, in float32, for kernels of at least
    `FOURIER_MIN_KERNEL_AREA` taps. GPUs and TPUs convolve directly."""
    kh, kw = kernel.shape[:2]
    return (
        jax.default_backend() == "cpu"
        and frames.dtype == kernel.dtype == jnp.float32
        and kh * kw >= FOURIER_MIN_KERNEL_AREA
    )


def uses_fourier(frames: jax.Array, kernel: jax.Array) -> bool:
    """Whether a 2D convolution's forward pass runs through FFTs too: where
    `fourier_applies`, between at least `FOURIER_MIN_CHANNELS` channels."""
    return fourier_applies(frames, kernel) and min(kernel.shape[2:]) >= FOURIER_MIN_CHANNELS


def frame_conv(frames: jax.Array, kernel: jax.Array, padding: Padding) -> jax.Array:
    """Stride-1 2D convolution of ``(n, lat, lon, in)`` frames by a ``(kh, kw, in, out)``
    kernel: a `pointwise` product for an unpadded (1, 1) kernel, a `time_conv`
    of one time offset (a `fourier_conv` in the train step) where
    `uses_fourier`, else `spatial_conv` (with FFT gradients where
    `fourier_applies`)."""
    padding = tuple(tuple(p) for p in padding)
    if kernel.shape[:2] == (1, 1) and padding == ((0, 0), (0, 0)):
        return pointwise(frames, kernel[0, 0])
    if uses_fourier(frames, kernel):
        return time_conv(frames[:, None], kernel[None], padding)[:, 0]
    return spatial_conv(frames, kernel, padding, fourier_applies(frames, kernel))


def dilate(x: jax.Array, dilation: Sequence[int], padding: Padding) -> jax.Array:
    """``x`` with ``dilation - 1`` zeros between its entries along each spatial
    axis, then padded (or cropped, where negative) by ``padding``: what a
    convolution with ``input_dilation`` convolves."""
    spatial = [(low, high, d - 1) for d, (low, high) in zip(dilation, padding, strict=True)]
    return jax.lax.pad(x, jnp.zeros((), x.dtype), [(0, 0, 0), *spatial, (0, 0, 0)])


def polyphase_conv(
    x: jax.Array, kernel: jax.Array, strides: Sequence[int], padding: Padding
) -> jax.Array:
    """A strided convolution as one stride-1 `conv` of its phases stacked as
    channels: with stride s along an axis, output i reads input
    ``i * s + p + q * s`` through tap ``p + q * s``, so input phase p (every
    s-th value from p, `space_to_depth`) meets the kernel's taps ``p + q * s``
    (`kernel_to_depth`). XLA's CPU backend runs strided convolutions and their
    gradients slowly; the stride-1 one takes `conv`'s fast paths.
    """
    window = kernel.shape[:-2]
    x = jnp.pad(x, ((0, 0), *padding, (0, 0)))
    out = [(n - k) // s + 1 for n, k, s in zip(x.shape[1:-1], window, strides, strict=True)]
    y = conv(space_to_depth(x, strides), kernel_to_depth(kernel, strides))
    return y[(slice(None), *(slice(0, n) for n in out))]


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def strided_conv(
    x: jax.Array, kernel: jax.Array, strides: Sequence[int], padding: Padding
) -> jax.Array:
    """A strided convolution whose gradients are always `polyphase_conv`'s and
    whose forward pass alone (a forecast: no gradient taken) is XLA's own
    strided convolution from `STRIDED_DIRECT_MIN_CHANNELS` input channels.

    The train step's forward pass stays polyphase, which is as fast or faster
    at the training batch; without gradients, at the eval batch of 64, the
    polyphase form slows down more than the batch grows and XLA's wins 2.5-3.5x
    from 8 channels in (`STRIDED_DIRECT_MIN_CHANNELS`).
    """
    if kernel.shape[-2] >= STRIDED_DIRECT_MIN_CHANNELS:
        return conv_general(x, kernel, strides, padding, (1,) * len(strides))
    return polyphase_conv(x, kernel, strides, padding)


def _strided_conv_fwd(x, kernel, strides, padding):
    return jax.vjp(functools.partial(polyphase_conv, strides=strides, padding=padding), x, kernel)


strided_conv.defvjp(_strided_conv_fwd, _train_step_gradients)


def interleave(rank: int) -> list[int]:
    """The axis order ``(n1, n2, ..., s1, s2, ...)`` of ``(n1, s1, n2, s2, ...)``."""
    return [*range(0, 2 * rank, 2), *range(1, 2 * rank, 2)]


def pairs(sizes: Sequence[int], strides: Sequence[int]) -> list[int]:
    """``(n1, s1, n2, s2, ...)``."""
    return [v for pair in zip(sizes, strides, strict=True) for v in pair]


def space_to_depth(x: jax.Array, strides: Sequence[int]) -> jax.Array:
    """``(batch, *n, c)`` to ``(batch, *ceil(n / s), prod(s) * c)``: element
    ``j * s + p`` of each axis goes to position j, channel block p (zeros
    complete the last block)."""
    ends = [(0, -n % s) for n, s in zip(x.shape[1:-1], strides, strict=True)]
    x = jnp.pad(x, ((0, 0), *ends, (0, 0)))
    blocks = [n // s for n, s in zip(x.shape[1:-1], strides, strict=True)]
    x = x.reshape(x.shape[0], *pairs(blocks, strides), x.shape[-1])
    rank = len(strides)
    x = x.transpose(0, *(1 + axis for axis in interleave(rank)), 1 + 2 * rank)
    return x.reshape(x.shape[0], *blocks, -1)


def kernel_to_depth(kernel: jax.Array, strides: Sequence[int]) -> jax.Array:
    """``(*k, in, out)`` to ``(*ceil(k / s), prod(s) * in, out)``: tap ``q * s + p``
    of each axis goes to tap q, input block p, as `space_to_depth` places the
    inputs it meets (zeros complete the taps)."""
    *window, _, out_channels = kernel.shape
    taps = [-(-k // s) for k, s in zip(window, strides, strict=True)]
    ends = [(0, t * s - k) for t, s, k in zip(taps, strides, window, strict=True)]
    kernel = jnp.pad(kernel, (*ends, (0, 0), (0, 0)))
    kernel = kernel.reshape(*pairs(taps, strides), -1, out_channels)
    rank = len(strides)
    kernel = kernel.transpose(*interleave(rank), 2 * rank, 2 * rank + 1)
    return kernel.reshape(*taps, -1, out_channels)


def uses_polyphase(rank: int) -> bool:
    """Whether `conv` writes a strided 2D or 3D convolution as a `polyphase_conv`:
    on the CPU (10-35x faster forward and backward at enc-dec3d's shapes);
    GPUs and TPUs convolve directly."""
    return rank > 1 and jax.default_backend() == "cpu"


def is_block_transposed(kernel_shape: Sequence[int], padding: Padding, dilation) -> bool:
    """Whether a convolution of the ``dilation``-dilated input is a transposed
    convolution whose kernel equals its stride (padding ``d - 1`` each side):
    every input cell then fills its own block of the output."""
    return tuple(kernel_shape) == tuple(dilation) and all(
        tuple(p) == (d - 1, d - 1) for p, d in zip(padding, dilation, strict=True)
    )


def block_transposed_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """A transposed convolution whose kernel equals its stride, e.g. PyTorch's
    ``ConvTranspose3d(kernel=(1, s, s), stride=(1, s, s))``: the blocks do not
    overlap, so it is one `pointwise` product of every input cell with the
    (flipped) kernel, whose ``prod(kernel)`` outputs are laid out as the
    cell's block. Equal to `conv` of the dilated input (`is_block_transposed`).
    """
    *spatial, channels = x.shape[1:]
    *window, _, out_channels = kernel.shape
    rank = len(window)
    flipped = jnp.flip(kernel, axis=tuple(range(rank)))
    matrix = jnp.moveaxis(flipped, rank, 0).reshape(channels, -1)  # (in, *window * out)
    y = pointwise(x, matrix).reshape(x.shape[0], *spatial, *window, out_channels)
    # (batch, s1, ..., w1, ..., out) -> (batch, s1, w1, s2, w2, ..., out)
    order = [0, *(i for axis in range(rank) for i in (1 + axis, 1 + rank + axis)), 1 + 2 * rank]
    blocks = [size * width for size, width in zip(spatial, window, strict=True)]
    return y.transpose(order).reshape(x.shape[0], *blocks, out_channels)


def conv(
    x: jax.Array,
    kernel: jax.Array,
    strides: Sequence[int] | None = None,
    padding: Padding | None = None,
    input_dilation: Sequence[int] | None = None,
) -> jax.Array:
    """N-d convolution (N = 1, 2, 3) with fast paths for stride-1 2D and 3D kernels.

    A stride-1 2D convolution is a `frame_conv`. A stride-1 3D convolution is
    a `time_conv` (FFTs in training) where `uses_fourier` its spatial kernel, or where
    `fourier_applies` and it has more than one time offset; else a sum
    over the kernel's time offsets of `frame_conv`s, one per offset, each over
    ``batch * time`` frames; a (k, 1, 1) kernel thus becomes k matrix
    products. A 3D convolution with ``input_dilation`` (a transposed
    convolution, e.g. STConvS2S's temporal generator) is the stride-1 one of
    the `dilate`d input: its zeros cost matrix-product FLOP, which XLA's CPU
    convolution takes longer over; where its kernel equals the dilation it is
    a `block_transposed_conv`. On the CPU, a strided 2D or 3D convolution is
    a `strided_conv` (a `polyphase_conv` in training). Other convolutions go
    to `conv_general`.

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
    transposed = set(strides) == {1} and set(input_dilation) != {1}
    if transposed and is_block_transposed(kernel.shape[:-2], padding, input_dilation):
        return block_transposed_conv(x, kernel)
    if set(strides) != {1} and set(input_dilation) == {1} and uses_polyphase(rank):
        return strided_conv(x, kernel, strides, padding)
    if rank == 1 or set(strides) != {1} or (rank == 2 and set(input_dilation) != {1}):
        return conv_general(x, kernel, strides, padding, input_dilation)
    if rank == 2:
        return frame_conv(x, kernel, padding)
    if set(input_dilation) != {1}:  # a transposed 3D convolution: dilate, then convolve
        x = dilate(x, input_dilation, padding)
        padding = ((0, 0),) * rank

    x = jnp.pad(x, ((0, 0), padding[0], (0, 0), (0, 0), (0, 0)))
    spatial_kernel = kernel[0]
    if uses_fourier(x, spatial_kernel) or (
        kernel.shape[0] > 1 and fourier_applies(x, spatial_kernel)
    ):
        return time_conv(x, kernel, padding[1:])
    batch, padded_time, lat, lon, channels = x.shape
    time = padded_time - kernel.shape[0] + 1
    y = 0
    for offset in range(kernel.shape[0]):
        frames = x[:, offset : offset + time].reshape(batch * time, lat, lon, channels)
        y = y + frame_conv(frames, kernel[offset], padding[1:])
    return y.reshape(batch, time, *y.shape[1:])
