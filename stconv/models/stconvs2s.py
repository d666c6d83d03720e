"""STConvS2S-R and STConvS2S-C (Castro et al., Neurocomputing 2021).

Temporal block, spatial block, temporal generator (only when the horizon is
longer than the input), then a (k, k, k) convolution back to the input
channels. Layers, channel schedule, output shapes and trainable parameter
counts follow the reference PyTorch implementation; as there, when
``horizon <= input_length`` the output keeps the input length.
"""

from collections.abc import Sequence

import jax
from flax import nnx

from stconv.blocks import (
    SpatialBlock,
    TemporalCausalBlock,
    TemporalGenerator,
    TemporalReversedBlock,
    same_padding,
)
from stconv.layers import Conv

TEMPORAL_BLOCKS = {"reversed": TemporalReversedBlock, "causal": TemporalCausalBlock}


def _check_positive(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}={value!r} is invalid: must be an integer >= 1")


def validate_hyperparameters(
    input_shape: Sequence[int],
    horizon: int,
    num_layers: int,
    hidden_dim: int,
    kernel_size: int,
    dropout: float,
    temporal_block: str,
) -> None:
    """Raises ValueError naming the first invalid hyperparameter."""
    if len(input_shape) != 4:
        raise ValueError(
            f"input_shape={tuple(input_shape)!r} is invalid: must be "
            "(time, lat, lon, channels), four integers >= 1"
        )
    for name, value in zip(("input_length", "lat", "lon", "channels"), input_shape, strict=True):
        _check_positive(f"input_shape {name}", value)
    _check_positive("horizon", horizon)
    _check_positive("num_layers", num_layers)
    _check_positive("hidden_dim", hidden_dim)
    _check_positive("kernel_size", kernel_size)
    input_length, lat, lon, _ = input_shape
    if kernel_size > min(lat, lon):
        raise ValueError(
            f"kernel_size={kernel_size} is invalid: must be <= the grid size "
            f"min(lat, lon) = {min(lat, lon)}"
        )
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout={dropout!r} is invalid: must be in [0, 1)")
    if temporal_block not in TEMPORAL_BLOCKS:
        raise ValueError(
            f"temporal_block={temporal_block!r} is invalid: choose from {sorted(TEMPORAL_BLOCKS)}"
        )
    if input_length < horizon < 2 * input_length:
        raise ValueError(
            f"horizon={horizon} is invalid with input_length={input_length}: the temporal "
            f"generator needs horizon <= {input_length} or horizon >= {2 * input_length}"
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
      temporal_block: ``"reversed"`` (STConvS2S-R) or ``"causal"`` (STConvS2S-C).
      num_layers: layers in the temporal and the spatial block.
      hidden_dim: channels between the blocks (the schedule's ``d``).
      kernel_size: k of the (k, 1, 1), (1, k, k) and final (k, k, k) kernels.
      dropout: dropout rate after each temporal and spatial layer.
      rngs: random streams for initialisation and dropout.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        horizon: int,
        *,
        temporal_block: str = "reversed",
        num_layers: int = 3,
        hidden_dim: int = 32,
        kernel_size: int = 5,
        dropout: float = 0.0,
        rngs: nnx.Rngs,
    ):
        validate_hyperparameters(
            input_shape, horizon, num_layers, hidden_dim, kernel_size, dropout, temporal_block
        )
        input_length, _, _, channels = input_shape
        self.input_shape = tuple(input_shape)
        self.kernel_size = kernel_size
        self.temporal = TEMPORAL_BLOCKS[temporal_block](
            channels, hidden_dim, num_layers, kernel_size, dropout=dropout, rngs=rngs
        )
        self.spatial = SpatialBlock(hidden_dim, num_layers, kernel_size, dropout=dropout, rngs=rngs)
        self.generator = (
            TemporalGenerator(hidden_dim, input_length, horizon, kernel_size, rngs=rngs)
            if horizon > input_length
            else None
        )
        self.final = Conv(
            hidden_dim,
            channels,
            (kernel_size,) * 3,
            padding=(same_padding(kernel_size),) * 3,
            use_bias=True,
            rngs=rngs,
        )

    def check_input(self, x: jax.Array) -> None:
        """Raises ValueError unless ``x`` is ``(batch, input_length, lat, lon, channels)``."""
        input_length, _, _, channels = self.input_shape
        if x.ndim != 5:
            raise ValueError(
                f"input of shape {tuple(x.shape)} is invalid: must have rank 5, "
                "(batch, time, lat, lon, channels)"
            )
        if x.shape[1] != input_length or x.shape[-1] != channels:
            raise ValueError(
                f"input of shape {tuple(x.shape)} is invalid: the model was built for "
                f"input_length={input_length} and channels={channels}"
            )
        if min(x.shape[2:4]) < self.kernel_size:
            raise ValueError(
                f"input of shape {tuple(x.shape)} is invalid: the grid must be at least "
                f"kernel_size={self.kernel_size} in lat and lon"
            )

    def __call__(self, x: jax.Array) -> jax.Array:
        """Maps ``(batch, T, lat, lon, C)`` to ``(batch, max(T, horizon), lat, lon, C)``."""
        self.check_input(x)
        x = self.spatial(self.temporal(x))
        if self.generator is not None:
            x = self.generator(x)
        return self.final(x)
