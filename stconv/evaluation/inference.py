"""Windowed inference: batches of normalized windows, padded to one shape,
forecast, and turned back into physical units.

Every forecast of stconv goes this way: validation and the test of a run
(`stconv.evaluation.scoring.evaluate`), and `stconv.runs.forecaster.Forecaster`'s
``forecast``, ``write`` (``stconv predict``) and ``evaluate``.
"""

from collections.abc import Callable, Iterable, Iterator

import jax
import numpy as np
import xarray as xr
from numpy.lib.stride_tricks import sliding_window_view

from stconv.data.features import ExtraInputs
from stconv.data.normalization import Normalizer
from stconv.data.pipeline import one_ahead, pad_batch
from stconv.data.sources import model_inputs

Predictor = Callable[[np.ndarray], jax.Array]


def predicted_batches(
    forecasters: dict[str, Predictor], batches: Iterable[dict], batch_size: int
) -> Iterator[tuple[dict, dict, dict]]:
    """Every batch, padded with zeros (False for masks) to ``batch_size`` rows so
    that a jitted forecaster compiles once, and each forecaster's predictions
    of its padded inputs.

    The next batch is sent to the forecasters before the previous one is
    yielded: JAX computes asynchronously, so the device works on it while the
    caller copies back and handles the previous predictions.

    Yields:
      ``(batch, padded, predictions)``: ``predictions`` ``{name: array}`` have
      the padded rows (`unpadded` drops them).
    """

    def dispatch(batch: dict) -> tuple[dict, dict, dict]:
        padded = pad_batch(batch, batch_size)
        return batch, padded, {name: f(padded["inputs"]) for name, f in forecasters.items()}

    return one_ahead(map(dispatch, batches))


def unpadded(array, rows: int):
    """``array`` without the rows `predicted_batches` padded it with."""
    return array[:rows] if len(array) > rows else array


def to_physical(
    predictions, normalizer: Normalizer, mask: np.ndarray, times: np.ndarray | None = None
) -> np.ndarray:
    """Normalized predictions ``(n, lead, lat, lon, channel)`` in physical
    units, float32, NaN outside ``mask`` (``(lat, lon, channel)``); ``times``
    ``(n, lead)`` the valid times, for a climatology normalization."""
    values = normalizer.denormalize(np.asarray(predictions), times)
    return np.where(mask, values, np.nan).astype(np.float32)


def field_windows(field: xr.DataArray, input_length: int, start: int, stop: int) -> np.ndarray:
    """The raw input windows ``start .. stop - 1`` of a ``(time, lat, lon, channel)``
    field, ``(stop - start, input_length, lat, lon, channel)``; reads only their frames."""
    frames = field.isel(time=slice(start, stop + input_length - 1)).values
    return np.moveaxis(sliding_window_view(frames, input_length, axis=0), -1, 1)


def field_batches(
    field: xr.DataArray,
    input_length: int,
    normalizer: Normalizer,
    batch_size: int,
    start: int = 0,
    stop: int | None = None,
    extra: ExtraInputs | None = None,
) -> Iterator[dict]:
    """``{"inputs"}`` batches of the normalized input windows ``start .. stop - 1``
    of a raw field (default every window), as the model sees them in training,
    with the ``extra`` inputs.

    Each batch reads only its ``batch_size + input_length - 1`` frames, so a
    dask-backed field larger than memory streams.
    """
    stop = field.sizes["time"] - input_length + 1 if stop is None else stop
    times = field["time"].values
    for first in range(start, stop, batch_size):
        last = min(first + batch_size, stop)
        windows = field_windows(field, input_length, first, last)
        frames = times[first : last + input_length - 1]
        window_times = sliding_window_view(frames, input_length)
        yield {"inputs": model_inputs(windows, normalizer, window_times, extra)}


class PhysicalBatches:
    """An ``on_batch`` of `stconv.evaluation.scoring.evaluate` (batches in
    order) that sees every batch in physical units: `observe` gets the truth
    (NaN outside the batch's mask), the mask, the normalized predictions and
    the batch's valid times, which `physical` turns the predictions back with.

    Args:
      normalizer: the targets' normalizer.
      valid_times: ``(window, lead)`` the target frames' times, or None.
    """

    def __init__(self, normalizer: Normalizer, valid_times: np.ndarray | None):
        self.normalizer = normalizer
        self.valid_times = valid_times
        self.count = 0

    def __call__(self, batch: dict, predictions: dict) -> None:
        rows = len(batch["targets"])
        valid = None
        if self.valid_times is not None:
            valid = self.valid_times[self.count : self.count + rows]
        mask = batch["mask"]
        truth = np.where(mask, self.normalizer.denormalize(batch["targets"], valid), np.nan)
        self.observe(truth, mask, predictions, valid)
        self.count += rows

    def physical(self, prediction, valid: np.ndarray | None) -> np.ndarray:
        """A normalized prediction (an ensemble's members first) in physical units."""
        return self.normalizer.denormalize(np.asarray(prediction), valid)

    def observe(self, truth, mask, predictions: dict, valid: np.ndarray | None) -> None:
        raise NotImplementedError
