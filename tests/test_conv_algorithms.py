"""The convolution algorithms: by hand, and equal to XLA's convolution (values and gradients)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stconv.models import conv_algorithms
from stconv.models.conv_algorithms import (
    banded_time_conv,
    conv,
    conv_general,
    fourier_applies,
    fourier_conv,
    fourier_time_conv,
    kernel_dft,
    uses_fourier,
)


def channels(x):
    """Adds batch and channel axes of size one: (*spatial) -> (1, *spatial, 1)."""
    return jnp.asarray(x, jnp.float32)[None, ..., None]


def kernel(k):
    """(*k) -> (*k, 1, 1)."""
    return jnp.asarray(k, jnp.float32)[..., None, None]


def assert_same_values_and_gradients(fast, plain, x, w, key) -> None:
    """``fast(x, w)`` equals ``plain(x, w)``, and so do both gradients for a
    random cotangent, each side jitted (one compilation, not one per operation)."""
    cotangent = jax.random.normal(key, jax.eval_shape(plain, x, w).shape)
    expected, wanted = values_and_gradients(plain)(x, w, cotangent)
    values, grads = values_and_gradients(fast)(x, w, cotangent)
    np.testing.assert_allclose(values, expected, rtol=1e-5, atol=1e-5)
    for got, want in zip(grads, wanted, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def values_and_gradients(function):
    """``function(x, w)`` and its gradients for ``cotangent``, jitted."""

    def run(x, w, cotangent):
        values, pullback = jax.vjp(function, x, w)
        return values, pullback(cotangent)

    return jax.jit(run)


def output_size(size, k, pad, stride):
    return (size - k + 2 * pad) // stride + 1


@pytest.mark.parametrize(
    "stride, pad, expected",
    [(1, 0, [-2, -2, -2]), (1, 1, [-2, -2, -2, -2, 4]), (2, 1, [-2, -2, 4]), (2, 0, [-2, -2])],
)
def test_conv_1d_by_hand(stride, pad, expected):
    y = conv(channels([1, 2, 3, 4, 5]), kernel([1, 0, -1]), (stride,), ((pad, pad),))
    assert y.shape == (1, output_size(5, 3, pad, stride), 1)
    np.testing.assert_allclose(y[0, :, 0], expected)


def test_conv_2d_by_hand():
    x = channels(np.arange(16).reshape(4, 4))
    ones2 = kernel(np.ones((2, 2)))
    # Each output sums a 2x2 block: x[i,j] + x[i,j+1] + x[i+1,j] + x[i+1,j+1] = 16i + 4j + 10.
    expected = [[16 * i + 4 * j + 10 for j in range(3)] for i in range(3)]
    np.testing.assert_allclose(conv(x, ones2)[0, ..., 0], expected)
    np.testing.assert_allclose(conv(x, ones2, (2, 2))[0, ..., 0], [[10, 18], [42, 50]])
    # 3x3 ones, zero padding 1, stride 2: windows centred on (0,0), (0,2), (2,0), (2,2).
    y = conv(x, kernel(np.ones((3, 3))), (2, 2), ((1, 1), (1, 1)))
    assert y.shape == (1, output_size(4, 3, 1, 2), output_size(4, 3, 1, 2), 1)
    np.testing.assert_allclose(y[0, ..., 0], [[10, 24], [51, 90]])


def test_conv_3d_by_hand():
    x = channels(np.arange(8).reshape(2, 2, 2))
    ones = kernel(np.ones((2, 2, 2)))
    assert conv(x, ones).shape == (1, 1, 1, 1, 1)
    assert float(conv(x, ones)[0, 0, 0, 0, 0]) == 28.0
    # Padding 1 and stride 2: each window covers exactly one input cell.
    y = conv(x, ones, (2, 2, 2), ((1, 1),) * 3)
    np.testing.assert_allclose(y[0, ..., 0], np.arange(8).reshape(2, 2, 2))


def test_conv_mixes_channels():
    x = jnp.asarray([[[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]]])  # (1, 3, 2)
    w = jnp.asarray([[[1.0], [0.5]], [[-1.0], [0.0]]])  # (2, 2, 1)
    y = conv(x, w)
    # y[t] = x[t,0] + 0.5 x[t,1] - x[t+1,0]
    np.testing.assert_allclose(y[0, :, 0], [1 + 5 - 2, 2 + 10 - 3])


def test_input_dilation_is_pytorch_transposed_conv():
    # PyTorch's ConvTranspose1d(kernel 4, stride 2, padding 1) of [1, 2] with a
    # ones kernel: full output [1, 1, 3, 3, 2, 2], cropped by 1 at each end.
    y = conv(channels([1, 2]), kernel(np.ones(4)), padding=((2, 2),), input_dilation=(2,))
    np.testing.assert_allclose(y[0, :, 0], [1, 3, 3, 2])


def stride_one_only(patch) -> None:
    """Makes XLA's convolution fail unless stride 1 and undilated: the fast paths ran."""
    real = conv_algorithms.conv_general

    def checked(x, kernel, strides, padding, input_dilation):
        assert set(strides) == set(input_dilation) == {1}, "XLA's convolution was used"
        return real(x, kernel, strides, padding, input_dilation)

    patch.setattr(conv_algorithms, "conv_general", checked)


def test_block_transposed_conv_by_hand(monkeypatch):
    # Kernel equal to the stride: every input value fills its own block with
    # the (flipped) kernel, PyTorch's ConvTranspose1d(kernel 2, stride 2).
    stride_one_only(monkeypatch)
    y = conv(channels([[1, 2]]), kernel([[1, 10]]), padding=((0, 0), (1, 1)), input_dilation=(1, 2))
    np.testing.assert_allclose(y[0, 0, :, 0], [10, 1, 20, 2])


def test_strided_conv_by_hand():
    # Stride 2, kernel [1, 10, 100], padding 1 over [1, 2, 3, 4, 5] (2D, one row).
    x = channels([[1, 2, 3, 4, 5]])
    y = conv(x, kernel([[1, 10, 100]]), strides=(1, 2), padding=((0, 0), (1, 1)))
    np.testing.assert_allclose(y[0, 0, :, 0], [210, 432, 54])  # [0, 1, 2], [2, 3, 4], [4, 5, 0]


@pytest.mark.parametrize(
    "kernel_size, strides, padding",
    [
        ((5, 5, 5), (1, 2, 2), ((2, 2), (2, 2), (2, 2))),  # enc-dec3d's encoder
        ((3, 3, 3), (2, 3, 2), ((1, 1), (0, 2), (1, 0))),
        ((1, 2, 4), (1, 3, 3), ((0, 0), (0, 0), (1, 2))),  # phases without taps
        ((3, 3), (2, 2), ((1, 1), (1, 1))),
    ],
)
def test_strided_conv_equals_xla_convolution(kernel_size, strides, padding, monkeypatch):
    kx, kw, kg = jax.random.split(jax.random.key(2), 3)
    x = jax.random.normal(kx, (2, *(6, 9, 8)[-len(kernel_size) :], 3))
    w = jax.random.normal(kw, (*kernel_size, 3, 4))

    def plain(x, w):
        return conv_general(x, w, strides, padding, (1,) * len(kernel_size))

    def fast(x, w):
        with monkeypatch.context() as patched:  # the phases, not XLA's strided convolution
            stride_one_only(patched)
            return conv(x, w, strides=strides, padding=padding)

    assert_same_values_and_gradients(fast, plain, x, w, kg)


@pytest.mark.parametrize(
    "kernel_size, padding, dilation",
    [
        ((4, 1, 1), ((2, 2), (0, 0), (0, 0)), (2, 1, 1)),  # the temporal generator's
        ((3, 1, 1), ((2, 2), (0, 0), (0, 0)), (3, 1, 1)),
        ((4, 3, 3), ((1, 2), (1, 1), (0, 1)), (2, 1, 1)),
        ((2, 3, 1), ((1, 1), (-1, 2), (0, 0)), (2, 2, 1)),  # negative padding crops
        ((1, 2, 2), ((0, 0), (1, 1), (1, 1)), (1, 2, 2)),  # enc-dec3d's decoder: blocks
        ((2, 3, 2), ((1, 1), (2, 2), (1, 1)), (2, 3, 2)),
    ],
)
def test_transposed_3d_fast_path_equals_xla_convolution(kernel_size, padding, dilation):
    kx, kw, kg = jax.random.split(jax.random.key(1), 3)
    x = jax.random.normal(kx, (2, 4, 5, 6, 3))
    w = jax.random.normal(kw, (*kernel_size, 3, 4))

    def plain(x, w):
        return conv_general(x, w, (1, 1, 1), padding, dilation)

    def fast(x, w):
        return conv(x, w, padding=padding, input_dilation=dilation)

    assert_same_values_and_gradients(fast, plain, x, w, kg)


@pytest.mark.parametrize(
    "kernel_size, padding",
    [
        ((1, 3, 3), ((0, 0), (1, 1), (1, 1))),
        ((1, 5, 5), ((0, 0), (2, 2), (2, 2))),
        ((3, 1, 1), ((2, 0), (0, 0), (0, 0))),
        ((3, 1, 1), ((0, 0), (0, 0), (0, 0))),
        ((2, 1, 1), ((0, 0), (0, 0), (0, 0))),
        ((3, 3, 3), ((1, 1), (1, 1), (1, 1))),
        ((2, 2, 2), ((1, 1), (1, 1), (1, 1))),
        ((1, 3, 5), ((0, 0), (0, 2), (3, 1))),
        ((2, 3, 3), ((1, 0), (1, 1), (0, 2))),
    ],
)
def test_fast_path_equals_3d_convolution(kernel_size, padding):
    kx, kw, kg = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(kx, (2, 4, 7, 6, 3))
    w = jax.random.normal(kw, (*kernel_size, 3, 5))

    def plain(x, w):
        return conv_general(x, w, (1, 1, 1), padding, (1, 1, 1))

    def fast(x, w):
        return conv(x, w, padding=padding)

    assert_same_values_and_gradients(fast, plain, x, w, kg)


@pytest.mark.parametrize(
    "kernel_size, padding",
    [
        ((1, 1), ((0, 0), (0, 0))),
        ((3, 3), ((1, 1), (1, 1))),
        ((5, 3), ((2, 2), (0, 1))),
        ((2, 4), ((0, 0), (3, 0))),
        ((5, 5), ((2, 2), (2, 2))),  # FFT gradients
        ((5, 6), ((1, 3), (0, 2))),
    ],
)
def test_2d_fast_path_equals_xla_convolution_also_inside_scan(kernel_size, padding):
    """`spatial_conv`'s hand-written (or FFT) gradients equal XLA's, in and outside a scan body."""
    kx, kw = jax.random.split(jax.random.key(1))
    frames = jax.random.normal(kx, (3, 2, 7, 6, 3))  # scanned over the first axis
    w = jax.random.normal(kw, (*kernel_size, 3, 4))

    def loss(conv_fn, w):
        def body(total, x):
            return total + jnp.sum(jnp.sin(conv_fn(x, w))), None

        return jax.lax.scan(body, 0.0, frames)[0]

    def plain(x, w):
        return conv_general(x, w, (1, 1), padding, (1, 1))

    def fast(x, w):
        return conv(x, w, padding=padding)

    np.testing.assert_allclose(fast(frames[0], w), plain(frames[0], w), rtol=1e-5, atol=1e-5)
    got = jax.jit(jax.grad(lambda w: loss(fast, w)))(w)
    want = jax.jit(jax.grad(lambda w: loss(plain, w)))(w)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    got_x = jax.jit(jax.grad(lambda x: jnp.sum(jnp.sin(fast(x, w)))))(frames[0])
    want_x = jax.jit(jax.grad(lambda x: jnp.sum(jnp.sin(plain(x, w)))))(frames[0])
    np.testing.assert_allclose(got_x, want_x, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("form", ["by_tap", "by_row"])
@pytest.mark.parametrize(
    "kernel_size, padding, channels, features",
    [
        ((3, 3), ((1, 1), (1, 1)), 1, 7),  # per tap in spatial_kernel_grad
        ((3, 3), ((1, 1), (1, 1)), 6, 2),  # per row
        ((5, 3), ((2, 2), (0, 1)), 2, 5),
        ((2, 4), ((0, 0), (3, 0)), 3, 3),
    ],
)
def test_both_kernel_gradient_forms_equal_xla(kernel_size, padding, channels, features, form):
    """`spatial_kernel_grad` picks one of two forms by shape; each is XLA's kernel gradient."""
    kx, kw, kg = jax.random.split(jax.random.key(2), 3)
    frames = jax.random.normal(kx, (2, 7, 6, channels))
    w = jax.random.normal(kw, (*kernel_size, channels, features))
    y, vjp = jax.vjp(lambda w: conv_general(frames, w, (1, 1), padding, (1, 1)), w)
    grad = jax.random.normal(kg, y.shape)
    padded = jnp.pad(frames, ((0, 0), *padding, (0, 0)))
    form_grad = getattr(conv_algorithms, f"kernel_grad_{form}")(padded, grad, kernel_size)
    np.testing.assert_allclose(form_grad, vjp(grad)[0], rtol=1e-5, atol=1e-5)
    chosen = conv_algorithms.spatial_kernel_grad(frames, grad, kernel_size, padding)
    np.testing.assert_allclose(chosen, vjp(grad)[0], rtol=1e-5, atol=1e-5)


def test_kernel_dft_is_the_conjugate_spectrum_of_the_padded_kernel():
    k = np.arange(6.0).reshape(2, 3) ** 2
    real, imag = np.asarray(kernel_dft((2, 3), 5, 6), np.float64) @ k.reshape(-1)
    padded = np.zeros((5, 6))
    padded[:2, :3] = k
    expected = np.conj(np.fft.rfft2(padded)).reshape(-1)
    np.testing.assert_allclose(real + 1j * imag, expected, rtol=1e-5, atol=1e-5)  # float32


@pytest.mark.parametrize(
    "kernel_size, padding, grid",
    [
        ((5, 5), ((2, 2), (2, 2)), (8, 8)),
        ((5, 3), ((0, 2), (3, 1)), (9, 11)),
    ],
)
def test_fourier_conv_equals_xla_convolution_also_inside_scan(kernel_size, padding, grid):
    kx, kw, kg = jax.random.split(jax.random.key(2), 3)
    frames = jax.random.normal(kx, (2, 3, *grid, 4))  # scanned over the first axis
    w = jax.random.normal(kw, (*kernel_size, 4, 5))

    @jax.jit
    def values_and_grads(frames, w):
        results = []
        for conv_fn in (
            fourier_conv,
            lambda x, w, padding: conv_general(x, w, (1, 1), padding, (1, 1)),
        ):
            y, vjp = jax.vjp(functools.partial(conv_fn, padding=padding), frames[0], w)
            cotangent = jax.random.normal(kg, y.shape)

            def body(total, x, conv_fn=conv_fn):
                return total + jnp.sum(jnp.sin(conv_fn(x, w, padding))), None

            scan_grad = jax.grad(lambda w: jax.lax.scan(body, 0.0, frames)[0])(w)
            results.append((y, *vjp(cotangent), scan_grad))
        return results

    fourier, plain = values_and_grads(frames, w)
    np.testing.assert_allclose(fourier[0], plain[0], rtol=1e-5, atol=1e-5)
    for got, want in zip(fourier[1:], plain[1:], strict=True):  # frames, kernel, in a scan
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kernel_size", [(3, 5, 3), (2, 1, 4)])
def test_fourier_time_conv_equals_xla_3d_convolution(kernel_size):
    kx, kw, kg = jax.random.split(jax.random.key(3), 3)
    x = jax.random.normal(kx, (2, 4, 7, 6, 3))
    w = jax.random.normal(kw, (*kernel_size, 3, 4))
    padding = ((kernel_size[1] // 2, kernel_size[1] // 2), (0, 2))

    @jax.jit
    def values_and_grads(x, w):
        results = []
        for fn in (
            functools.partial(fourier_time_conv, padding=padding),
            lambda x, w: conv_general(x, w, (1, 1, 1), ((0, 0), *padding), (1, 1, 1)),
        ):
            y, vjp = jax.vjp(fn, x, w)
            results.append((y, *vjp(jax.random.normal(kg, y.shape))))
        return results

    fourier, plain = values_and_grads(x, w)
    np.testing.assert_allclose(fourier[0], plain[0], rtol=1e-5, atol=1e-5)
    for got, want in zip(fourier[1:], plain[1:], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "kernel_size, features, dtype, forward, gradients",
    [
        ((5, 5), 32, jnp.float32, True, True),
        ((5, 7), 64, jnp.float32, True, True),
        ((3, 3), 32, jnp.float32, False, False),  # too few taps
        ((5, 5), 16, jnp.float32, False, True),  # too few channels for the forward pass
        ((5, 5), 32, jnp.bfloat16, False, False),  # the FFT is float32 only
    ],
)
def test_conv_uses_fourier_for_large_kernels(kernel_size, features, dtype, forward, gradients):
    x = jnp.ones((2, 8, 8, features), dtype)
    w = jnp.ones((*kernel_size, features, 32), dtype)
    assert uses_fourier(x, w) is forward
    assert fourier_applies(x, w) is gradients
    padding = tuple((k // 2, k // 2) for k in kernel_size)

    def loss(x, w):
        return jnp.sum(conv(x, w, padding=padding))

    assert ("fft" in str(jax.make_jaxpr(loss)(x, w))) is forward
    assert ("fft" in str(jax.make_jaxpr(jax.grad(loss, (0, 1)))(x, w))) is gradients
    x3, w3 = x[None], jnp.stack([w, w])  # a (2, kh, kw) kernel over 2 time steps
    jaxpr = str(jax.make_jaxpr(lambda x, w: conv(x, w, padding=((0, 0), *padding)))(x3, w3))
    # one transform of all frames and one inverse: time offsets are summed in frequency
    assert jaxpr.count("fft_lengths") == (2 if gradients else 0)


@pytest.mark.parametrize(
    "kernel_size, padding, features",
    [
        ((5, 5, 5), ((2, 2), (2, 2)), 1),  # a final convolution to the forecast
        ((3, 3, 1), ((1, 1), (0, 0)), 2),
        ((2, 1, 4), ((0, 0), (1, 2)), 8),
        ((6, 3, 3), ((1, 1), (1, 1)), 1),  # one output step
    ],
)
def test_banded_time_conv_equals_xla_3d_convolution(kernel_size, padding, features):
    kx, kw = jax.random.split(jax.random.key(4))
    x = jax.random.normal(kx, (2, 6, 7, 6, 3))
    w = jax.random.normal(kw, (*kernel_size, 3, features))
    expected = conv_general(x, w, (1, 1, 1), ((0, 0), *padding), (1, 1, 1))
    got = jax.jit(functools.partial(banded_time_conv, padding=padding))(x, w)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "x_shape, kernel_shape, strides, eval_form, train_form",
    [
        ((2, 5, 9, 8, 8), (5, 5, 5, 8, 1), (1, 1, 1), "banded", "fft"),  # a final convolution
        ((2, 5, 9, 8, 8), (5, 5, 5, 8, 9), (1, 1, 1), "fft", "fft"),  # too many channels out
        ((2, 5, 9, 8, 8), (5, 5, 5, 8, 8), (1, 2, 2), "strided", "polyphase"),  # enc-dec3d's
        ((2, 9, 8, 32), (5, 5, 32, 40), (1, 1), "direct", "fft"),  # a ConvLSTM gate
        ((2, 9, 8, 40), (5, 5, 40, 32), (1, 1), "fft", "fft"),  # no more channels out
        ((2, 2, 9, 8, 32), (1, 5, 5, 32, 40), (1, 1, 1), "fft", "fft"),  # over several steps
    ],
)
def test_forecasts_without_gradients_take_their_own_forms(
    x_shape, kernel_shape, strides, eval_form, train_form
):
    """Without gradients (a forecast), a 3D convolution to at most 8 channels is
    banded, a 2D one to more channels than it reads is direct and a strided one
    from 8 channels is XLA's; the train step keeps the FFTs and the phases.
    Every form equals XLA's convolution."""
    kx, kw, kg = jax.random.split(jax.random.key(5), 3)
    x = jax.random.normal(kx, x_shape)
    w = jax.random.normal(kw, kernel_shape) / 30  # outputs of about 1
    padding = ((2, 2), (1, 2), (2, 1))[-len(strides) :]

    def fast(x, w):
        return conv(x, w, strides=strides, padding=padding)

    def plain(x, w):
        return conv_general(x, w, strides, padding, (1,) * len(strides))

    def form(jaxpr: str) -> str:
        if "fft_lengths" in jaxpr:
            return "fft"
        if set(strides) != {1}:
            return "strided" if f"window_strides={strides}" in jaxpr else "polyphase"
        return "banded" if len(strides) == 3 else "direct"

    assert form(str(jax.make_jaxpr(fast)(x, w))) == eval_form
    assert form(str(jax.make_jaxpr(jax.grad(lambda x, w: fast(x, w).sum(), (0, 1)))(x, w))) == (
        train_form
    )
    np.testing.assert_allclose(jax.jit(fast)(x, w), plain(x, w), rtol=1e-5, atol=1e-5)
    assert_same_values_and_gradients(fast, plain, x, w, kg)
