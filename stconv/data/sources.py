"""Random-access sources of training examples, read lazily one window at a time.

Both sources follow grain's ``RandomAccessDataSource`` protocol (``len`` and
``[i]``) and return ``{"inputs", "targets", "mask"}``: normalized float32
inputs ``(input_length, lat, lon, channels)`` and targets
``(horizon, lat, lon, outputs)`` of the first ``outputs`` channels (the
target variables), with NaN set to 0 (the training mean), and a boolean mask
of the target cells that count in the loss and metrics. The inputs end with
the extra channels (`stconv.data.features.ExtraInputs`: static fields and
calendar features), which are never targets.
"""

from collections.abc import Sequence

import numpy as np
import xarray as xr

from stconv.data.features import ExtraInputs
from stconv.data.normalization import Normalizer
from stconv.data.windows import WindowSpec


def model_inputs(
    windows: np.ndarray,
    normalizer: Normalizer,
    times: np.ndarray | None = None,
    extra: ExtraInputs | None = None,
) -> np.ndarray:
    """Raw input windows ``(..., time, lat, lon, channel)`` as the model sees
    them, in training and in forecasts alike: normalized float32, NaN set to 0
    (the training mean), then the ``extra`` inputs; ``times`` ``(..., time)``
    of the frames, for a climatology normalization and calendar features."""
    normalized = normalizer.normalize(np.asarray(windows, np.float32), times)
    inputs = np.nan_to_num(normalized, nan=0.0).astype(np.float32)
    return inputs if extra is None else extra.add(inputs, times)


def make_example(
    inputs: np.ndarray,
    targets: np.ndarray,
    normalizer: Normalizer,
    mask: np.ndarray,
    outputs: int | None = None,
    times: np.ndarray | None = None,
    extra: ExtraInputs | None = None,
) -> dict[str, np.ndarray]:
    """Normalizes raw windows, zeroes NaNs and masks the targets: the first
    ``outputs`` channels (the target variables; default all). ``times`` of
    the window's frames, inputs then targets, where they are known."""
    outputs = targets.shape[-1] if outputs is None else outputs
    targets, mask = targets[..., :outputs], mask[..., :outputs]
    target_mask = np.isfinite(targets) & mask
    split = len(inputs)
    input_times, target_times = (None, None) if times is None else (times[:split], times[split:])
    inputs = model_inputs(inputs, normalizer, input_times, extra)
    normalized = normalizer.first(outputs).normalize(targets.astype(np.float32), target_times)
    targets = np.where(target_mask, normalized, 0.0)
    return {"inputs": inputs, "targets": targets.astype(np.float32), "mask": target_mask}


class WindowSource:
    """What every source shares: window lengths, normalization, the static
    mask, the number of target channels (the first ``outputs``) and the
    extra inputs."""

    def __init__(
        self,
        spec: WindowSpec,
        normalizer: Normalizer,
        mask: np.ndarray,
        outputs: int | None,
        extra: ExtraInputs | None = None,
    ):
        self.spec = spec
        self.normalizer = normalizer
        self.mask = mask
        self.outputs = mask.shape[-1] if outputs is None else outputs
        self.extra = extra

    def example(
        self, inputs: np.ndarray, targets: np.ndarray, times: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        return make_example(
            inputs, targets, self.normalizer, self.mask, self.outputs, times, self.extra
        )


class FieldWindows(WindowSource):
    """Windows of a ``(time, lat, lon, channel)`` field, starting at ``starts``.

    Only the window's frames are read on access, so a dask-backed field larger
    than memory streams with bounded memory.
    """

    def __init__(
        self,
        field: xr.DataArray,
        starts: Sequence[int],
        spec: WindowSpec,
        normalizer: Normalizer,
        mask: np.ndarray,
        outputs: int | None = None,
        extra: ExtraInputs | None = None,
    ):
        super().__init__(spec, normalizer, mask, outputs, extra)
        self.field = field
        self.starts = starts
        self.frame_times = field["time"].values

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        start = self.starts[index]
        frames = self.field.isel(time=slice(start, start + self.spec.length)).values
        split = self.spec.input_length
        times = self.frame_times[start : start + self.spec.length]
        return self.example(frames[:split], frames[split:], times)

    def series(self) -> np.ndarray:
        """The raw frames the windows are cut from, in time order ``(time, lat, lon, channel)``."""
        stop = self.starts[-1] + self.spec.length
        return self.field.isel(time=slice(self.starts[0], stop)).values

    def series_times(self) -> np.ndarray:
        """The times of `series`."""
        return self.frame_times[self.starts[0] : self.starts[-1] + self.spec.length]

    def init_times(self) -> np.ndarray:
        """Time of the last input frame of every window (the forecast's initialisation)."""
        last_input = np.asarray(self.starts) + self.spec.input_length - 1
        return self.frame_times[last_input]

    def input_times(self) -> np.ndarray:
        """``(window, input step)``: the time of every input frame."""
        steps = np.arange(self.spec.input_length)
        return self.frame_times[np.asarray(self.starts)[:, None] + steps]

    def valid_times(self) -> np.ndarray:
        """``(window, lead)``: the time of every target frame."""
        first_target = np.asarray(self.starts) + self.spec.input_length
        return self.frame_times[first_target[:, None] + np.arange(self.spec.horizon)]

    def times(self) -> np.ndarray:
        """The field's time axis."""
        return self.frame_times


class SampleWindows(WindowSource):
    """Pre-windowed samples of the paper's files: ``x`` and ``y`` with dims
    ``(sample, time, lat, lon, channel)``; the first ``input_length`` frames of
    ``x`` are the input (15-step files store 15)."""

    def __init__(
        self,
        x: xr.DataArray,
        y: xr.DataArray,
        samples: Sequence[int],
        spec: WindowSpec,
        normalizer: Normalizer,
        mask: np.ndarray,
        outputs: int | None = None,
    ):
        super().__init__(spec, normalizer, mask, outputs)
        self.x = x
        self.y = y
        self.samples = samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        sample = self.samples[index]
        inputs = self.x[sample, : self.spec.input_length].values
        targets = self.y[sample, : self.spec.horizon].values
        return self.example(inputs, targets)

    def series(self) -> np.ndarray:
        """The first input frame of every sample, raw ``(samples, lat, lon, channel)``: the
        time series if consecutive samples are one step apart (assumed, not checked)."""
        samples = np.asarray(self.samples)
        return self.x.isel(sample=samples, time=0).values

    def series_times(self) -> None:
        """None: the paper's files carry no time coordinate."""
        return None

    def init_times(self) -> np.ndarray:
        """Sample indices: the paper's files carry no time coordinate."""
        return np.asarray(self.samples)

    def valid_times(self) -> None:
        """None: the paper's files carry no time coordinate."""
        return None

    def times(self) -> np.ndarray:
        """Sample indices: the paper's files carry no time coordinate."""
        return np.asarray(self.samples)
