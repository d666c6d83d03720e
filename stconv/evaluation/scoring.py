"""Evaluation of a model and of the simple baselines on the same windows."""

from collections.abc import Callable, Iterator

import jax
import numpy as np

from stconv.data.errors import DataError
from stconv.data.pipeline import epoch_batches, one_ahead, pad_batch
from stconv.evaluation.metrics import ErrorAccumulator

Predictor = Callable[[np.ndarray], jax.Array]


def persistence(inputs: np.ndarray, horizon: int) -> np.ndarray:
    """The last input frame, repeated ``horizon`` times."""
    return np.repeat(inputs[:, -1:], horizon, axis=1)


def climatology_forecast(climatology: np.ndarray, inputs: np.ndarray, horizon: int) -> np.ndarray:
    """The training-period mean of every cell, for every lead time."""
    return np.broadcast_to(climatology, (len(inputs), horizon, *climatology.shape))


def batches_in_order(source, batch_size: int) -> Iterator[dict]:
    return epoch_batches(source, batch_size, shuffle=False)


def evaluate(
    forecasters: dict[str, Predictor],
    source,
    std: np.ndarray,
    batch_size: int,
    on_batch: Callable[[dict, dict], None] | None = None,
    what: str = "the windows",
) -> dict[str, dict]:
    """RMSE and MAE (physical units, masked, whole set and per lead time) of each
    forecaster on every window of ``source``, read once, in order.

    Batches are padded to ``batch_size`` (or the whole set, if smaller) and the
    padding is masked out and dropped, so a jitted forecaster compiles once.
    ``on_batch(batch, predictions)``, if given, sees every batch and the
    forecasters' predictions for it (``{name: array}``), in order.

    Raises:
      DataError: naming ``what`` (e.g. "the validation split of 'x.nc'") when
        no target cell of any window is valid: there is nothing to score.
    """
    batch_size = min(batch_size, len(source))
    accumulators = {name: ErrorAccumulator() for name in forecasters}

    def dispatch(batch: dict) -> tuple[dict, dict, dict]:
        padded = pad_batch(batch, batch_size)
        return batch, padded, {name: f(padded["inputs"]) for name, f in forecasters.items()}

    for batch, padded, predictions in one_ahead(
        map(dispatch, batches_in_order(source, batch_size))
    ):
        for name, prediction in predictions.items():
            accumulators[name].add(prediction, padded["targets"], padded["mask"], std)
        if on_batch is not None:
            size = len(batch["inputs"])
            if size < batch_size:
                predictions = {name: p[:size] for name, p in predictions.items()}
            on_batch(batch, predictions)
    try:
        return {name: accumulator.result() for name, accumulator in accumulators.items()}
    except ValueError as error:
        raise DataError(f"{what}: {error}") from None


def baselines(climatology: np.ndarray, horizon: int) -> dict[str, Predictor]:
    """Persistence and climatology as forecasters."""
    return {
        "persistence": lambda inputs: persistence(inputs, horizon),
        "climatology": lambda inputs: climatology_forecast(climatology, inputs, horizon),
    }


def format_table(results: dict[str, dict], units: str) -> str:
    """A text table: one row per forecaster, RMSE and MAE overall and per lead time."""
    leads = len(next(iter(results.values()))["rmse_per_lead"])
    header = f"{'forecast':14s} {'RMSE':>7s} {'MAE':>7s}  " + " ".join(
        f"{'lead ' + str(i + 1):>7s}" for i in range(leads)
    )
    lines = [f"test RMSE and MAE over the whole test set, in {units}; per lead time: RMSE", header]
    for name, result in results.items():
        per_lead = " ".join(f"{value:7.3f}" for value in result["rmse_per_lead"])
        lines.append(f"{name:14s} {result['rmse']:7.3f} {result['mae']:7.3f}  {per_lead}")
    return "\n".join(lines)
