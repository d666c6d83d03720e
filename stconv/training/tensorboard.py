"""Per-epoch scalars as TensorBoard event files, beside ``metrics.jsonl``.

Written with tensorboardX (the optional ``tensorboard`` extra:
``pip install 'stconv[tensorboard]'``); without it, runs log to
``metrics.jsonl`` only. View with ``tensorboard --logdir RUN/tensorboard``.
"""

import os

SCALARS = ("train_loss", "validation_rmse", "validation_mae")


class EpochWriter:
    """Writes each epoch's row (`stconv.training.loop.fit`) to ``logdir``, if tensorboardX
    is installed; else nothing. Its event file is made at the first row: a
    session that trains no epoch (a resumption that fails) adds none."""

    def __init__(self, logdir: str | os.PathLike):
        self.logdir, self.writer = os.fspath(logdir), None

    def write(self, row: dict) -> None:
        if self.writer is None:
            try:
                from tensorboardX import SummaryWriter
            except ImportError:
                return
            self.writer = SummaryWriter(self.logdir)
        for name in SCALARS:
            if name in row:
                self.writer.add_scalar(name.replace("_", "/", 1), row[name], row["epoch"])
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
