"""Sliding windows over a field and chronological splits.

A window is ``input_length`` frames of input followed by ``horizon`` frames of
target. Splits cut the *time axis* into consecutive train, validation and test
segments before windowing, and windows never cross a segment boundary, so no
frame (input or target) of one split appears in another.

This differs from splitting a list of overlapping windows (as the paper's
files and the reference do): there the last training windows' targets are the
first validation windows' inputs, and ``input_length + horizon - 1`` frames at
each boundary are seen by two splits. Splitting on time costs that many
windows per boundary and leaks nothing.
"""

import dataclasses
import math
from collections.abc import Sequence

from stconv.checks import check_positive
from stconv.data.errors import DataError

SPLITS = ("train", "validation", "test")


@dataclasses.dataclass(frozen=True)
class WindowSpec:
    """How windows are cut: ``input_length`` -> ``horizon`` steps every ``stride`` steps."""

    input_length: int
    horizon: int
    stride: int = 1

    def __post_init__(self):
        for name in ("input_length", "horizon", "stride"):
            check_positive(name, getattr(self, name), DataError)

    @property
    def length(self) -> int:
        """Frames in one window."""
        return self.input_length + self.horizon

    def starts(self, start: int, stop: int) -> range:
        """Start indices of the windows that fit in frames ``[start, stop)``."""
        return range(start, max(start, stop - self.length + 1), self.stride)


def check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    """Validates ``(train, validation, test)`` fractions: positive, summing to 1."""
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or any(not 0 < f < 1 for f in fractions):
        raise DataError(
            f"split fractions {fractions!r} are invalid: give three numbers in (0, 1) "
            "for train, validation and test"
        )
    if not math.isclose(sum(fractions), 1.0, abs_tol=1e-6):
        raise DataError(f"split fractions {fractions!r} are invalid: they must sum to 1")
    return fractions


def time_segments(
    num_steps: int, fractions: Sequence[float] = (0.6, 0.2, 0.2)
) -> dict[str, tuple[int, int]]:
    """``{split: (start, stop)}`` frame ranges, consecutive and in time order."""
    train, validation, _ = check_fractions(fractions)
    train_stop = round(num_steps * train)
    validation_stop = round(num_steps * (train + validation))
    return {
        "train": (0, train_stop),
        "validation": (train_stop, validation_stop),
        "test": (validation_stop, num_steps),
    }


def split_starts(
    num_steps: int,
    spec: WindowSpec,
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
    source: str = "the field",
) -> dict[str, range]:
    """Window start indices of each split; raises DataError, naming ``source``, if a
    split gets none."""
    if num_steps < spec.length:
        raise DataError(
            f"{source} has {num_steps} time steps, too few for one window of "
            f"input_length={spec.input_length} + horizon={spec.horizon}"
        )
    starts = {}
    for split, (start, stop) in time_segments(num_steps, fractions).items():
        starts[split] = spec.starts(start, stop)
        if len(starts[split]) == 0:
            raise DataError(
                f"{source}: the {split} split has {stop - start} of {num_steps} time steps, "
                f"too few for one window of {spec.length}: use a longer field, shorter windows "
                "or other split fractions"
            )
    return starts


def paper_split(num_samples: int, validation: float = 0.2, test: float = 0.2) -> dict[str, range]:
    """The reference's split of pre-windowed samples, reproduced exactly.

    The test set is the last ``test`` fraction; validation is then the last
    ``validation / (1 - test)`` of what remains; train is the rest.
    """
    test_start = int(num_samples * (1.0 - test))
    validation_start = int(test_start * (1.0 - validation / (1.0 - test)))
    return {
        "train": range(0, validation_start),
        "validation": range(validation_start, test_start),
        "test": range(test_start, num_samples),
    }
