"""The nnx layers: the conv block, PyTorch's BatchNorm, dropout."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from stconv.models.conv_algorithms import conv
from stconv.models.layers import BatchNorm, ConvBlock


@pytest.mark.parametrize("kernel_size", [(3,), (3, 3), (1, 3, 3)])
def test_conv_block_parameters_and_shape(kernel_size):
    block = ConvBlock(2, 4, kernel_size, rngs=nnx.Rngs(0))
    params = nnx.state(block, nnx.Param)
    sizes = {
        "/".join(map(str, path)): leaf.size for path, leaf in jax.tree.leaves_with_path(params)
    }
    assert sum(sizes.values()) == int(np.prod(kernel_size)) * 2 * 4 + 2 * 4  # no conv bias
    x = jnp.ones((3, *([5] * len(kernel_size)), 2))
    y = block(x)
    assert y.shape == (3, *(5 - k + 1 for k in kernel_size), 4)


def test_batch_norm_differs_between_train_and_eval():
    block = ConvBlock(1, 2, (3,), rngs=nnx.Rngs(0))
    x = 5.0 + jax.random.normal(jax.random.key(1), (4, 10, 1))
    train_out = block(x)
    # Training normalises with the batch statistics: each channel has mean ~0
    # before the LeakyReLU, so both signs appear.
    assert float(train_out.min()) < 0 < float(train_out.max())
    batch_mean = conv(x, block.conv.kernel[...]).mean(axis=(0, 1))
    # PyTorch momentum 0.1: running = 0.9 * running + 0.1 * batch.
    np.testing.assert_allclose(block.norm.mean[...], 0.1 * batch_mean, rtol=1e-5)
    block.eval()
    eval_out = block(x)
    assert not np.allclose(train_out, eval_out)
    np.testing.assert_allclose(block(x), eval_out)  # eval mode leaves the statistics alone


def test_batch_norm_running_variance_is_unbiased_as_in_pytorch():
    norm = BatchNorm(1, rngs=nnx.Rngs(0))
    x = jnp.array([1.0, 2.0, 3.0, 4.0]).reshape(2, 2, 1)  # mean 2.5, variance 1.25 (biased)
    y = norm(x)
    # Train mode normalises with the biased variance...
    np.testing.assert_allclose(y.ravel(), (x.ravel() - 2.5) / np.sqrt(1.25 + 1e-5), rtol=1e-6)
    # ...and averages the unbiased one, 1.25 * 4 / 3, into the running variance.
    np.testing.assert_allclose(norm.mean[...], [0.1 * 2.5], rtol=1e-6)
    np.testing.assert_allclose(norm.var[...], [0.9 * 1.0 + 0.1 * 1.25 * 4 / 3], rtol=1e-6)
    norm.eval()
    np.testing.assert_allclose(norm(x), (x - 0.25) / np.sqrt(0.9 + 0.1 * 5 / 3 + 1e-5), rtol=1e-6)
    np.testing.assert_allclose(norm.var[...], [0.9 + 0.1 * 5 / 3], rtol=1e-6)  # left alone


def test_dropout_only_in_train_mode():
    block = ConvBlock(1, 8, (1,), dropout=0.5, rngs=nnx.Rngs(0))
    x = jnp.ones((2, 16, 1))
    first, second = block(x), block(x)
    assert not np.allclose(first, second)
    assert float(jnp.mean(first == 0)) > 0.2  # about half are dropped
    block.eval()
    np.testing.assert_allclose(block(x), block(x))
    assert float(jnp.mean(block(x) == 0)) < 0.2
