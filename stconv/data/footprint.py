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

from stconv.data.sources import read_ahead

# Fitted to the peaks of one epoch of `stconv train` on a 48 x 96 daily field
# of 8,000 and 32,000 steps (0.15 and 0.59 GB; benchmark_data-streaming.md):
# in memory 1.68 and 3.39 GiB (this model: 1.66 and 3.32), streamed 1.58 and
# 1.71 GiB (this model: 1.61 for both).
# A run in memory: the process (Python, JAX, XLA's compiled steps, the
# prefetched batches) and the float32 copies of the field it holds at its
# peak (the field, its windows' batches, the evaluation's forecasts).
PROCESS_BYTES = 1_200_000_000
IN_MEMORY_COPIES = 4
# A streamed run: the process, and each split's cache of decoded blocks (two
# read-ahead buffers, `stconv.data.sources.read_ahead`), a block decoded
# taking `DECODED_PER_RAW` times its stored float32 bytes (inputs, targets, mask).
STREAMED_PROCESS_BYTES = 1_600_000_000
DECODED_PER_RAW = 2.25
SPLITS = 3
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


def streamed_bytes(shape: tuple[int, ...], time_chunk: int) -> int:
    """The peak memory of a run that reads its field of ``shape`` in blocks
    of ``time_chunk`` steps: independent of the field's length."""
    block = DECODED_PER_RAW * field_bytes((min(time_chunk, shape[0]), *shape[1:]))
    return int(STREAMED_PROCESS_BYTES + SPLITS * 2 * read_ahead(int(block)) * block)


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
