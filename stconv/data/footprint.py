"""The memory a run needs: its data in memory or streamed, against this machine's.

    in_memory_bytes((10_000, 96, 192, 1))  # ~ what `stconv train` peaks at
    time_chunk_for((10_000, 96, 192, 1))   # None if it fits, else the steps to stream by

The estimates are linear models fitted to the peak resident memory of
``stconv train`` measured by ``experiments/benchmark_data.py memory``
(``experiments/results/benchmark_data-streaming.md``); they say what to
expect, not a bound.
"""

import os

import numpy as np

# Linear models of the peak resident memory of one epoch of `stconv train`
# (the smallest STConvS2S-R, batch 32, eval batch 64, 5 -> 5 windows, daily t2m
# in chunks of 64 days), `experiments/benchmark_data.py memory`
# (experiments/results/benchmark_data-streaming.md).
# In memory, fitted on 48 x 96 at 8,000 and 32,000 days (0.15 and 0.59 GB):
# measured 1.68 and 3.39 GiB, this model 1.66 and 3.31 GiB. The process
# (Python, JAX, XLA's compiled steps, prefetched batches) and the float32
# copies of the field a run holds at its peak (the field, its batches, the
# evaluation's forecasts).
PROCESS_BYTES = 1_200_000_000
IN_MEMORY_COPIES = 4
# Streamed: a process's part and a part per grid cell (and variable): the
# decoded blocks each split caches, the batches read ahead and an evaluation
# batch with its baselines, none of which grows with the length. Fitted on 48
# x 96 at 32,000 days (1.71 GiB, measured while an evaluation still read 8
# batches ahead, not 2: an upper estimate) and 96 x 192 at 10,000 days (3.39 GiB).
STREAMED_PROCESS_BYTES = 1_235_000_000
STREAMED_CELL_BYTES = 130_000
# The raw bytes of a block a run streams by when it chooses its own.
DEFAULT_BLOCK_BYTES = 16 * 2**20
# The share of this machine's memory a run in memory may take before it streams.
MEMORY_SHARE = 0.5


def physical_memory() -> int:
    """The bytes of memory of this machine."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def memory_budget() -> int:
    """The bytes a run may take: `MEMORY_SHARE` of this machine's memory."""
    return int(MEMORY_SHARE * physical_memory())


def field_bytes(shape: tuple[int, ...]) -> int:
    """The bytes of a float32 field of ``shape`` ``(time, lat, lon, channels)``."""
    return int(np.prod(shape, dtype=np.int64)) * 4


def in_memory_bytes(shape: tuple[int, ...]) -> int:
    """The peak memory of a run that loads its field of ``shape``."""
    return PROCESS_BYTES + IN_MEMORY_COPIES * field_bytes(shape)


def streamed_bytes(shape: tuple[int, ...]) -> int:
    """The peak memory of a run that reads its field of ``shape`` in blocks:
    independent of the field's length."""
    cells = int(np.prod(shape[1:], dtype=np.int64))
    return STREAMED_PROCESS_BYTES + STREAMED_CELL_BYTES * cells


def block_steps(
    shape: tuple[int, ...], stored_chunk: int | None = None, block_bytes: int = DEFAULT_BLOCK_BYTES
) -> int:
    """The time steps of a block of about ``block_bytes`` (at least one),
    whole chunks of ``stored_chunk`` steps if the file stores the field so."""
    steps = max(1, block_bytes // field_bytes((1, *shape[1:])))
    return max(1, steps // stored_chunk) * stored_chunk if stored_chunk else steps


def time_chunk_for(shape: tuple[int, ...], stored_chunk: int | None = None) -> int | None:
    """None when a run of a field of ``shape`` fits `memory_budget` in
    memory; else the steps to stream it by (`block_steps`, in whole chunks
    of the file's ``stored_chunk``)."""
    if in_memory_bytes(shape) <= memory_budget():
        return None
    return block_steps(shape, stored_chunk)
