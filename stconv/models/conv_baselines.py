"""The paper's convolutional baselines: (2+1)D convolutions and a 3D encoder-decoder.

(The Conv3D baseline is `STConvS2S` with a non-causal temporal block of full
(k, k, k) kernels; see `stconv.models`.)

Both follow the reference's ``model/baselines`` in layers, channels, output
shapes and trainable parameter counts. Like the reference's, they keep the
input length; beyond it (``horizon > input_length``, which the reference
cannot run) they end with STConvS2S's temporal generator (`ForecastHead`).
"""

from collections.abc import Sequence

import jax
from flax import nnx

from stconv.models.blocks import ForecastHead, same_padding
from stconv.models.checks import check_input, validate_generator_horizon
from stconv.models.layers import LEAKY_RELU_SLOPE, BatchNorm, Conv, ConvBlock
from stconv.models.spec import ModelSpec


def factorized_channels(kernel_size: int, in_features: int, out_features: int) -> int:
    """Channels between the (1, k, k) and (k, 1, 1) convs of a (2+1)D layer, chosen
    so that it has about as many parameters as one (k, k, k) conv (Tran et al. 2018)."""
    k = kernel_size
    return (k**3 * in_features * out_features) // (k * k * in_features + k * out_features)


class Conv2Plus1D(nnx.Module):
    """``spec.num_layers`` (2+1)D layers of ``spec.hidden_dim`` channels, then
    `ForecastHead`.

    Each layer is a (1, k, k) conv block to `factorized_channels` channels and
    a (k, 1, 1) conv block to ``hidden_dim``, both with ``k // 2`` padding,
    then ``spec.dropout`` (the reference has none).

    Args:
      spec: the hyperparameters every model takes (`ModelSpec`).
      rngs: random streams for initialisation and dropout.
    """

    def __init__(self, spec: ModelSpec, *, rngs: nnx.Rngs):
        validate_generator_horizon(spec)
        self.spec = spec
        hidden_dim, kernel_size = spec.hidden_dim, spec.kernel_size
        pad = same_padding(kernel_size)
        self.layers = nnx.List()
        in_features = spec.channels
        for _ in range(spec.num_layers):
            middle = factorized_channels(kernel_size, in_features, hidden_dim)
            spatial = ConvBlock(
                in_features,
                middle,
                (1, kernel_size, kernel_size),
                padding=((0, 0), pad, pad),
                rngs=rngs,
            )
            temporal = ConvBlock(
                middle,
                hidden_dim,
                (kernel_size, 1, 1),
                padding=(pad, (0, 0), (0, 0)),
                dropout=spec.dropout,
                rngs=rngs,
            )
            self.layers.append(nnx.Sequential(spatial, temporal))
            in_features = hidden_dim
        self.head = ForecastHead(hidden_dim, spec, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        """Maps ``(batch, T, lat, lon, C)`` to ``(batch, max(T, horizon), lat, lon, C)``."""
        check_input(x, self.spec)
        for layer in self.layers:
            x = layer(x)
        return self.head(x)


class EncoderDecoder3D(nnx.Module):
    """A 3D convolutional encoder-decoder over the grid (the reference's ``enc-dec3d``).

    Encoder: ``num_layers`` (k, k, k) convs with bias and LeakyReLU, with
    ``k // 2`` padding and spatial stride ``s = k // 2``, channels
    ``d, 2d, 4d, ...``; BatchNorm. Decoder: ``num_layers`` transposed convs
    (1, s, s) with stride s, bias and LeakyReLU, each halving the channels.
    `ForecastHead`, then the centre of the grid is cropped back to the
    input's size. ``num_layers`` encoder (and decoder) layers, ``d = hidden_dim``;
    ``k = kernel_size`` must be >= 2 (the stride is ``k // 2``) and ``dropout`` 0
    (the reference has no dropout here).

    Args:
      spec: the hyperparameters every model takes (`ModelSpec`).
      rngs: random streams for initialisation.
    """

    def __init__(self, spec: ModelSpec, *, rngs: nnx.Rngs):
        validate_generator_horizon(spec)
        num_layers, hidden_dim, kernel_size = spec.num_layers, spec.hidden_dim, spec.kernel_size
        if kernel_size < 2:
            raise ValueError(
                f"kernel_size={kernel_size} is invalid for enc-dec3d: must be >= 2 "
                "(the spatial stride is kernel_size // 2)"
            )
        if spec.dropout != 0.0:
            raise ValueError(
                f"dropout={spec.dropout!r} is invalid for enc-dec3d: it has no dropout"
            )
        self.spec = spec
        stride = kernel_size // 2
        pad = same_padding(kernel_size)
        self.encoder = nnx.List()
        features = [hidden_dim * 2**i for i in range(num_layers)]
        for in_features, out_features in zip([spec.channels, *features], features, strict=False):
            self.encoder.append(
                Conv(
                    in_features,
                    out_features,
                    (kernel_size,) * 3,
                    strides=(1, stride, stride),
                    padding=(pad, pad, pad),
                    use_bias=True,
                    rngs=rngs,
                )
            )
        in_features = features[-1]
        self.norm = BatchNorm(in_features, rngs=rngs)
        self.decoder = nnx.List()
        for _ in range(num_layers):
            out_features = in_features // 2
            # PyTorch's ConvTranspose(kernel s, stride s) is a conv of the
            # s-dilated input padded by s - 1; its default init takes the fan-in
            # from the output channels.
            self.decoder.append(
                Conv(
                    in_features,
                    out_features,
                    (1, stride, stride),
                    padding=((0, 0), (stride - 1, stride - 1), (stride - 1, stride - 1)),
                    input_dilation=(1, stride, stride),
                    use_bias=True,
                    fan_in=out_features * stride * stride,
                    rngs=rngs,
                )
            )
            in_features = out_features
        self.head = ForecastHead(in_features, spec, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        """Maps ``(batch, T, lat, lon, C)`` to ``(batch, max(T, horizon), lat, lon, C)``."""
        check_input(x, self.spec)
        for conv in self.encoder:
            x = nnx.leaky_relu(conv(x), LEAKY_RELU_SLOPE)
        x = self.norm(x)
        for conv in self.decoder:
            x = nnx.leaky_relu(conv(x), LEAKY_RELU_SLOPE)
        x = self.head(x)
        return centre_crop(x, self.spec.grid)


def centre_crop(x: jax.Array, grid: Sequence[int]) -> jax.Array:
    """The centre ``grid = (lat, lon)`` cells of ``(batch, time, lat, lon, c)``."""
    top = (x.shape[2] - grid[0]) // 2
    left = (x.shape[3] - grid[1]) // 2
    return x[:, :, top : top + grid[0], left : left + grid[1]]
