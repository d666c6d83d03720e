"""Evaluation of a model and of the simple baselines on the same windows.

`evaluate` scores forecasters on every window of a split, per target
variable. The baselines (`baselines`): persistence (the last input frame),
climatology (the training split's climatology, by time of year where the
data have seasons: `stconv.data.climatology`) and the input mean (each
cell's mean over the input window), of the target variables (the first
channels). A climatology by time of year differs per window: the windows
then carry it (`WithClimatology`). `add_skill` scores every forecast against persistence and against
the best baseline; `name_and_score` gives the results their layout: one
entry per target variable, each ``{forecast: scores}`` in its own units.
"""

import dataclasses
from collections.abc import Callable, Iterator

import numpy as np

from stconv.data.climatology import Climatology, member_frames
from stconv.data.errors import DataError
from stconv.data.normalization import Normalizer
from stconv.data.pipeline import epoch_batches
from stconv.evaluation.ensemble import EnsembleAccumulator
from stconv.evaluation.inference import Predictor, predicted_batches, unpadded
from stconv.evaluation.metrics import ErrorAccumulator, grid_weights
from stconv.evaluation.predictors import members_of
from stconv.evaluation.scores import BASELINES as BASELINES  # the baselines' names
from stconv.evaluation.scores import as_dataset, as_results, scored, with_skill


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


class WithClimatology:
    """The windows of ``source`` with the climatology at their target frames'
    times, normalized, under ``"climatology"`` (``(horizon, lat, lon,
    outputs)``): the climatology forecast, and the ACC's reference.

    Args:
      source: windows with their valid times (`stconv.data.sources.FieldWindows`).
      climatology: the targets' climatology, physical units.
      normalizer: the targets' normalizer.
    """

    def __init__(self, source, climatology: Climatology, normalizer: Normalizer):
        self.source = source
        self.climatology = climatology
        self.normalizer = normalizer
        self.valid_times = source.valid_times()

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> dict:
        times = self.valid_times[index]
        values = self.normalizer.normalize(self.climatology.at(times), times)
        reference = np.nan_to_num(values, nan=0.0).astype(np.float32)
        return {**self.source[index], "climatology": reference}


CLIMATOLOGICAL_ENSEMBLE = "climatological_ensemble"


class WithClimatologicalEnsemble:
    """The windows of ``source`` with the climatological ensemble of their
    target frames, normalized, under ``"climatological_ensemble"``
    (``(members, horizon, lat, lon, outputs)``): the training split's values
    at the same time of year, one member per training year
    (`stconv.data.climatology.member_frames`; every training frame for annual data).

    Args:
      source: windows with their valid times (`stconv.data.sources.FieldWindows`).
      train: ``(time, lat, lon, outputs)`` the training split's frames of the
        targets, physical units.
      train_times: their times.
      climatology: the targets' climatology (its slots pair the times of year).
      normalizer: the targets' normalizer.
      what: the data, for errors.
    """

    def __init__(
        self,
        source,
        train: np.ndarray,
        train_times: np.ndarray,
        climatology: Climatology,
        normalizer: Normalizer,
        what: str = "the training split",
    ):
        self.source = source
        self.valid = source.valid_times()
        self.train = train
        self.frames = member_frames(climatology, train_times, what)
        self.climatology = climatology
        self.normalizer = normalizer

    def __len__(self) -> int:
        return len(self.source)

    def valid_times(self) -> np.ndarray:
        return self.valid

    def __getitem__(self, index: int) -> dict:
        times = self.valid[index]
        frames = self.frames[self.climatology.index(times)].T  # (members, horizon)
        values = self.normalizer.normalize(self.train[frames], np.broadcast_to(times, frames.shape))
        members = np.nan_to_num(values, nan=0.0).astype(np.float32)
        return {**self.source[index], CLIMATOLOGICAL_ENSEMBLE: members}


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
) -> dict[str, dict]:
    """The scores of `stconv.evaluation.metrics` (physical units, masked, whole
    set and per lead time) of each forecaster on every window of ``source``,
    read once, in order; the ACC against ``climatology`` (normalized) if given,
    or against the climatology the windows carry (`WithClimatology`), the
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

    Raises:
      DataError: naming ``what`` (e.g. "the validation split of 'x.nc'") when
        no target cell of any window is valid: there is nothing to score.
    """
    batch_size = min(batch_size, len(source))
    carried = isinstance(source, WithClimatology)
    accumulators = {
        name: ErrorAccumulator(climatology, weights, batch_climatology=carried)
        for name in forecasters
    }
    spreads = {name: EnsembleAccumulator(weights) for name in forecasters} if ensembles else {}
    batches = batches_in_order(source, batch_size)
    computed = {name: f for name, f in forecasters.items() if f is not None}
    for batch, padded, predictions in predicted_batches(computed, batches, batch_size):
        predictions = {
            name: predictions[name] if name in predictions else from_batch(padded, name, ensembles)
            for name in forecasters
        }
        reference = padded.get("climatology")
        targets, mask = padded["targets"], padded["mask"]
        for name, prediction in predictions.items():
            several = name in ensembles
            mean = prediction.mean(axis=0) if several else prediction
            accumulators[name].add(mean, targets, mask, std, reference)
            if spreads:
                spreads[name].add(prediction if several else prediction[None], targets, mask, std)
        if on_batch is not None:
            size = len(batch["inputs"])
            on_batch(
                batch,
                {
                    name: p[:, :size] if name in ensembles else unpadded(p, size)
                    for name, p in predictions.items()
                },
            )
    try:  # per forecaster, one result per target variable
        results = {name: accumulator.result() for name, accumulator in accumulators.items()}
    except ValueError as error:
        raise DataError(f"{what}: {error}") from None
    for name, spread in spreads.items():
        for scores, ensemble in zip(results[name], spread.result(), strict=True):
            scores["ensemble"] = ensemble
    return results


def from_batch(padded: dict, name: str, ensembles: tuple[str, ...]) -> np.ndarray:
    """The forecast ``name`` the batch carries (`WithClimatology`,
    `WithClimatologicalEnsemble`); an ensemble's members first."""
    values = padded[name]
    return np.moveaxis(values, 1, 0) if name in ensembles else values


def baselines(
    climatology: np.ndarray | str | None, horizon: int, outputs: int | None = None
) -> dict[str, Predictor | None]:
    """Persistence, climatology and the input mean as forecasters (`BASELINES`)
    of the first ``outputs`` channels (the target variables; default all).

    ``climatology``: ``(lat, lon, channels)`` normalized, the same for every
    window; ``"carried"`` where the windows carry it (`WithClimatology`: the
    forecaster is then None, `evaluate` reads it); None where it is not known.
    """
    forecasters = {"persistence": lambda inputs: persistence(inputs[..., :outputs], horizon)}
    if isinstance(climatology, str):
        forecasters["climatology"] = None
    elif climatology is not None:
        climatology = climatology[..., :outputs]
        forecasters["climatology"] = lambda x: climatology_forecast(climatology, x, horizon)
    forecasters["input_mean"] = lambda inputs: input_mean(inputs[..., :outputs], horizon)
    return forecasters


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
            source, train.series()[..., :outputs], train_times,
            run.climatology.first(outputs), run.normalizer.first(outputs),
            f"{what}: the training split",
        )  # fmt: skip
        ensembles += (CLIMATOLOGICAL_ENSEMBLE,)
    climatology, source = reference(run, source, on_run_grid)
    forecasters = {"model": predict, **baselines(climatology, run.horizon, outputs)}
    forecasters.update({name: None for name in ensembles[1:]})  # carried by the windows
    weights = grid_weights(lat if run.geographic else None, run.area_weights, what)
    constant = climatology if isinstance(climatology, np.ndarray) else None
    results = evaluate(
        forecasters, source, run.normalizer.std[:outputs], run.batch_size, on_batch,
        what=what, climatology=constant, weights=weights, ensembles=ensembles,
    )  # fmt: skip
    described = run.climatology.describe() if climatology is not None else None
    named = name_and_score(results, run.model, list(run.targets), list(run.units), described)
    check_finite(named, what)
    return named


def reference(run: RunScoring, source, on_run_grid: bool = True):
    """The climatology forecast of ``source``'s windows and the ACC's
    reference: ``(climatology, source)``, with ``climatology`` the
    normalized ``(lat, lon, targets)`` mean of every cell for annual data,
    ``"carried"`` for a climatology by time of year (then ``source``'s
    windows carry it, `WithClimatology`), or None where it is not known
    (another grid, runs of old versions)."""
    if run.climatology is None or not on_run_grid:
        return None, source
    normalizer = run.normalizer.first(run.outputs)
    climatology = run.climatology.first(run.outputs)
    if climatology.kind == "annual":
        values = normalizer.normalize(climatology.values[0])
        return np.nan_to_num(values, nan=0.0).astype(np.float32), source
    return "carried", WithClimatology(source, climatology, normalizer)
