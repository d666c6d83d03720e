"""Event scores of an evaluation (`stconv.evaluation.events`) from the
physical forecasts of each batch, and their place in the Dataset of scores.

Which thresholds (`event_thresholds`): those the user gives
(``evaluation.thresholds``) for every target; by default, for targets
recognised as precipitation by name or units, `events.default_thresholds`;
none for the others. Percentiles are per cell of the training split.

In a forecast's record of ``results.json``, ``events``: the layout of
`stconv.evaluation.events.event_results`. In the Dataset (`event_dataset`):
``events`` ``(forecast, variable, event_metric, threshold)`` and
``events_per_lead`` (with ``lead_time``), ``fss`` ``(forecast, variable,
threshold, scale)`` and ``fss_per_lead``; NaN where undefined.
"""

from collections.abc import Callable, Iterable

import numpy as np
import xarray as xr

from stconv.data.normalization import Normalizer
from stconv.evaluation import events
from stconv.evaluation.inference import PhysicalBatches

KEY = "events"


def event_thresholds(
    spec: str | None,
    targets: tuple[str, ...],
    units: tuple[str, ...],
    training_frames: Callable[[], np.ndarray | Iterable[np.ndarray] | None],
    shape: tuple[int, int, int],
) -> tuple[np.ndarray, tuple[str, ...]] | None:
    """The physical thresholds ``(k, lat, lon, targets)`` and their names, or
    None for no event scores.

    Args:
      spec: ``evaluation.thresholds`` (None: by default; ``"none"``: none).
      targets, units: the target variables and their units.
      training_frames: gives ``(time, lat, lon, targets)`` the training frames,
        physical units, NaN where masked (or bands of their latitude rows in
        order: `stconv.evaluation.events.threshold_fields`), or None where
        unknown (percentiles are then left out); called only for percentiles.
      shape: ``(lat, lon, targets)``.
    """
    if spec == "none":
        return None
    if spec is not None:
        chosen = [events.parse_thresholds(spec)] * len(targets)
    else:
        chosen = [
            events.default_thresholds(unit) if events.is_precipitation(name, unit, None) else ()
            for name, unit in zip(targets, units, strict=True)
        ]
    thresholds = next((c for c in chosen if c), ())
    train = training_frames() if any(t.quantile is not None for t in thresholds) else None
    if train is None:
        thresholds = tuple(t for t in thresholds if t.quantile is None)
    if not thresholds:
        return None
    fields = events.threshold_fields(thresholds, train, shape)
    for channel, own in enumerate(chosen):
        if not own:
            fields[..., channel] = np.nan  # never an event: not scored
    return fields, tuple(t.name for t in thresholds)


class EventScoring(PhysicalBatches):
    """Accumulates the event scores of every forecast of an evaluation, batch
    by batch (`stconv.evaluation.inference.PhysicalBatches`).

    Args:
      thresholds, names: of `event_thresholds`.
      scales: the FSS neighbourhoods.
      forecasts: every forecast's name; ``ensembles`` those given as members.
      normalizer: the targets' normalizer.
      valid_times: ``(window, lead)`` the target frames' times, or None.
    """

    def __init__(
        self,
        thresholds: np.ndarray,
        names: tuple[str, ...],
        scales: tuple[int, ...],
        forecasts: tuple[str, ...],
        ensembles: tuple[str, ...],
        normalizer: Normalizer,
        valid_times: np.ndarray | None,
    ):
        super().__init__(normalizer, valid_times)
        self.accumulators = {
            name: events.EventAccumulator(thresholds, names, scales, name in ensembles)
            for name in forecasts
        }

    def observe(self, truth, mask, predictions: dict, valid: np.ndarray | None) -> None:
        for name, prediction in predictions.items():
            self.accumulators[name].add(self.physical(prediction, valid), truth, mask)

    def results(self) -> dict[str, list[dict]]:
        """Per forecast, per target: `stconv.evaluation.events.event_results`,
        an undefined score (NaN) as None (JSON's null)."""
        return {
            name: [as_json(entry) for entry in accumulator.result()]
            for name, accumulator in self.accumulators.items()
        }


def as_json(value):
    """``value`` (dicts and lists of numbers) with every NaN as None."""
    if isinstance(value, dict):
        return {key: as_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [as_json(item) for item in value]
    if isinstance(value, float) and np.isnan(value):
        return None
    return value


def event_dataset(records: list[list[dict]], forecasts: list, variables: list) -> xr.Dataset:
    """The ``events`` entries of ``records`` (per forecast, per variable) as
    the Dataset of scores lays them out; empty where none has one."""
    flat = [record.get(KEY) for row in records for record in row]
    first = next((entry for entry in flat if entry), None)
    if first is None:
        return xr.Dataset()
    names, scales = first["thresholds"], first["scales"]
    present = {key for entry in flat if entry for key in entry}
    scores = [s for s in events.EVENT_SCORES if s != "fss" and s in present]
    leads = len(first[f"{scores[0]}_per_lead"])
    shape = (len(forecasts), len(variables))
    overall = np.full((*shape, len(scores), len(names)), np.nan)
    per_lead = np.full((*shape, len(scores), leads, len(names)), np.nan)
    fss = np.full((*shape, len(names), len(scales)), np.nan)
    fss_per_lead = np.full((*shape, leads, len(names), len(scales)), np.nan)
    for i, row in enumerate(records):
        for j, record in enumerate(row):
            entry = record.get(KEY)
            if not entry:
                continue
            for k, score in enumerate(scores):
                if score in entry:  # the Brier score: an ensemble's only
                    overall[i, j, k] = np.asarray(entry[score], float)
                    per_lead[i, j, k] = np.asarray(entry[f"{score}_per_lead"], float)
            fss[i, j] = np.asarray(entry["fss"], float)
            fss_per_lead[i, j] = np.asarray(entry["fss_per_lead"], float)
    dims = ("forecast", "variable")
    return xr.Dataset(
        {
            "events": ((*dims, "event_metric", "threshold"), overall),
            "events_per_lead": ((*dims, "event_metric", "lead_time", "threshold"), per_lead),
            "fss": ((*dims, "threshold", "scale"), fss),
            "fss_per_lead": ((*dims, "lead_time", "threshold", "scale"), fss_per_lead),
        },
        coords={"event_metric": scores, "threshold": list(names), "scale": list(scales)},
    )


def event_record(one: xr.Dataset) -> dict:
    """The ``events`` entry of one forecast and variable, or nothing."""
    if "events" not in one or np.isnan(one["events"].values).all():
        return {}
    entry: dict = {
        "thresholds": [str(t) for t in one["threshold"].values],
        "scales": [int(s) for s in one["scale"].values],
    }
    for score in one["event_metric"].values:
        values = one["events"].sel(event_metric=score).values
        if score == "brier" and np.isnan(values).all():
            continue  # not an ensemble
        entry[str(score)] = values.tolist()
        per_lead = one["events_per_lead"].sel(event_metric=score).values
        entry[f"{score}_per_lead"] = per_lead.tolist()
    entry["fss"] = one["fss"].values.tolist()
    entry["fss_per_lead"] = one["fss_per_lead"].values.tolist()
    return {KEY: as_json(entry)}
