"""The input pipeline: shuffled, batched, prefetched, checkpointable (grain).

One epoch is one pass over a source in an order fixed by ``(seed, epoch)``.
The iterator's position is ``iterator.get_state()``; a new iterator for the
same seed and epoch continues from it after ``iterator.set_state(state)``.
With several processes (hosts), each one reads only its own rows of every
global batch: the examples of the others are never read.

A source read in blocks (a dask-backed field: ``source.read_blocks()``, the
windows that one decoded time chunk holds) is shuffled by blocks instead
(`chunk_aware_order`): the blocks in a random order, and the windows of every
``source.read_ahead`` consecutive blocks of it (8, fewer for large chunks)
shuffled together, so that each block is read once per epoch and only a
read-ahead buffer of blocks is held.
A source in memory keeps the global shuffle.
"""

from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar

import grain
import numpy as np

from stconv.checks import check_positive

T = TypeVar("T")

# Blocks (time chunks) whose windows are shuffled together, unless the source
# says (``read_ahead``): batches mix this many random times of the record.
READ_AHEAD_BLOCKS = 8


def epoch_seed(seed: int, epoch: int) -> int:
    """An independent shuffling seed for each (run seed, epoch) pair."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def chunk_aware_order(
    blocks: Sequence[np.ndarray], seed: int, buffer: int = READ_AHEAD_BLOCKS
) -> np.ndarray:
    """An epoch's order of the windows of ``blocks`` (each an array of window
    indices read together): the blocks in a random order, and the windows of
    every ``buffer`` consecutive blocks of that order shuffled together.

    Args:
      blocks: the windows of every block (`stconv.data.sources.FieldWindows.read_blocks`).
      seed: fixes the order (`epoch_seed`).
      buffer: blocks whose windows are mixed.

    Returns:
      Every window index once, ``int64``.
    """
    check_positive("buffer", buffer)
    rng = np.random.default_rng(seed)
    shuffled = [blocks[b] for b in rng.permutation(len(blocks))]
    groups = [
        rng.permutation(np.concatenate(shuffled[first : first + buffer]))
        for first in range(0, len(shuffled), buffer)
    ]
    return np.concatenate(groups).astype(np.int64) if groups else np.zeros(0, np.int64)


class Reordered:
    """``source`` read in ``order``: item ``i`` is ``source[order[i]]``."""

    def __init__(self, source, order: np.ndarray):
        self.source = source
        self.order = order

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, index: int):
        return self.source[int(self.order[index])]


def shuffled(source, seed: int, epoch: int) -> grain.MapDataset:
    """``source`` in the ``(seed, epoch)`` order: by blocks where it is read
    in blocks (`chunk_aware_order`), else a global shuffle."""
    read_blocks = getattr(source, "read_blocks", None)
    blocks = read_blocks() if read_blocks is not None else None
    if blocks is None:
        return grain.MapDataset.source(source).shuffle(seed=epoch_seed(seed, epoch))
    buffer = getattr(source, "read_ahead", READ_AHEAD_BLOCKS)
    order = chunk_aware_order(blocks, epoch_seed(seed, epoch), buffer)
    return grain.MapDataset.source(Reordered(source, order))


def epoch_batches(
    source,
    batch_size: int,
    *,
    seed: int = 0,
    epoch: int = 0,
    shuffle: bool = True,
    drop_remainder: bool = False,
    num_threads: int = 4,
    prefetch: int = 8,
    process_index: int = 0,
    process_count: int = 1,
) -> grain.DatasetIterator:
    """An iterator over one epoch of batches from ``source``.

    With ``process_count`` > 1, this process's rows of every full global
    batch of ``batch_size``: the global order is cut into local batches of
    ``batch_size // process_count`` and process ``p`` keeps local batches
    ``p, p + process_count, ...``, so global batch ``k`` is the local batches
    ``k`` of processes ``0, 1, ...`` one after another. Only those examples
    are read, but for the last, smaller batch (unless ``drop_remainder``):
    every process reads it whole, so that the processes train on the windows
    one process would (`stconv.training.distributed.global_batch`).

    Args:
      source: a random-access source (``len`` and ``[i]``) of dicts of arrays.
      batch_size: examples per (global) batch.
      seed: the run's seed; with ``epoch`` it fixes the order.
      epoch: the epoch number.
      shuffle: False keeps the source's (chronological) order; True shuffles
        globally, or by blocks for a source read in blocks (`shuffled`).
      drop_remainder: drop the last, smaller batch.
      num_threads: threads reading examples in the background (at most
        ``prefetch``: more could not run in parallel).
      prefetch: batches read ahead of the consumer (held in memory).
      process_index: this process (``jax.process_index()``).
      process_count: the processes reading the batches together (``jax.process_count()``).

    Returns:
      A grain iterator of dicts of stacked arrays, ``(batch, ...)``.
    """
    check_positive("batch_size", batch_size)
    check_processes(batch_size, process_index, process_count)
    dataset = shuffled(source, seed, epoch) if shuffle else grain.MapDataset.source(source)
    if process_count == 1:
        dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    else:
        full = len(source) // batch_size * batch_size  # the examples of full global batches
        shares = dataset[:full].batch(batch_size // process_count)
        batches = [shares[process_index::process_count]]
        if len(source) > full and not drop_remainder:
            batches.append(dataset[full:].batch(len(source) - full))  # read by every process
        dataset = grain.MapDataset.concatenate(batches)
    options = grain.ReadOptions(
        num_threads=min(num_threads, prefetch), prefetch_buffer_size=prefetch
    )
    return iter(dataset.to_iter_dataset(options))


def check_processes(batch_size: int, process_index: int, process_count: int) -> None:
    """Raises a ValueError unless the processes can split every batch evenly."""
    if not 0 <= process_index < process_count:
        raise ValueError(
            f"process_index={process_index} is invalid: must be in [0, {process_count})"
        )
    if batch_size % process_count:
        raise ValueError(
            f"batch_size={batch_size} is invalid for {process_count} processes: "
            f"choose a multiple of {process_count}"
        )


def num_batches(source, batch_size: int, drop_remainder: bool = False) -> int:
    """Batches in one epoch."""
    full, rest = divmod(len(source), batch_size)
    return full + (1 if rest and not drop_remainder else 0)


def pad_rows(array: np.ndarray, rows: int) -> np.ndarray:
    """``array`` with zero rows (False for booleans) appended up to ``rows`` rows."""
    missing = rows - len(array)
    if missing <= 0:
        return array
    return np.concatenate([array, np.zeros((missing, *array.shape[1:]), array.dtype)])


def pad_batch(batch: dict, batch_size: int) -> dict:
    """Every array of ``batch`` padded with zeros (False for masks) to ``batch_size`` rows,
    so that a jitted function sees one batch shape and compiles once."""
    return {key: pad_rows(value, batch_size) for key, value in batch.items()}


def one_ahead(items: Iterable[T]) -> Iterator[T]:
    """Yields each item once the next one has been made. JAX dispatches work
    asynchronously, so the device computes the next batch while the caller
    copies back and handles the previous one."""
    items = iter(items)
    for previous in items:
        for item in items:
            yield previous
            previous = item
        yield previous
