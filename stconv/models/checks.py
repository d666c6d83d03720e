"""Checks shared by the forecasting models: hyperparameters and input shapes.

Every check raises a one-line ValueError naming the parameter and what is allowed.
"""

from collections.abc import Sequence

import jax

from stconv.checks import check_positive


def validate_hyperparameters(
    input_shape: Sequence[int],
    horizon: int,
    num_layers: int,
    hidden_dim: int,
    kernel_size: int,
    dropout: float,
) -> None:
    """Checks what every forecasting model takes; raises ValueError naming the first
    invalid hyperparameter."""
    if len(input_shape) != 4:
        raise ValueError(
            f"input_shape={tuple(input_shape)!r} is invalid: must be "
            "(time, lat, lon, channels), four integers >= 1"
        )
    for name, value in zip(("input_length", "lat", "lon", "channels"), input_shape, strict=True):
        check_positive(f"input_shape {name}", value)
    check_positive("horizon", horizon)
    check_positive("num_layers", num_layers)
    check_positive("hidden_dim", hidden_dim)
    check_positive("kernel_size", kernel_size)
    _, lat, lon, _ = input_shape
    if kernel_size > min(lat, lon):
        raise ValueError(
            f"kernel_size={kernel_size} is invalid: must be <= the grid size "
            f"min(lat, lon) = {min(lat, lon)}"
        )
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout={dropout!r} is invalid: must be in [0, 1)")


def output_channels_of(output_channels: int | None, channels: int) -> int:
    """The number of channels a model forecasts: ``output_channels``, the first
    of the input channels (the data put the target variables first), or all
    ``channels`` when None. Raises ValueError unless it is in ``[1, channels]``."""
    if output_channels is None:
        return channels
    if (
        isinstance(output_channels, bool)
        or not isinstance(output_channels, int)
        or not 1 <= output_channels <= channels
    ):
        raise ValueError(
            f"output_channels={output_channels!r} is invalid: must be an integer from 1 to "
            f"the {channels} input channels"
        )
    return output_channels


def validate_generator_horizon(input_length: int, horizon: int) -> None:
    """The temporal generator cannot make ``input_length < horizon < 2 * input_length``."""
    if input_length < horizon < 2 * input_length:
        raise ValueError(
            f"horizon={horizon} is invalid with input_length={input_length}: the temporal "
            f"generator needs horizon <= {input_length} or horizon >= {2 * input_length}"
        )


def check_input(x: jax.Array, input_shape: Sequence[int], kernel_size: int) -> None:
    """Raises ValueError unless ``x`` is ``(batch, input_length, lat, lon, channels)``
    for a model built for ``input_shape`` with a grid of at least ``kernel_size``."""
    input_length, _, _, channels = input_shape
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
    if min(x.shape[2:4]) < kernel_size:
        raise ValueError(
            f"input of shape {tuple(x.shape)} is invalid: the grid must be at least "
            f"kernel_size={kernel_size} in lat and lon"
        )
