"""The blocks of STConvS2S: temporal (causal or reversed), spatial, generator.

All blocks take and return ``(batch, time, lat, lon, channels)``. Layer ``i`` of
``num_layers`` outputs ``hidden_dim * 2**(i + 1)`` channels, except the last,
which outputs ``hidden_dim`` (`channel_schedule`).
"""

import math

import jax
import jax.numpy as jnp
from flax import nnx

from stconv.layers import ConvBlock


def channel_schedule(num_layers: int, hidden_dim: int) -> list[int]:
    """Output channels of each layer: ``d*2, d*4, ..., d`` (the last is ``d``)."""
    return [hidden_dim * 2 ** (i + 1) for i in range(num_layers - 1)] + [hidden_dim]


def same_padding(kernel_size: int) -> tuple[int, int]:
    """The reference's symmetric ``k // 2`` padding (keeps the size for odd k)."""
    return (kernel_size // 2, kernel_size // 2)


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
        dropout: float = 0.0,
        rngs: nnx.Rngs,
    ):
        self.layers = nnx.List()
        for out_features in channel_schedule(num_layers, hidden_dim):
            self.layers.append(
                ConvBlock(
                    in_features,
                    out_features,
                    kernel_size,
                    padding=padding,
                    dropout=dropout,
                    rngs=rngs,
                )
            )
            in_features = out_features

    def __call__(self, x: jax.Array) -> jax.Array:
        for layer in self.layers:
            x = layer(x)
        return x


class TemporalCausalBlock(ConvStack):
    """``num_layers`` (k, 1, 1) conv blocks that see only the present and the past.

    Each layer pads ``k - 1`` steps at the start of time, so the length is kept
    and output step t depends on input steps ``<= t`` only.
    """

    def __init__(
        self,
        in_features: int,
        hidden_dim: int,
        num_layers: int,
        kernel_size: int,
        *,
        dropout: float = 0.0,
        rngs: nnx.Rngs,
    ):
        padding = ((kernel_size - 1, 0), (0, 0), (0, 0))
        kernel = (kernel_size, 1, 1)
        super().__init__(
            in_features, hidden_dim, num_layers, kernel, padding, dropout=dropout, rngs=rngs
        )


class ReversedLayer(nnx.Module):
    """One layer of the reversed temporal block (the reference's ``RNet``).

    On a length-T input, a (k, 1, 1) conv without padding gives T - k + 1
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
        dropout: float = 0.0,
        rngs: nnx.Rngs,
    ):
        self.kernel_size = kernel_size
        self.long = ConvBlock(in_features, out_features, (kernel_size, 1, 1), rngs=rngs)
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
        dropout: float = 0.0,
        rngs: nnx.Rngs,
    ):
        self.layers = nnx.List()
        for out_features in channel_schedule(num_layers, hidden_dim):
            self.layers.append(
                ReversedLayer(in_features, out_features, kernel_size, dropout=dropout, rngs=rngs)
            )
            in_features = out_features

    def __call__(self, x: jax.Array) -> jax.Array:
        x = jnp.flip(x, axis=1)
        for layer in self.layers:
            x = layer(x)
        return jnp.flip(x, axis=1)


class SpatialBlock(ConvStack):
    """``num_layers`` (1, k, k) conv blocks with the reference's k // 2 padding."""

    def __init__(
        self,
        hidden_dim: int,
        num_layers: int,
        kernel_size: int,
        *,
        dropout: float = 0.0,
        rngs: nnx.Rngs,
    ):
        padding = ((0, 0), same_padding(kernel_size), same_padding(kernel_size))
        kernel = (1, kernel_size, kernel_size)
        super().__init__(
            hidden_dim, hidden_dim, num_layers, kernel, padding, dropout=dropout, rngs=rngs
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
        in_features = hidden_dim
        self.upsampling = nnx.List()
        for out_features in channel_schedule(num_upsampling, hidden_dim):
            # PyTorch's ConvTranspose(kernel 4, stride 2, padding 1) is a conv of
            # the 2-dilated input padded by 4 - 1 - 1 = 2; its default init takes
            # the fan-in from the output channels.
            self.upsampling.append(
                ConvBlock(
                    in_features,
                    out_features,
                    (4, 1, 1),
                    padding=((2, 2), (0, 0), (0, 0)),
                    input_dilation=(2, 1, 1),
                    fan_in=out_features * 4,
                    rngs=rngs,
                )
            )
            in_features = out_features

        padding = ((0, 0), same_padding(kernel_size), same_padding(kernel_size))
        num_spatial = horizon // input_length
        spatial_features = [2 * hidden_dim] + [hidden_dim] * (num_spatial - 1)
        self.spatial = nnx.List()
        for out_features in spatial_features:
            self.spatial.append(
                ConvBlock(
                    in_features,
                    out_features,
                    (1, kernel_size, kernel_size),
                    padding=padding,
                    rngs=rngs,
                )
            )
            in_features = out_features

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
