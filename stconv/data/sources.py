"""Random-access sources of training examples, read lazily one window at a time.

Both sources follow grain's ``RandomAccessDataSource`` protocol (``len`` and
``[i]``) and return ``{"inputs", "targets", "mask"}``: normalized float32
inputs ``(input_length, lat, lon, channels)`` and targets
``(horizon, lat, lon, outputs)`` of the first ``outputs`` channels (the
target variables), with NaN set to 0 (the training mean), and a boolean mask
of the target cells that count in the loss and metrics. The inputs end with
the extra channels (`stconv.data.features.ExtraInputs`: static fields and
calendar features), which are never targets.

A dask-backed field (opened with ``chunks``) is read a block at a time: the
frames of every window that starts in one of its time chunks, the chunk and
the ``length - 1`` frames after it, decoded and normalized once and kept in
a small cache (`BlockCache`) that its windows are then cut from.
`FieldWindows.read_blocks` names those windows, so that the input pipeline
can shuffle whole blocks
within a read-ahead buffer (`stconv.data.pipeline.chunk_aware_order`) and
read every block once per epoch; memory is bounded by the cache, never by
the length of the field.
"""

import itertools
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future

import numpy as np
import xarray as xr

from stconv.data.features import ExtraInputs
from stconv.data.normalization import Normalizer
from stconv.data.pipeline import READ_AHEAD_BLOCKS
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
    split = len(inputs)
    input_times, target_times = (None, None) if times is None else (times[:split], times[split:])
    inputs = model_inputs(inputs, normalizer, input_times, extra)
    targets, target_mask = model_targets(targets, normalizer, mask, outputs, target_times)
    return {"inputs": inputs, "targets": targets, "mask": target_mask}


def model_targets(
    targets: np.ndarray,
    normalizer: Normalizer,
    mask: np.ndarray,
    outputs: int,
    times: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Raw target frames ``(..., lat, lon, channel)`` as the loss sees them:
    their first ``outputs`` channels normalized (float32), 0 where a value is
    missing or outside the static ``mask``; and that mask of the cells that count."""
    targets, mask = targets[..., :outputs], mask[..., :outputs]
    target_mask = np.isfinite(targets) & mask
    normalized = normalizer.first(outputs).normalize(targets.astype(np.float32), times)
    return np.where(target_mask, normalized, 0.0).astype(np.float32), target_mask


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


class BlockCache:
    """The last ``capacity`` blocks that ``read(block)`` returned, shared by
    threads: a block is read once however many threads ask for it at once,
    and the least recently used one is dropped beyond ``capacity``."""

    def __init__(self, read: Callable[[int], np.ndarray], capacity: int):
        self.read = read
        self.capacity = capacity
        self.lock = threading.Lock()
        self.blocks: OrderedDict[int, Future] = OrderedDict()

    def __getitem__(self, block: int) -> np.ndarray:
        with self.lock:
            future = self.blocks.get(block)
            owner = future is None
            if owner:
                future = self.blocks[block] = Future()
                while len(self.blocks) > self.capacity:
                    self.blocks.popitem(last=False)
            else:
                self.blocks.move_to_end(block)
        if owner:
            try:
                future.set_result(self.read(block))
            except BaseException as error:
                future.set_exception(error)
                with self.lock:
                    if self.blocks.get(block) is future:
                        del self.blocks[block]
                raise
        return future.result()

    def __getstate__(self) -> dict:  # a copy starts empty: locks and futures do not pickle
        return {"read": self.read, "capacity": self.capacity}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["read"], state["capacity"])


# An epoch mixes the windows of `READ_AHEAD_BLOCKS` blocks
# (`stconv.data.pipeline.chunk_aware_order`), fewer where their decoded blocks
# would pass `READ_AHEAD_BYTES`. The cache holds twice as many: the reader
# threads start the next buffer's blocks while the batches of the last one are
# still being read.
READ_AHEAD_BYTES = 2**28
# The float64 bytes of a band of latitude rows a streamed field's whole series
# is read in where every time step of a cell is needed at once (`series_rows`).
ROWS_BYTES = 2**28


def read_ahead(block_bytes: int) -> int:
    """Blocks of ``block_bytes`` per read-ahead buffer: `READ_AHEAD_BLOCKS`, or
    fewer (at least 1) where two buffers would pass `READ_AHEAD_BYTES`."""
    return int(np.clip(READ_AHEAD_BYTES // max(2 * block_bytes, 1), 1, READ_AHEAD_BLOCKS))


def time_chunks(field: xr.DataArray) -> tuple[int, ...] | None:
    """The lengths of a dask-backed field's time chunks; None in memory."""
    chunks = field.chunks
    return None if chunks is None else tuple(chunks[field.get_axis_num("time")])


def chunk_starts(lengths: Sequence[int]) -> np.ndarray:
    """The first frame of every chunk of ``lengths`` frames, in order."""
    return np.cumsum((0, *lengths[:-1]))


def chunk_of(starts: np.ndarray, frames):
    """The chunk (of `chunk_starts` ``starts``) that frame or frames ``frames`` lie in."""
    return np.searchsorted(starts, frames, side="right") - 1


class FieldWindows(WindowSource):
    """Windows of a ``(time, lat, lon, channel)`` field, starting at ``starts``.

    In memory, a window's frames are sliced from the field. A dask-backed field
    is read in blocks, one per time chunk (`read_blocks`), through a
    `BlockCache` of twice `read_ahead` blocks, so a field larger than memory streams
    with bounded memory, and each frame is decoded and normalized once per
    block, not once for every window that holds it.
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
        chunks = time_chunks(field)
        self.block_lengths = chunks
        self.block_starts = None if chunks is None else chunk_starts(chunks)
        self.read_ahead, self.blocks = READ_AHEAD_BLOCKS, None
        if chunks is not None:
            frames = max(chunks) + spec.length - 1
            cell_bytes = 4 * field.sizes["channel"] + 5 * self.outputs  # inputs, targets, mask
            self.read_ahead = read_ahead(
                frames * field.sizes["lat"] * field.sizes["lon"] * cell_bytes
            )
            self.blocks = BlockCache(self.read_block, 2 * self.read_ahead)

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        start = self.starts[index]
        split, length = self.spec.input_length, self.spec.length
        times = self.frame_times[start : start + length]
        if self.blocks is None:
            frames = self.field.isel(time=slice(start, start + length)).values
            return self.example(frames[:split], frames[split:], times)
        block = self.block_of(start)
        offset = start - self.block_starts[block]
        inputs, targets, mask = (part[offset : offset + length] for part in self.blocks[block])
        inputs = (
            inputs[:split] if self.extra is None else self.extra.add(inputs[:split], times[:split])
        )
        return {
            "inputs": inputs.copy(),
            "targets": targets[split:].copy(),
            "mask": mask[split:].copy(),
        }

    def block_of(self, start: int) -> int:
        """The time chunk that frame ``start`` lies in (dask-backed fields)."""
        return int(chunk_of(self.block_starts, start))

    def read_block(self, block: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The frames of every window that starts in time chunk ``block`` (the
        chunk and the ``length - 1`` frames after it, as far as there are),
        `prepared` once for all of its windows."""
        first = int(self.block_starts[block])
        stop = first + self.block_lengths[block] + self.spec.length - 1
        frames = np.asarray(self.field.isel(time=slice(first, stop)).values)
        return self.prepared(frames, self.frame_times[first:stop])

    def prepared(
        self, frames: np.ndarray, times: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Raw consecutive ``frames`` as `make_example` makes every window's, frame
        by frame: ``(inputs, targets, mask)``, the inputs normalized with NaN set to
        0 (without the extra inputs), the first ``outputs`` channels normalized and
        masked as targets, and their mask."""
        inputs = model_inputs(frames, self.normalizer, times)
        targets, mask = model_targets(frames, self.normalizer, self.mask, self.outputs, times)
        return inputs, targets, mask

    def read_blocks(self) -> list[np.ndarray] | None:
        """The windows (indices, in order) of every block read at once: those
        that start in one time chunk of a dask-backed field; None in memory,
        where any order reads alike."""
        if self.blocks is None:
            return None
        blocks = chunk_of(self.block_starts, np.asarray(self.starts))
        bounds = np.flatnonzero(np.diff(blocks)) + 1
        return np.split(np.arange(len(self.starts)), bounds)

    def series_blocks(
        self, outputs: int | None = None, rows: slice = slice(None)
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """`series` and `series_times` a time chunk at a time (all at once in
        memory): ``(frames, times)`` of the first ``outputs`` channels (default
        all) and the latitude ``rows`` (default all)."""
        first, stop = self.starts[0], self.starts[-1] + self.spec.length
        chunks = time_chunks(self.field)
        if chunks is None:
            bounds = [first, stop]
        else:
            inner = [int(b) for b in np.cumsum(chunks) if first < b < stop]
            bounds = [first, *inner, stop]
        channels = slice(None) if outputs is None else slice(0, outputs)
        for start, end in itertools.pairwise(bounds):
            frames = self.field.isel(time=slice(start, end), lat=rows, channel=channels).values
            yield frames, self.frame_times[start:end]

    def series_rows(
        self, outputs: int | None = None, max_bytes: int | None = None
    ) -> Iterator[tuple[slice, np.ndarray]]:
        """`series` of the first ``outputs`` channels a band of latitude rows at a
        time, every time step of it: ``(rows, frames)``. In memory, one band of
        every row; streamed, bands of at most ``max_bytes`` (`ROWS_BYTES`) as
        float64, each read a time chunk at a time (the chunks are read once per band)."""
        if self.blocks is None:
            yield slice(None), self.series_frames(outputs)
            return
        steps = self.starts[-1] + self.spec.length - self.starts[0]
        channels = self.field.sizes["channel"] if outputs is None else outputs
        row_bytes = 8 * steps * self.field.sizes["lon"] * channels
        band = max(1, (max_bytes or ROWS_BYTES) // row_bytes)
        for first in range(0, self.field.sizes["lat"], band):
            rows = slice(first, first + band)
            yield rows, np.concatenate([f for f, _ in self.series_blocks(outputs, rows)])

    def series(self) -> np.ndarray:
        """The raw frames the windows are cut from, in time order ``(time, lat, lon, channel)``."""
        stop = self.starts[-1] + self.spec.length
        return self.field.isel(time=slice(self.starts[0], stop)).values

    def series_frames(self, outputs: int | None = None):
        """The frames of `series` of the first ``outputs`` channels (default all),
        indexed by position: `series` itself in memory; for a dask-backed field,
        `ChunkedFrames`, which reads only the time chunks an index asks for."""
        if self.blocks is None:
            return self.series()[..., :outputs]
        stop = self.starts[-1] + self.spec.length
        return ChunkedFrames(self.field, self.starts[0], stop, outputs)

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


class ChunkedFrames:
    """Frames ``first .. stop - 1`` of a dask-backed ``(time, lat, lon, channel)``
    field, of its first ``outputs`` channels (default all), indexed by position
    like an array: ``frames[indices]`` is ``(*indices.shape, lat, lon, outputs)``.

    Only the time chunks that hold the indices are read, through a
    `BlockCache` that keeps twice as many chunks as the largest request
    needed: requests for neighbouring times (the members of consecutive
    windows) read every chunk once.
    """

    def __init__(self, field: xr.DataArray, first: int, stop: int, outputs: int | None = None):
        channels = slice(None) if outputs is None else slice(0, outputs)
        self.field = field.isel(time=slice(first, stop), channel=channels)
        self.lengths = time_chunks(self.field)
        self.chunk_starts = chunk_starts(self.lengths)
        self.shape = self.field.shape
        self.chunks = BlockCache(self.read_chunk, 2)

    def __len__(self) -> int:
        return self.shape[0]

    def read_chunk(self, chunk: int) -> np.ndarray:
        start = int(self.chunk_starts[chunk])
        return self.field.isel(time=slice(start, start + self.lengths[chunk])).values

    def __getitem__(self, indices) -> np.ndarray:
        indices = np.asarray(indices)
        outside = indices[(indices < 0) | (indices >= len(self))]
        if outside.size:
            raise IndexError(
                f"frame index {outside.flat[0]} is invalid: must be in [0, {len(self)})"
            )
        in_chunk = chunk_of(self.chunk_starts, indices)
        needed = np.unique(in_chunk)
        self.chunks.capacity = max(self.chunks.capacity, 2 * len(needed))
        frames = np.empty((*indices.shape, *self.shape[1:]), self.field.dtype)
        for chunk in needed:
            pick = in_chunk == chunk
            frames[pick] = self.chunks[int(chunk)][indices[pick] - self.chunk_starts[chunk]]
        return frames


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

    def series_rows(self, outputs: int | None = None) -> Iterator[tuple[slice, np.ndarray]]:
        """`series` of the first ``outputs`` channels as one band of every row
        (`FieldWindows.series_rows`): the paper's samples are read in memory."""
        yield slice(None), self.series()[..., :outputs]

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
