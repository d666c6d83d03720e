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

import jax
from flax import nnx

from stconv.models.blocks import (
    ForecastHead,
    SpatialBlock,
    TemporalBlock,
    TemporalReversedBlock,
)
from stconv.models.checks import check_input, validate_generator_horizon
from stconv.models.spec import ModelSpec

TEMPORAL_BLOCKS = {
    "reversed": TemporalReversedBlock,
    "causal": functools.partial(TemporalBlock, causal=True),
    "symmetric": functools.partial(TemporalBlock, causal=False),
}


def validate_blocks(
    spec: ModelSpec, temporal_block: str | None, spatial_first: bool, factorized: bool
) -> None:
    """Raises ValueError naming the first invalid choice of blocks."""
    input_length, num_layers, kernel_size = spec.input_length, spec.num_layers, spec.kernel_size
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
    """The STConvS2S encoder-decoder: its blocks have ``spec.num_layers`` layers,
    ``spec.hidden_dim`` channels between them (the schedule's ``d``), the
    (k, 1, 1), (1, k, k) and final (k, k, k) kernels ``k = spec.kernel_size``,
    and ``spec.dropout`` after each temporal and spatial layer.

    Args:
      spec: the hyperparameters every model takes (`ModelSpec`).
      temporal_block: ``"reversed"`` (STConvS2S-R), ``"causal"`` (STConvS2S-C),
        ``"symmetric"`` (no causal constraint) or None (no temporal block).
      channel_increase: the channel schedule ``2d, 4d, ..., d``; if False every
        layer has ``d`` channels.
      spatial_first: the spatial block before the temporal block.
      factorized: if False, the temporal block's layers have (k, k, k) kernels
        and there is no spatial block (and no channel increase, as in the
        reference's ablation).
      rngs: random streams for initialisation and dropout.
    """

    def __init__(
        self,
        spec: ModelSpec,
        *,
        temporal_block: str | None = "reversed",
        channel_increase: bool = True,
        spatial_first: bool = False,
        factorized: bool = True,
        rngs: nnx.Rngs,
    ):
        validate_generator_horizon(spec)
        validate_blocks(spec, temporal_block, spatial_first, factorized)
        self.spec = spec
        self.spatial_first = spatial_first
        num_layers, hidden_dim, kernel_size = spec.num_layers, spec.hidden_dim, spec.kernel_size
        if factorized:
            options = dict(channel_increase=channel_increase, dropout=spec.dropout, rngs=rngs)
        else:
            options = dict(
                spatial_kernel_size=kernel_size,
                channel_increase=False,
                dropout=spec.dropout,
                rngs=rngs,
            )
        # The first block maps the input channels to the schedule, the second
        # keeps hidden_dim.
        temporal_in = hidden_dim if spatial_first else spec.channels
        spatial_in = spec.channels if spatial_first or temporal_block is None else hidden_dim
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
        self.head = ForecastHead(hidden_dim, spec, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        """Maps ``(batch, T, lat, lon, C)`` to ``(batch, max(T, horizon), lat, lon, C)``."""
        check_input(x, self.spec)
        blocks = [self.temporal, self.spatial]
        if self.spatial_first:
            blocks.reverse()
        for block in blocks:
            if block is not None:
                x = block(x)
        return self.head(x)
