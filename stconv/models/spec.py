"""`ModelSpec`: the hyperparameters every forecasting network takes, declared once.

It imports no JAX, so the registry (`stconv.models.COMMON`) and a config's
checks can name its fields without loading JAX.
"""

import dataclasses

from stconv.checks import check_positive


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What every forecasting network is built for; checked when made.

    A network's constructor takes one, ``Model(spec, *, rngs, **its_options)``;
    `stconv.models.create` makes it from the keyword arguments of these names.

    Attributes:
      input_shape: ``(input_length, lat, lon, channels)`` of one sample.
      horizon: number of steps to forecast.
      num_layers: the model's layers (per block, or stacked cells).
      hidden_dim: the model's hidden channels (``d``).
      kernel_size: k of its convolutions.
      dropout: its dropout rate, in ``[0, 1)``.
      output_channels: the channels it forecasts, the first input channels (the
        data put the targets first); None: all of them (the reference's
        output channels option).

    Raises:
      ValueError: one line naming the first invalid hyperparameter.
    """

    input_shape: tuple[int, int, int, int]
    horizon: int
    num_layers: int = 3
    hidden_dim: int = 32
    kernel_size: int = 5
    dropout: float = 0.0
    output_channels: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "input_shape", tuple(self.input_shape))
        self.validate()

    def validate(self) -> None:
        """Raises ValueError naming the first invalid hyperparameter."""
        if len(self.input_shape) != 4:
            raise ValueError(
                f"input_shape={self.input_shape!r} is invalid: must be "
                "(time, lat, lon, channels), four integers >= 1"
            )
        for name, value in zip(
            ("input_length", "lat", "lon", "channels"), self.input_shape, strict=True
        ):
            check_positive(f"input_shape {name}", value)
        for name in ("horizon", "num_layers", "hidden_dim", "kernel_size"):
            check_positive(name, getattr(self, name))
        if self.kernel_size > min(self.grid):
            raise ValueError(
                f"kernel_size={self.kernel_size} is invalid: must be <= the grid size "
                f"min(lat, lon) = {min(self.grid)}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout={self.dropout!r} is invalid: must be in [0, 1)")
        given = self.output_channels
        if given is not None and (
            isinstance(given, bool) or not isinstance(given, int) or not 1 <= given <= self.channels
        ):
            raise ValueError(
                f"output_channels={given!r} is invalid: must be an integer from 1 to "
                f"the {self.channels} input channels"
            )

    @property
    def input_length(self) -> int:
        return self.input_shape[0]

    @property
    def grid(self) -> tuple[int, int]:
        """``(lat, lon)``."""
        return self.input_shape[1:3]

    @property
    def channels(self) -> int:
        """The input channels."""
        return self.input_shape[-1]

    @property
    def targets(self) -> int:
        """The number of channels forecast: ``output_channels``, or all ``channels``."""
        return self.channels if self.output_channels is None else self.output_channels


FIELDS = tuple(field.name for field in dataclasses.fields(ModelSpec))
