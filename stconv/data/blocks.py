"""Reading an array a block of rows at a time, so that a dask-backed field
streams and one in memory is never copied whole (in float64, say)."""

import math

import numpy as np

# Values read at once (128 MiB in float64) from an array in memory.
BLOCK_VALUES = 2**24


def row_blocks(data) -> list[slice]:
    """Consecutive slices of ``data``'s first axis: its dask chunks, each read
    once, or rows of about `BLOCK_VALUES` values."""
    chunks = getattr(data, "chunks", None)
    if isinstance(chunks, tuple):  # dask
        stops = np.cumsum(chunks[0]).tolist()
    else:
        rows = max(1, BLOCK_VALUES // max(1, math.prod(data.shape[1:])))
        stops = [*range(rows, data.shape[0], rows), data.shape[0]]
    return [slice(start, stop) for start, stop in zip([0, *stops], stops, strict=False)]
