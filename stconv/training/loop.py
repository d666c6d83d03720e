"""`fit`: the epoch loop of every trained model, forecasting and classification alike.

Each epoch runs `stconv.training.step.train_epoch`, optionally scores the
validation set, reports a row, and saves the ``latest`` checkpoint (and the
``best`` one when the validation RMSE improved). The checkpoint's record
holds the epoch, the early-stopping state and the data iterator's position,
so a run resumed from ``latest`` ends as an uninterrupted run would.
"""

import math
import time
from collections.abc import Callable

from flax import nnx
from jax.sharding import Mesh

from stconv.training.checkpoints import Checkpoints
from stconv.training.step import TrainingError, train_epoch

Validate = Callable[[nnx.State], dict]


def initial_record() -> dict:
    """The record of a run before its first epoch."""
    return {"epoch": 0, "best_epoch": 0, "best_rmse": float("inf"), "bad_epochs": 0}


def kept(record: dict, checkpoints: Checkpoints) -> str:
    """What a stopped run keeps: its last checkpoint, or nothing yet."""
    if record["epoch"] == 0:
        return "no epoch finished, so no checkpoint was saved"
    return (
        f"the last good checkpoint (epoch {record['epoch']}) is kept in {checkpoints.workdir} "
        "(`stconv evaluate --unfinished` tests its best epoch)"
    )


def fit(
    train_step: Callable,
    state: nnx.State,
    source,
    checkpoints: Checkpoints,
    on_epoch: Callable[[dict, bool], None],
    *,
    epochs: int,
    batch_size: int,
    seed: int,
    validate: Validate | None = None,
    patience: int | None = None,
    record: dict | None = None,
    saved: dict | None = None,
    description: str = "epoch",
    mesh: Mesh | None = None,
) -> tuple[nnx.State, dict]:
    """Trains epochs ``record["epoch"] + 1 .. epochs`` of ``train_step`` on ``source``.

    Args:
      train_step, state: from `stconv.training.step.make_train_step`.
      source: the training examples (random access).
      checkpoints: where ``latest`` (every epoch) and ``best`` go.
      on_epoch: called with each epoch's row (``epoch``, ``train_loss``, the
        validation ``validation_rmse`` and ``validation_mae`` if any, and
        ``seconds``) and whether it is the best so far.
      epochs: the last epoch.
      batch_size, seed: the batches, in the ``(seed, epoch)`` order.
      validate: ``validate(state) -> {"rmse", "mae"}`` (and ``per_variable``
        RMSEs, kept in the row); with it, the best epoch is checkpointed and
        training stops after ``patience`` epochs without a lower validation RMSE.
      patience: see ``validate``; None never stops early.
      record: a restored checkpoint's record to resume from; None starts anew.
      saved: more entries for every checkpoint's record.
      description: the progress bar's label.
      mesh: split every batch over its devices (`stconv.training.distributed`).

    Returns:
      The state after the last epoch and its record.

    Raises:
      TrainingError: on a NaN or infinite loss or validation RMSE, naming the
        epoch (and step) and the last checkpoint kept.
    """
    record = dict(record or initial_record())
    for epoch in range(record["epoch"] + 1, epochs + 1):
        if patience is not None and record["bad_epochs"] >= patience:
            break
        start = time.perf_counter()
        try:
            state, train_loss, batches = train_epoch(
                train_step, state, source, batch_size, seed=seed, epoch=epoch,
                description=f"{description} {epoch}/{epochs}", mesh=mesh,
            )  # fmt: skip
        except TrainingError as error:
            raise TrainingError(f"{error}: training stopped; {kept(record, checkpoints)}") from None
        row = {"epoch": epoch, "train_loss": train_loss}
        improved = False
        if validate is not None:
            scores = validate(state)
            if not math.isfinite(scores["rmse"]):
                raise TrainingError(
                    f"validation RMSE is {scores['rmse']} at epoch {epoch}: the model diverged; "
                    f"training stopped; {kept(record, checkpoints)}"
                )
            improved = scores["rmse"] < record["best_rmse"]
            row.update(validation_rmse=scores["rmse"], validation_mae=scores["mae"])
            if "per_variable" in scores:  # several targets: each one's RMSE
                row["validation_rmse_per_variable"] = scores["per_variable"]
            record.update(
                best_epoch=epoch if improved else record["best_epoch"],
                best_rmse=scores["rmse"] if improved else record["best_rmse"],
                bad_epochs=0 if improved else record["bad_epochs"] + 1,
            )
        record.update(epoch=epoch, iterator=batches.get_state(), **(saved or {}))
        row["seconds"] = time.perf_counter() - start
        on_epoch(row, improved)
        if improved:
            checkpoints.save("best", epoch, state, record)
        checkpoints.save("latest", epoch, state, record)
    return state, record
