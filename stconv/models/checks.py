"""Checks shared by the forecasting models beyond `ModelSpec.validate`: the
temporal generator's horizons and input shapes.

Every check raises a one-line ValueError naming the parameter and what is allowed.
"""

import jax

from stconv.models.spec import ModelSpec


def validate_generator_horizon(spec: ModelSpec) -> None:
    """The temporal generator cannot make ``input_length < horizon < 2 * input_length``."""
    input_length, horizon = spec.input_length, spec.horizon
    if input_length < horizon < 2 * input_length:
        raise ValueError(
            f"horizon={horizon} is invalid with input_length={input_length}: the temporal "
            f"generator needs horizon <= {input_length} or horizon >= {2 * input_length}"
        )


def check_input(x: jax.Array, spec: ModelSpec) -> None:
    """Raises ValueError unless ``x`` is ``(batch, input_length, lat, lon, channels)``
    for a model built for ``spec``, with a grid of at least ``spec.kernel_size``."""
    if x.ndim != 5:
        raise ValueError(
            f"input of shape {tuple(x.shape)} is invalid: must have rank 5, "
            "(batch, time, lat, lon, channels)"
        )
    if x.shape[1] != spec.input_length or x.shape[-1] != spec.channels:
        raise ValueError(
            f"input of shape {tuple(x.shape)} is invalid: the model was built for "
            f"input_length={spec.input_length} and channels={spec.channels}"
        )
    if min(x.shape[2:4]) < spec.kernel_size:
        raise ValueError(
            f"input of shape {tuple(x.shape)} is invalid: the grid must be at least "
            f"kernel_size={spec.kernel_size} in lat and lon"
        )
