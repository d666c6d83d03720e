"""STConvS2S-R and STConvS2S-C (Castro et al., Neurocomputing 2021), and their ablations.

Temporal block, spatial block, temporal generator (only when the horizon is
longer than the input), then a (k, k, k) convolution back to the input
channels. Layers, channel schedule, output shapes and trainable parameter
counts follow the reference PyTorch implementation; as there, when
``horizon <= input_length`` the output keeps the input length.

The paper's ablations are options of the same model: a temporal block
without the causal constraint (``"symmetric"``) or none at all, no channel
increase, the spatial block first, and full (k, k, k) kernels in place of
the factorized temporal and spatial blocks. The reference's ablation models
have no temporal generator, so they cannot forecast beyond the input length;
here they use the same generator as STConvS2S when ``horizon > input_length``.
"""

import functools
from collections.abc import Sequence

import jax
from flax import nnx

from stconv.models.blocks import (
    ForecastHead,
    SpatialBlock,
    TemporalBlock,
    TemporalReversedBlock,
)
from stconv.models.checks import (
    check_input,
    output_channels_of,
    validate_generator_horizon,
    validate_hyperparameters,
)

TEMPORAL_BLOCKS = {
    "reversed": TemporalReversedBlock,
    "causal": functools.partial(TemporalBlock, causal=True),
    "symmetric": functools.partial(TemporalBlock, causal=False),
}


def validate_blocks(
    input_length: int,
    num_layers: int,
    kernel_size: int,
    temporal_block: str | None,
    spatial_first: bool,
    factorized: bool,
) -> None:
    """Raises ValueError naming the first invalid choice of blocks."""
    if temporal_block is not None and temporal_block not in TEMPORAL_BLOCKS:
        raise ValueError(
            f"temporal_block={temporal_block!r} is invalid: choose from "
            f"{sorted(TEMPORAL_BLOCKS)} or None"
        )
    if temporal_block is None and (spatial_first or not factorized):
        raise ValueError(
            "temporal_block=None is invalid with spatial_first=True or factorized=False: "
            "both need a temporal block"
        )
    if temporal_block == "reversed":
        if not 2 <= kernel_size <= input_length:
            raise ValueError(
                f"kernel_size={kernel_size} is invalid for the reversed temporal block: "
                f"must be between 2 and input_length={input_length}"
            )
        if kernel_size == 2 and num_layers >= input_length:
            raise ValueError(
                f"num_layers={num_layers} is invalid with kernel_size=2 in the reversed "
                f"block, which drops one step per layer: must be < input_length={input_length}"
            )


class STConvS2S(nnx.Module):
    """The STConvS2S encoder-decoder.

    Args:
      input_shape: ``(input_length, lat, lon, channels)`` of one sample.
      horizon: number of steps to forecast.
      temporal_block: ``"reversed"`` (STConvS2S-R), ``"causal"`` (STConvS2S-C),
        ``"symmetric"`` (no causal constraint) or None (no temporal block).
      num_layers: layers in the temporal and the spatial block.
      hidden_dim: channels between the blocks (the schedule's ``d``).
      kernel_size: k of the (k, 1, 1), (1, k, k) and final (k, k, k) kernels.
      dropout: dropout rate after each temporal and spatial layer.
      channel_increase: the channel schedule ``2d, 4d, ..., d``; if False every
        layer has ``d`` channels.
      spatial_first: the spatial block before the temporal block.
      factorized: if False, the temporal block's layers have (k, k, k) kernels
        and there is no spatial block (and no channel increase, as in the
        reference's ablation).
      output_channels: the channels its final convolution forecasts, the first input
        channels (the targets); None: all of them (the reference's `--output-channels`).
      rngs: random streams for initialisation and dropout.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        horizon: int,
        *,
        temporal_block: str | None = "reversed",
        num_layers: int = 3,
        hidden_dim: int = 32,
        kernel_size: int = 5,
        dropout: float = 0.0,
        channel_increase: bool = True,
        spatial_first: bool = False,
        factorized: bool = True,
        output_channels: int | None = None,
        rngs: nnx.Rngs,
    ):
        validate_hyperparameters(input_shape, horizon, num_layers, hidden_dim, kernel_size, dropout)
        input_length, _, _, channels = input_shape
        validate_generator_horizon(input_length, horizon)
        validate_blocks(
            input_length, num_layers, kernel_size, temporal_block, spatial_first, factorized
        )
        self.input_shape = tuple(input_shape)
        self.kernel_size = kernel_size
        self.spatial_first = spatial_first
        if factorized:
            options = dict(channel_increase=channel_increase, dropout=dropout, rngs=rngs)
        else:
            options = dict(
                spatial_kernel_size=kernel_size, channel_increase=False, dropout=dropout, rngs=rngs
            )
        # The first block maps the input channels to the schedule, the second
        # keeps hidden_dim.
        temporal_in = hidden_dim if spatial_first else channels
        spatial_in = channels if spatial_first or temporal_block is None else hidden_dim
        self.temporal = (
            TEMPORAL_BLOCKS[temporal_block](
                temporal_in, hidden_dim, num_layers, kernel_size, **options
            )
            if temporal_block is not None
            else None
        )
        self.spatial = (
            SpatialBlock(spatial_in, hidden_dim, num_layers, kernel_size, **options)
            if factorized
            else None
        )
        self.head = ForecastHead(
            hidden_dim, output_channels_of(output_channels, channels), input_length, horizon,
            kernel_size, rngs=rngs,
        )  # fmt: skip

    def __call__(self, x: jax.Array) -> jax.Array:
        """Maps ``(batch, T, lat, lon, C)`` to ``(batch, max(T, horizon), lat, lon, C)``."""
        check_input(x, self.input_shape, self.kernel_size)
        blocks = [self.temporal, self.spatial]
        if self.spatial_first:
            blocks.reverse()
        for block in blocks:
            if block is not None:
                x = block(x)
        return self.head(x)
