"""Evaluation of a model and of the simple baselines on the same windows.

The baselines (`baselines`): persistence (the last input frame), climatology
(the training split's mean of every cell) and the input mean (each cell's
mean over the input window). `add_skill` scores every forecast against
persistence and against the best baseline.
"""

from collections.abc import Callable, Iterator

import jax
import numpy as np

from stconv.data.errors import DataError
from stconv.data.pipeline import epoch_batches, one_ahead, pad_batch
from stconv.evaluation.metrics import ErrorAccumulator, skill

Predictor = Callable[[np.ndarray], jax.Array]


def persistence(inputs: np.ndarray, horizon: int) -> np.ndarray:
    """The last input frame, repeated ``horizon`` times."""
    return np.repeat(inputs[:, -1:], horizon, axis=1)


def input_mean(inputs: np.ndarray, horizon: int) -> np.ndarray:
    """Each cell's mean over the input window, for every lead time."""
    return np.repeat(inputs.mean(axis=1, keepdims=True), horizon, axis=1)


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
    climatology: np.ndarray | None = None,
    weights: np.ndarray | None = None,
) -> dict[str, dict]:
    """The scores of `stconv.evaluation.metrics` (physical units, masked, whole
    set and per lead time) of each forecaster on every window of ``source``,
    read once, in order; the ACC against ``climatology`` (normalized) if given,
    the weighted scores with the area ``weights`` if given.

    Batches are padded to ``batch_size`` (or the whole set, if smaller) and the
    padding is masked out and dropped, so a jitted forecaster compiles once.
    ``on_batch(batch, predictions)``, if given, sees every batch and the
    forecasters' predictions for it (``{name: array}``), in order.

    Raises:
      DataError: naming ``what`` (e.g. "the validation split of 'x.nc'") when
        no target cell of any window is valid: there is nothing to score.
    """
    batch_size = min(batch_size, len(source))
    accumulators = {name: ErrorAccumulator(climatology, weights) for name in forecasters}

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


BASELINES = ("persistence", "climatology", "input_mean")


def baselines(climatology: np.ndarray | None, horizon: int) -> dict[str, Predictor]:
    """Persistence, climatology (unless None: not known) and the input mean as
    forecasters (`BASELINES`)."""
    forecasters = {"persistence": lambda inputs: persistence(inputs, horizon)}
    if climatology is not None:
        forecasters["climatology"] = lambda x: climatology_forecast(climatology, x, horizon)
    forecasters["input_mean"] = lambda inputs: input_mean(inputs, horizon)
    return forecasters


def add_skill(results: dict[str, dict]) -> dict[str, dict]:
    """Adds to every forecast its skill ``1 - MSE / MSE_reference`` (area-weighted
    MSE), overall and per lead, against persistence and against the best
    baseline present (the lowest weighted RMSE): ``skill_vs_persistence``,
    ``best_baseline``, ``skill_vs_best_baseline`` and their ``..._per_lead``."""
    present = [name for name in BASELINES if name in results]
    if not present:
        return results
    best = min(present, key=lambda name: results[name]["weighted_rmse"])
    references = {"persistence": "persistence", "best_baseline": best}
    for result in results.values():
        for key, reference in references.items():
            if reference not in results:
                continue
            ref = results[reference]
            result[f"skill_vs_{key}"] = float(
                skill(result["weighted_rmse"] ** 2, ref["weighted_rmse"] ** 2)
            )
            result[f"skill_vs_{key}_per_lead"] = skill(
                np.square(result["weighted_rmse_per_lead"]),
                np.square(ref["weighted_rmse_per_lead"]),
            ).tolist()
        result["best_baseline"] = best
    return results


def name_and_score(results: dict[str, dict], model: str) -> dict[str, dict]:
    """The results of `evaluate` with the forecaster ``"model"`` named ``model``
    and every forecast's skill (`add_skill`)."""
    return add_skill({model if name == "model" else name: r for name, r in results.items()})


def format_table(results: dict[str, dict], units: str, split: str = "test") -> str:
    """A text table: one row per forecast, its scores over the whole ``split``
    and its RMSE per lead time."""
    first = next(iter(results.values()))
    leads = len(first["rmse_per_lead"])
    weighted = first.get("area_weighted", False)
    header = (
        f"{'forecast':14s} {'RMSE':>7s} {'wRMSE':>7s} {'MAE':>7s} {'bias':>7s} {'ACC':>6s} "
        f"{'skill':>7s}  " + " ".join(f"{'lead ' + str(i + 1):>7s}" for i in range(leads))
    )
    lines = [
        f"{split} scores over the whole {split} split, in {units or 'no units'}; wRMSE "
        + ("area-weighted (cos latitude)" if weighted else "= RMSE (not area-weighted)")
        + "; ACC against the training climatology; skill 1 - wMSE/wMSE of persistence; "
        "per lead time: RMSE",
        header,
    ]
    for name, result in results.items():
        per_lead = " ".join(f"{value:7.3f}" for value in result["rmse_per_lead"])
        acc = f"{result['acc']:6.3f}" if "acc" in result else f"{'-':>6s}"
        skill_ = result.get("skill_vs_persistence")
        skill_ = f"{skill_:7.3f}" if skill_ is not None else f"{'-':>7s}"
        lines.append(
            f"{name:14s} {result['rmse']:7.3f} {result['weighted_rmse']:7.3f} "
            f"{result['mae']:7.3f} {result['bias']:7.3f} {acc} {skill_}  {per_lead}"
        )
    return "\n".join(lines)


def format_summary(summary: dict[str, dict], units: str, runs: int) -> str:
    """A text table of `stconv.experiment.summarize`: mean +- std over the runs of
    RMSE and area-weighted RMSE, overall and per lead time."""
    lines = [f"mean +- std over {runs} runs, in {units or 'no units'}:"]
    for metric, label in (("rmse", "RMSE"), ("weighted_rmse", "wRMSE")):
        first = next(iter(summary.values()))[f"{metric}_per_lead"]["mean"]
        header = f"{label:14s} {'all':>15s}  " + " ".join(
            f"{'lead ' + str(i + 1):>15s}" for i in range(len(first))
        )
        lines.append(header)
        for name, metrics in summary.items():
            overall, per_lead = metrics[metric], metrics[f"{metric}_per_lead"]
            cells = [(overall["mean"], overall["std"])]
            cells += list(zip(per_lead["mean"], per_lead["std"], strict=True))
            values = [f"{mean:7.3f} +- {std:5.3f}" for mean, std in cells]
            lines.append(f"{name:14s} {values[0]:>15s}  " + " ".join(values[1:]))
    return "\n".join(lines)
