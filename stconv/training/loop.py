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

from stconv.config.sections import TrainingConfig
from stconv.training.checkpoints import Checkpoints
from stconv.training.step import TrainingError, train_epoch

Validate = Callable[[nnx.State], dict]


def initial_record() -> dict:
    """The record of a run before its first epoch."""
    return {"epoch": 0, "best_epoch": 0, "best_rmse": float("inf"), "bad_epochs": 0}


def kept(record: dict, checkpoints: Checkpoints) -> str:
    """What a stopped run keeps: its last checkpoint, or nothing yet (naming
    ``{evaluate_run}``, the call that tests it: `stopped`)."""
    if record["epoch"] == 0:
        return "no epoch finished, so no checkpoint was saved"
    return (
        f"the last good checkpoint (epoch {record['epoch']}) is kept in {checkpoints.workdir} "
        "(`{evaluate_run}` tests its best epoch)"
    )


def stopped(message: str, record: dict, checkpoints: Checkpoints) -> TrainingError:
    """The error of a training stopped so, saying what it keeps (`kept`)."""
    return TrainingError(
        f"{message}; {kept(record, checkpoints)}", evaluate_run={"unfinished": True}
    )


def fit(
    train_step: Callable,
    state: nnx.State,
    source,
    checkpoints: Checkpoints,
    on_epoch: Callable[[dict, bool], None],
    training: TrainingConfig,
    *,
    validate: Validate | None = None,
    record: dict | None = None,
    saved: dict | None = None,
    description: str = "epoch",
    mesh: Mesh | None = None,
) -> tuple[nnx.State, dict]:
    """Trains epochs ``record["epoch"] + 1 .. training.epochs`` of ``train_step``
    on ``source``.

    Args:
      train_step, state: from `stconv.training.step.make_train_step`.
      source: the training examples (random access).
      checkpoints: where ``latest`` (every epoch) and ``best`` go.
      on_epoch: called with each epoch's row (``epoch``, ``train_loss``, the
        validation ``validation_rmse`` and ``validation_mae`` if any, and
        ``seconds``) and whether it is the best so far.
      training: the training section: ``epochs`` (the last epoch),
        ``batch_size`` and ``seed`` (the batches, in the ``(seed, epoch)``
        order) and ``patience`` (see ``validate``).
      validate: ``validate(state) -> {"rmse", "mae"}`` (and ``per_variable``
        RMSEs, kept in the row); with it, the best epoch is checkpointed and
        training stops after ``training.patience`` epochs without a lower
        validation RMSE (`validated`); without it, training never stops early.
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
    epochs = training.epochs
    for epoch in range(record["epoch"] + 1, epochs + 1):
        if validate is not None and record["bad_epochs"] >= training.patience:
            break
        start = time.perf_counter()
        try:
            state, train_loss, batches = train_epoch(
                train_step, state, source, training.batch_size, seed=training.seed, epoch=epoch,
                description=f"{description} {epoch}/{epochs}", mesh=mesh,
            )  # fmt: skip
        except TrainingError as error:
            raise stopped(f"{error}: training stopped", record, checkpoints) from None
        row = {"epoch": epoch, "train_loss": train_loss}
        improved = False
        if validate is not None:
            scores, improved = validated(validate(state), epoch, record, checkpoints)
            row.update(scores)
        record.update(epoch=epoch, iterator=batches.get_state(), **(saved or {}))
        row["seconds"] = time.perf_counter() - start
        on_epoch(row, improved)
        if improved:
            checkpoints.save("best", epoch, state, record)
        checkpoints.save("latest", epoch, state, record)
    return state, record


def validated(
    scores: dict, epoch: int, record: dict, checkpoints: Checkpoints
) -> tuple[dict, bool]:
    """The validation entries of epoch ``epoch``'s row from its ``scores``
    (`fit`'s ``validate``), and whether it is the best epoch so far; updates
    the early-stopping state of ``record``.

    Raises:
      TrainingError: for a NaN or infinite validation RMSE (`stopped`).
    """
    rmse = scores["rmse"]
    if not math.isfinite(rmse):
        message = (
            f"validation RMSE is {rmse} at epoch {epoch}: the model diverged; training stopped"
        )
        raise stopped(message, record, checkpoints)
    improved = rmse < record["best_rmse"]
    row = {"validation_rmse": rmse, "validation_mae": scores["mae"]}
    if "per_variable" in scores:  # several targets: each one's RMSE
        row["validation_rmse_per_variable"] = scores["per_variable"]
    record.update(
        best_epoch=epoch if improved else record["best_epoch"],
        best_rmse=rmse if improved else record["best_rmse"],
        bad_epochs=0 if improved else record["bad_epochs"] + 1,
    )
    return row, improved
