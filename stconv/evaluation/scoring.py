"""Evaluation of a model and of the simple baselines on the same windows.

`evaluate` scores forecasters on every window of a split, per target
variable, beside the simple forecasts of `stconv.evaluation.baselines`
(those that need the windows' times are carried by the windows), with a
confidence interval for every score and the model's paired differences with
each baseline (`stconv.evaluation.significance`, a block bootstrap over
the windows). `score_run` scores a trained run's forecasts that way;
`add_skill` scores every forecast against persistence and against the best
baseline; `name_and_score` gives the results their layout: one entry per
target variable, each ``{forecast: scores}`` in its own units.
"""

import dataclasses
from collections.abc import Callable, Iterator

import numpy as np

from stconv.data.climatology import Climatology
from stconv.data.errors import DataError
from stconv.data.normalization import Normalizer
from stconv.data.pipeline import epoch_batches
from stconv.evaluation import event_scoring, significance
from stconv.evaluation.baselines import (
    CLIMATOLOGICAL_ENSEMBLE,
    WithClimatologicalEnsemble,
    WithTimedBaselines,
    baselines,
    training_damping,
)
from stconv.evaluation.ensemble import EnsembleAccumulator
from stconv.evaluation.event_scoring import EventScoring, event_thresholds
from stconv.evaluation.inference import Predictor, predicted_batches, unpadded
from stconv.evaluation.metrics import ErrorAccumulator, grid_weights
from stconv.evaluation.predictors import members_of
from stconv.evaluation.scores import BASELINES as BASELINES  # the baselines' names
from stconv.evaluation.scores import PER_LEAD, as_dataset, as_results, scored, with_skill

# Batches an evaluation reads ahead: each holds the windows' baselines too
# (several times a training batch), and the forward pass needs only the next.
EVAL_PREFETCH = 2


def batches_in_order(source, batch_size: int) -> Iterator[dict]:
    return epoch_batches(source, batch_size, shuffle=False, prefetch=EVAL_PREFETCH)


def evaluate(
    forecasters: dict[str, Predictor],
    source,
    std: np.ndarray,
    batch_size: int,
    on_batch: Callable[[dict, dict], None] | None = None,
    what: str = "the windows",
    climatology: np.ndarray | None = None,
    weights: np.ndarray | None = None,
    ensembles: tuple[str, ...] = (),
    bootstrap: int = 1000,
) -> dict[str, dict]:
    """The scores of `stconv.evaluation.metrics` (physical units, masked, whole
    set and per lead time) of each forecaster on every window of ``source``,
    read once, in order; the ACC against ``climatology`` (normalized) if given,
    or against the climatology the windows carry (`WithTimedBaselines`), the
    weighted scores with the area ``weights`` if given. A forecaster that is
    None is read from the batches under its name (``"climatology"``).

    Batches are padded to ``batch_size`` (or the whole set, if smaller) and the
    padding is masked out and dropped, so a jitted forecaster compiles once.
    ``on_batch(batch, predictions)``, if given, sees every batch and the
    forecasters' predictions for it (``{name: array}``), in order.

    The forecasters named in ``ensembles`` give members ``(members, batch,
    ...)`` (read from the batches, ``(batch, members, ...)``): their ensemble
    mean is scored as a forecast. Where there are ensembles, every forecast's
    scores get ``"ensemble"``, the scores of `stconv.evaluation.ensemble`
    (a single forecast as an ensemble of one: its CRPS is its weighted MAE).
    With ``bootstrap`` resamples (0: none), every score gets its confidence
    and the model (``"model"``, else the first forecaster) its paired
    differences with the others (`with_confidence`).

    Raises:
      DataError: naming ``what`` (e.g. "the validation split of 'x.nc'") when
        no target cell of any window is valid: there is nothing to score.
    """
    batch_size = min(batch_size, len(source))
    carried = isinstance(source, WithTimedBaselines)
    accumulators = {
        name: ErrorAccumulator(climatology, weights, batch_climatology=carried)
        for name in forecasters
    }
    spreads = {name: EnsembleAccumulator(weights) for name in forecasters} if ensembles else {}
    batches = batches_in_order(source, batch_size)
    computed = {name: f for name, f in forecasters.items() if f is not None}
    for batch, padded, predictions in predicted_batches(computed, batches, batch_size):
        size = len(batch["inputs"])
        predictions = {
            name: predictions[name] if name in predictions else from_batch(padded, name, ensembles)
            for name in forecasters
        }
        reference = padded.get("climatology")
        targets, mask = padded["targets"], padded["mask"]
        for name, prediction in predictions.items():
            several = name in ensembles
            mean = prediction.mean(axis=0) if several else prediction
            accumulators[name].add(mean, targets, mask, std, reference, rows=size)
            if spreads:
                spreads[name].add(prediction if several else prediction[None], targets, mask, std)
        if on_batch is not None:
            on_batch(
                batch,
                {
                    name: p[:, :size] if name in ensembles else unpadded(p, size)
                    for name, p in predictions.items()
                },
            )
    return accumulated(accumulators, spreads, what, bootstrap)


def accumulated(
    accumulators: dict[str, ErrorAccumulator],
    spreads: dict[str, EnsembleAccumulator],
    what: str,
    bootstrap: int,
) -> dict[str, list[dict]]:
    """`evaluate`'s scores of what its accumulators hold: per forecaster, one
    result per target variable, with the ensemble scores and the intervals.

    Data beyond what can be scored give scores that are not finite: numpy's
    warnings of them are left out, and `check_finite` refuses them by name.
    """
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        try:
            results = {name: accumulator.result() for name, accumulator in accumulators.items()}
        except ValueError as error:
            raise DataError(f"{what}: {error}") from None
        for name, spread in spreads.items():
            for scores, ensemble in zip(results[name], spread.result(), strict=True):
                scores["ensemble"] = ensemble
        if bootstrap:
            tested = "model" if "model" in accumulators else next(iter(accumulators))
            with_confidence(results, accumulators, tested, bootstrap)
    return results


def with_confidence(
    results: dict[str, list[dict]],
    accumulators: dict[str, ErrorAccumulator],
    tested: str,
    replicates: int,
    level: float = 0.95,
) -> None:
    """Adds to every record of ``results`` (per forecaster, per channel) the
    95% interval of each score, overall and per lead time, and to
    ``tested``'s its paired differences with every other forecaster, from
    one circular block bootstrap of the windows
    (`stconv.evaluation.significance.bootstrap`, seed 0: the same resamples
    for every forecaster and every run), in the layout of
    `stconv.evaluation.confidence`."""
    metrics = accumulators[tested].metrics
    values = {name: overall_value(metric.value) for name, metric in metrics}
    values.update({f"{name}{PER_LEAD}": metric.value for name, metric in metrics})
    sums = {name: accumulator.window_sums() for name, accumulator in accumulators.items()}
    found = significance.bootstrap(sums, values, tested, replicates, seed=0, level=level)
    leads = range(next(iter(sums[tested].values())).shape[1])
    windows = len(next(iter(sums[tested].values())))
    settings = {
        "replicates": replicates, "windows": windows, "block_length": found["block"],
        "level": level,
    }  # fmt: skip
    for name, records in results.items():
        bounds = found["interval"][name]
        for channel, record in enumerate(records):
            record["interval"] = {m: pair(bounds[m], channel) for m, _ in metrics}
            record["interval_per_lead"] = {
                m: [pair(bounds[m + PER_LEAD], (lead, channel)) for lead in leads]
                for m, _ in metrics
            }
            record["bootstrap"] = dict(settings)
    for channel, record in enumerate(results[tested]):
        record["versus"] = {
            other: {
                m: {
                    "difference": float(paired[m]["difference"][channel]),
                    "interval": pair(paired[m]["interval"], channel),
                    "p_value": float(paired[m]["p_value"][channel]),
                }
                for m, _ in metrics
            }
            for other, paired in found["comparison"].items()
        }


def overall_value(value: Callable[[dict], np.ndarray]) -> Callable[[dict], np.ndarray]:
    """A metric's value over every lead time: of its sums summed over the lead axis."""
    return lambda sums: value({name: s.sum(axis=-2) for name, s in sums.items()})


def pair(bounds: tuple[np.ndarray, np.ndarray], index) -> list[float]:
    """``[low, high]`` of an interval's arrays at ``index``."""
    return [float(bounds[0][index]), float(bounds[1][index])]


def from_batch(padded: dict, name: str, ensembles: tuple[str, ...]) -> np.ndarray:
    """The forecast ``name`` the batch carries (`WithTimedBaselines`,
    `WithClimatologicalEnsemble`); an ensemble's members first."""
    values = padded[name]
    return np.moveaxis(values, 1, 0) if name in ensembles else values


def add_skill(results: dict[str, dict]) -> dict[str, dict]:
    """Adds to every forecast of one variable's ``results`` (``{forecast:
    scores}``) its skill (`stconv.evaluation.scores.with_skill`): against
    persistence and against the best baseline present (the lowest weighted
    RMSE), ``skill_vs_persistence``, ``best_baseline``,
    ``skill_vs_best_baseline`` and their ``..._per_lead``."""
    if not any(name in results for name in BASELINES):
        return results
    skilled = as_results(with_skill(as_dataset({"": results})))[""]
    for name, result in results.items():
        skills = {k: v for k, v in skilled[name].items() if k.startswith("skill_vs_")}
        result.update(skills, best_baseline=skilled[name]["best_baseline"])
    return results


class ScoreError(RuntimeError):
    """A score that is not a finite number: the forecasts or the data hold
    values no computation should have met."""


def check_finite(results: dict[str, dict], what: str) -> None:
    """Raises ScoreError naming the forecast, variable and score when a score of
    `name_and_score`'s ``results`` is not finite: it is never written as a number."""
    for variable, forecasts in results.items():
        for forecast, scores in forecasts.items():
            for name, value in scores.items():
                values = value if isinstance(value, list) else [value]
                numbers = [v for v in values if isinstance(v, float)]
                if not all(np.isfinite(numbers)):
                    raise ScoreError(
                        f"{what}: the {forecast} forecast of {variable} scores {name} = "
                        f"{value}: not a finite number, so nothing was written; the data or "
                        "the model hold values beyond what can be scored"
                    )


def name_and_score(
    results: dict[str, list[dict]],
    model: str,
    variables: list[str],
    units: list[str],
    climatology: str | None = None,
) -> dict[str, dict]:
    """The results of `evaluate` in the layout of ``results.json``
    (`stconv.evaluation.scores.as_results` of `stconv.evaluation.scores.scored`):
    per target variable (in channel order), ``{forecast: scores}`` with the
    forecaster ``"model"`` named ``model``, each forecast's scores with the
    variable's ``units``, the ``climatology`` its ACC and the climatology
    forecast used (`stconv.data.climatology.Climatology.describe`; left out
    when there was none) and its skill."""
    return as_results(scored(results, model, variables, units, climatology))


@dataclasses.dataclass(frozen=True)
class RunScoring:
    """What scoring a trained run's forecasts takes (`score_run`).

    Attributes:
      model: the model's name, the forecast's in the results.
      targets: the variables forecast (the first channels).
      units: the targets' units.
      normalizer: the training statistics of every channel.
      climatology: the training climatology (physical units), or None (not recorded).
      horizon: the lead times of every forecast.
      batch_size: windows per batch.
      area_weights: weight scores by cell area where the rows are latitudes.
      geographic: the grid's rows are latitudes.
      bootstrap: resamples of the windows for the scores' confidence (0: none).
      thresholds: the event thresholds (`stconv.evaluation.event_scoring`).
      neighbourhoods: the fractions skill score's neighbourhoods, in cells.
    """

    model: str
    targets: tuple[str, ...]
    units: tuple[str, ...]
    normalizer: Normalizer
    climatology: Climatology | None
    horizon: int
    batch_size: int
    area_weights: bool = True
    geographic: bool = True
    bootstrap: int = 1000
    thresholds: str | None = None
    neighbourhoods: tuple[int, ...] = (1, 3, 5)

    @property
    def outputs(self) -> int:
        return len(self.targets)


def score_run(
    predict: Predictor,
    run: RunScoring,
    source,
    lat: np.ndarray,
    what: str,
    on_batch: Callable[[dict, dict], None] | None = None,
    on_run_grid: bool = True,
    train=None,
) -> dict[str, dict]:
    """The scores of ``predict``'s forecasts (`stconv.evaluation.predictors`) of
    every window of ``source`` beside the baselines, in the layout of
    `name_and_score`, checked finite; as `stconv.runs.forecaster.Forecaster.score`
    documents. An ensemble predictor is scored by its mean and gets the
    ensemble scores; with ``train`` (the training split) beside the
    climatological ensemble of its frames, where they have times."""
    outputs = run.outputs
    ensembles = ("model",) if members_of(predict) else ()
    train_times = None if train is None else train.series_times()
    known = run.climatology is not None and on_run_grid
    if ensembles and known and train_times is not None:
        source = WithClimatologicalEnsemble(
            source, train.series_frames(outputs), train_times,
            run.climatology.first(outputs), run.normalizer.first(outputs),
            f"{what}: the training split",
        )  # fmt: skip
        ensembles += (CLIMATOLOGICAL_ENSEMBLE,)
    damping = None
    if known and train_times is not None and run.climatology.kind != "annual":
        damping = training_damping(train, outputs, run.climatology.first(outputs), run.horizon)
    climatology, source = reference(run, source, on_run_grid, damping)
    carried = source.carried if isinstance(source, WithTimedBaselines) else ()
    forecasters = {"model": predict, **baselines(climatology, run.horizon, outputs, carried)}
    forecasters.update({name: None for name in ensembles[1:]})  # carried by the windows
    weights = grid_weights(lat if run.geographic else None, run.area_weights, what)
    constant = climatology if isinstance(climatology, np.ndarray) else None
    scoring_events = event_scoring_of(run, source, train, tuple(forecasters), ensembles)
    results = evaluate(
        forecasters, source, run.normalizer.std[:outputs], run.batch_size,
        both(on_batch, scoring_events), what=what, climatology=constant, weights=weights,
        ensembles=ensembles, bootstrap=run.bootstrap,
    )  # fmt: skip
    if scoring_events is not None:
        for name, per_target in scoring_events.results().items():
            for record, entry in zip(results[name], per_target, strict=True):
                record[event_scoring.KEY] = entry
    described = run.climatology.describe() if climatology is not None else None
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):  # as in `evaluate`
        named = name_and_score(results, run.model, list(run.targets), list(run.units), described)
    check_finite(named, what)
    return named


def event_scoring_of(
    run: RunScoring, source, train, forecasts: tuple[str, ...], ensembles: tuple[str, ...]
) -> EventScoring | None:
    """The event scoring of ``run``'s evaluation of ``source``'s windows
    (`stconv.evaluation.event_scoring`), or None where no target has thresholds;
    percentiles from ``train``'s frames (the training split), where given."""
    mask = source.mask[..., : run.outputs]

    def training_frames():  # read only for percentiles, a band of rows at a time
        if train is None:
            return None
        bands = train.series_rows(run.outputs)
        return (np.where(mask[rows], frames, np.nan) for rows, frames in bands)

    chosen = event_thresholds(run.thresholds, run.targets, run.units, training_frames, mask.shape)
    if chosen is None:
        return None
    valid_times = source.valid_times()
    normalizer = run.normalizer.first(run.outputs)
    return EventScoring(*chosen, run.neighbourhoods, forecasts, ensembles, normalizer, valid_times)


def both(first, second):
    """An ``on_batch`` that calls ``first`` and ``second`` (either may be None)."""
    if first is None or second is None:
        return first or second

    def call(batch: dict, predictions: dict) -> None:
        first(batch, predictions)
        second(batch, predictions)

    return call


def reference(run: RunScoring, source, on_run_grid: bool = True, damping=None):
    """The climatology forecast of ``source``'s windows and the ACC's
    reference: ``(climatology, source)``, with ``climatology`` the
    normalized ``(lat, lon, targets)`` mean of every cell for annual data,
    ``"carried"`` for a climatology by time of year (then ``source``'s
    windows carry it and the anomaly persistence, damped by ``damping``
    where given: `WithTimedBaselines`), or None where it is not known
    (another grid, runs of old versions)."""
    if run.climatology is None or not on_run_grid:
        return None, source
    normalizer = run.normalizer.first(run.outputs)
    climatology = run.climatology.first(run.outputs)
    if climatology.kind == "annual":
        values = normalizer.normalize(climatology.values[0])
        return np.nan_to_num(values, nan=0.0).astype(np.float32), source
    return "carried", WithTimedBaselines(source, climatology, normalizer, damping)
