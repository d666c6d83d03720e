"""The blocks of STConvS2S: temporal (causal or not, or reversed), spatial, generator.

All blocks take and return ``(batch, time, lat, lon, channels)``. Layer ``i`` of
``num_layers`` outputs ``hidden_dim * 2**(i + 1)`` channels, except the last,
which outputs ``hidden_dim`` (`channel_schedule`); with ``channel_increase=False``
(an ablation) every layer outputs ``hidden_dim``.

The temporal blocks take a ``spatial_kernel_size``: 1 gives the paper's
factorized (k, 1, 1) kernels; k gives full (k, k, k) kernels with the
reference's ``k // 2`` spatial padding (the "not factorized" ablation).
"""

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import nnx

from stconv.models.layers import Conv, ConvBlock
from stconv.models.spec import ModelSpec


def channel_schedule(num_layers: int, hidden_dim: int, increase: bool = True) -> list[int]:
    """Output channels of each layer: ``d*2, d*4, ..., d`` (the last is ``d``),
    or ``d`` throughout if not ``increase``."""
    if not increase:
        return [hidden_dim] * num_layers
    return [hidden_dim * 2 ** (i + 1) for i in range(num_layers - 1)] + [hidden_dim]


def scheduled_layers(
    make_layer: Callable[[int, int], nnx.Module], in_features: int, schedule: list[int]
) -> nnx.List:
    """``make_layer(in, out)`` for each ``out`` of ``schedule``, each layer taking
    the previous one's channels."""
    layers = nnx.List()
    for out_features in schedule:
        layers.append(make_layer(in_features, out_features))
        in_features = out_features
    return layers


def same_padding(kernel_size: int) -> tuple[int, int]:
    """The reference's symmetric ``k // 2`` padding (keeps the size for odd k)."""
    return (kernel_size // 2, kernel_size // 2)


def temporal_kernel(
    kernel_size: int, spatial_kernel_size: int, time_padding: tuple[int, int]
) -> tuple[tuple[int, int, int], tuple[tuple[int, int], ...]]:
    """The (k, s, s) kernel of a temporal layer and its padding."""
    spatial_padding = same_padding(spatial_kernel_size)
    kernel = (kernel_size, spatial_kernel_size, spatial_kernel_size)
    return kernel, (time_padding, spatial_padding, spatial_padding)


class ConvStack(nnx.Module):
    """``num_layers`` `ConvBlock`s with one kernel, following `channel_schedule`."""

    def __init__(
        self,
        in_features: int,
        hidden_dim: int,
        num_layers: int,
        kernel_size: tuple[int, int, int],
        padding: tuple[tuple[int, int], ...],
        *,
        channel_increase: bool = True,
        dropout: float = 0.0,
        rngs: nnx.Rngs,
    ):
        self.layers = scheduled_layers(
            lambda n_in, n_out: ConvBlock(
                n_in, n_out, kernel_size, padding=padding, dropout=dropout, rngs=rngs
            ),
            in_features,
            channel_schedule(num_layers, hidden_dim, channel_increase),
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        for layer in self.layers:
            x = layer(x)
        return x


class TemporalBlock(ConvStack):
    """``num_layers`` (k, 1, 1) conv blocks that keep the length.

    Causal (STConvS2S-C): each layer pads ``k - 1`` steps at the start of time,
    so output step t depends on input steps ``<= t`` only. Not causal (the "no
    causal constraint" ablation, and the Conv3D baseline with
    ``spatial_kernel_size=k``): ``k // 2`` steps at both ends, so step t also
    sees ``k // 2`` later steps.
    """

    def __init__(
        self,
        in_features: int,
        hidden_dim: int,
        num_layers: int,
        kernel_size: int,
        *,
        causal: bool = True,
        spatial_kernel_size: int = 1,
        channel_increase: bool = True,
        dropout: float = 0.0,
        rngs: nnx.Rngs,
    ):
        time_padding = (kernel_size - 1, 0) if causal else same_padding(kernel_size)
        kernel, padding = temporal_kernel(kernel_size, spatial_kernel_size, time_padding)
        super().__init__(
            in_features,
            hidden_dim,
            num_layers,
            kernel,
            padding,
            channel_increase=channel_increase,
            dropout=dropout,
            rngs=rngs,
        )


class ReversedLayer(nnx.Module):
    """One layer of the reversed temporal block (the reference's ``RNet``).

    On a length-T input, a (k, s, s) conv without time padding gives T - k + 1
    steps and a (2, 1, 1) conv over the last k steps gives k - 1 steps, which
    are padded at the end by repeating the last one. The output is the first
    T - k steps of the long conv followed by its last step minus the padded
    short conv: T steps. With k = 2 only the short conv is applied (T - 1
    steps), as in the reference; the long conv's parameters still exist.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        kernel_size: int,
        *,
        spatial_kernel_size: int = 1,
        dropout: float = 0.0,
        rngs: nnx.Rngs,
    ):
        self.kernel_size = kernel_size
        kernel, padding = temporal_kernel(kernel_size, spatial_kernel_size, (0, 0))
        self.long = ConvBlock(in_features, out_features, kernel, padding=padding, rngs=rngs)
        self.short = ConvBlock(in_features, out_features, (2, 1, 1), rngs=rngs)
        self.dropout = nnx.Dropout(dropout, rngs=rngs) if dropout > 0 else None

    def __call__(self, x: jax.Array) -> jax.Array:
        k = self.kernel_size
        if k == 2:
            y = self.short(x)
        else:
            long = self.long(x)
            short = self.short(x[:, -k:])
            short = jnp.concatenate([short, short[:, -1:]], axis=1)
            y = jnp.concatenate([long[:, :-1], long[:, -1:] - short], axis=1)
        if self.dropout is not None:
            y = self.dropout(y)
        return y


class TemporalReversedBlock(nnx.Module):
    """Flip time, apply ``num_layers`` `ReversedLayer`s, flip back."""

    def __init__(
        self,
        in_features: int,
        hidden_dim: int,
        num_layers: int,
        kernel_size: int,
        *,
        spatial_kernel_size: int = 1,
        channel_increase: bool = True,
        dropout: float = 0.0,
        rngs: nnx.Rngs,
    ):
        self.layers = scheduled_layers(
            lambda n_in, n_out: ReversedLayer(
                n_in, n_out, kernel_size, spatial_kernel_size=spatial_kernel_size,
                dropout=dropout, rngs=rngs,
            ),
            in_features,
            channel_schedule(num_layers, hidden_dim, channel_increase),
        )  # fmt: skip

    def __call__(self, x: jax.Array) -> jax.Array:
        x = jnp.flip(x, axis=1)
        for layer in self.layers:
            x = layer(x)
        return jnp.flip(x, axis=1)


class SpatialBlock(ConvStack):
    """``num_layers`` (1, k, k) conv blocks with the reference's k // 2 padding."""

    def __init__(
        self,
        in_features: int,
        hidden_dim: int,
        num_layers: int,
        kernel_size: int,
        *,
        channel_increase: bool = True,
        dropout: float = 0.0,
        rngs: nnx.Rngs,
    ):
        padding = ((0, 0), same_padding(kernel_size), same_padding(kernel_size))
        kernel = (1, kernel_size, kernel_size)
        super().__init__(
            in_features,
            hidden_dim,
            num_layers,
            kernel,
            padding,
            channel_increase=channel_increase,
            dropout=dropout,
            rngs=rngs,
        )


class TemporalGenerator(nnx.Module):
    """Lengthens the sequence from ``input_length`` to ``horizon`` steps.

    ``ceil((horizon - T) / (2T))`` transposed convs along time (kernel 4,
    stride 2, padding 1) each double the length; the block's input and the
    upsampled sequence are concatenated along time and centre-cropped to
    ``horizon``; then ``horizon // T`` (1, k, k) conv blocks map
    d -> 2d -> d -> d ... channels.
    """

    def __init__(
        self,
        hidden_dim: int,
        input_length: int,
        horizon: int,
        kernel_size: int,
        *,
        rngs: nnx.Rngs,
    ):
        self.horizon = horizon
        num_upsampling = math.ceil((horizon - input_length) / (2 * input_length))
        # PyTorch's ConvTranspose(kernel 4, stride 2, padding 1) is a conv of the
        # 2-dilated input padded by 4 - 1 - 1 = 2; its default init takes the
        # fan-in from the output channels.
        self.upsampling = scheduled_layers(
            lambda n_in, n_out: ConvBlock(
                n_in, n_out, (4, 1, 1), padding=((2, 2), (0, 0), (0, 0)),
                input_dilation=(2, 1, 1), fan_in=n_out * 4, rngs=rngs,
            ),
            hidden_dim,
            channel_schedule(num_upsampling, hidden_dim),
        )  # fmt: skip
        padding = ((0, 0), same_padding(kernel_size), same_padding(kernel_size))
        num_spatial = horizon // input_length
        self.spatial = scheduled_layers(
            lambda n_in, n_out: ConvBlock(
                n_in, n_out, (1, kernel_size, kernel_size), padding=padding, rngs=rngs
            ),
            hidden_dim,  # the last upsampling layer's channels
            [2 * hidden_dim] + [hidden_dim] * (num_spatial - 1),
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        upsampled = x
        for layer in self.upsampling:
            upsampled = layer(upsampled)
        y = jnp.concatenate([x, upsampled], axis=1)
        if y.shape[1] > self.horizon:
            start = (y.shape[1] - self.horizon) // 2
            y = y[:, start : start + self.horizon]
        for layer in self.spatial:
            y = layer(y)
        return y


class ForecastHead(nnx.Module):
    """The end of every convolutional forecaster: the `TemporalGenerator` when
    ``horizon > input_length``, then a (k, k, k) conv with bias, "same"
    padding, from ``hidden_dim`` to the ``spec.targets`` output channels.

    Args:
      hidden_dim: the channels it takes.
      spec: the model's hyperparameters (input length, horizon, k, output channels).
      rngs: random streams for initialisation.
    """

    def __init__(self, hidden_dim: int, spec: ModelSpec, *, rngs: nnx.Rngs):
        input_length, horizon, kernel_size = spec.input_length, spec.horizon, spec.kernel_size
        self.generator = (
            TemporalGenerator(hidden_dim, input_length, horizon, kernel_size, rngs=rngs)
            if horizon > input_length
            else None
        )
        self.final = Conv(
            hidden_dim,
            spec.targets,
            (kernel_size,) * 3,
            padding=(same_padding(kernel_size),) * 3,
            use_bias=True,
            rngs=rngs,
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        if self.generator is not None:
            x = self.generator(x)
        return self.final(x)
