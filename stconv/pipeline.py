"""The input pipeline: shuffled, batched, prefetched, checkpointable (grain).

One epoch is one pass over a source in an order fixed by ``(seed, epoch)``.
The iterator's position is ``iterator.get_state()``; a new iterator for the
same seed and epoch continues from it after ``iterator.set_state(state)``.
"""

import grain
import numpy as np


def epoch_seed(seed: int, epoch: int) -> int:
    """An independent shuffling seed for each (run seed, epoch) pair."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


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
) -> grain.DatasetIterator:
    """An iterator over one epoch of batches from ``source``.

    Args:
      source: a random-access source (``len`` and ``[i]``) of dicts of arrays.
      batch_size: examples per batch.
      seed: the run's seed; with ``epoch`` it fixes the order.
      epoch: the epoch number.
      shuffle: False keeps the source's (chronological) order.
      drop_remainder: drop the last, smaller batch.
      num_threads: threads reading examples in the background.
      prefetch: examples read ahead of the consumer.

    Returns:
      A grain iterator of dicts of stacked arrays, ``(batch, ...)``.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} is invalid: must be an integer >= 1")
    dataset = grain.MapDataset.source(source)
    if shuffle:
        dataset = dataset.shuffle(seed=epoch_seed(seed, epoch))
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    options = grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch)
    return iter(dataset.to_iter_dataset(options))


def num_batches(source, batch_size: int, drop_remainder: bool = False) -> int:
    """Batches in one epoch."""
    full, rest = divmod(len(source), batch_size)
    return full + (1 if rest and not drop_remainder else 0)
