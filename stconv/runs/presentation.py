"""How the scores are shown: each metric's label, column width, the tables it
is a column of and the panel of ``skill_by_lead.png`` it is drawn in.

`PRESENTATION` is keyed by the names of `stconv.evaluation.metrics.METRICS`
(which holds the mathematics only); a metric without an entry is shown under
its name (`presentation`), a column of the run's table and nothing else.
"""

import dataclasses
from collections.abc import Iterable

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from stconv.evaluation import plots
from stconv.evaluation.metrics import METRICS, REFERENCE_RMSE
from stconv.evaluation.scores import as_dataset


@dataclasses.dataclass(frozen=True)
class Presentation:
    """How one metric is shown.

    Attributes:
      label: its column in the printed tables (``RMSE``).
      width: that column's width, in characters (values show 3 decimals).
      title: what the skill plot calls it; default ``label``.
      in_table: a column of the run's printed table.
      in_summary_table: a block (mean +- std per lead time) of the multi-seed table.
      plot: the panel of ``skill_by_lead.png`` it is drawn in per lead time;
        None draws it nowhere.
    """

    label: str
    width: int = 7
    title: str = ""
    in_table: bool = True
    in_summary_table: bool = False
    plot: str | None = None


PRESENTATION: dict[str, Presentation] = {
    "rmse": Presentation("RMSE", in_summary_table=True, plot="RMSE"),
    "weighted_rmse": Presentation(
        "wRMSE", title="area-weighted", in_summary_table=True, plot="RMSE"
    ),
    "mae": Presentation("MAE"),
    "weighted_mae": Presentation("wMAE", in_table=False),
    "bias": Presentation("bias"),
    "acc": Presentation("ACC", width=6, title="anomaly correlation", plot="ACC"),
}


def presentation(metric: str) -> Presentation:
    """The `Presentation` of ``metric``: its entry of `PRESENTATION`, or a
    column of the run's table under its own name."""
    default = Presentation(metric, width=max(7, len(metric)))
    return PRESENTATION.get(metric, default)


# The scores of the Datasets of `stconv.evaluation.scores` (a run's, the seeds'
# summary, the regional scores) that are in the variable's units, where their
# metric (or ensemble metric) is.
SCORES_IN_UNITS = (
    "overall", "per_lead", "interval", "interval_per_lead", "difference",
    "difference_interval", "ensemble_overall", "ensemble_per_lead",
)  # fmt: skip
ENSEMBLE_IN_UNITS = ("crps", "crps_skill", "crps_spread", "spread", "ensemble_mean_rmse")
# A variable whose largest RMSE is below this many of its units (precipitation
# in kg m-2 s-1: about 1e-5) is shown scaled: three decimals would show 0.000.
SCALED_BELOW = 0.1


def readable(scores: xr.Dataset) -> xr.Dataset:
    """``scores`` to print: each variable whose largest RMSE is under
    `SCALED_BELOW` has its scores in units times a power of ten that brings
    that RMSE between 1 and 10, named in the coordinate ``shown_units``
    (``1e-05 kg m-2 s-1``); pure numbers (ACC, skills, p-values, event scores)
    and the ``units`` of the data (the thresholds') are left as they are."""
    if "units" not in scores.coords or "rmse" not in scores.coords.get("metric", []):
        return scores
    rmse = abs(scores["overall"].sel(metric="rmse"))
    largest = rmse.max([dim for dim in rmse.dims if dim != "variable"]).values
    powers = [int(np.floor(np.log10(v))) if 0 < v < SCALED_BELOW else 0 for v in largest]
    if not any(powers):
        return scores
    factor = xr.DataArray([10.0**-p for p in powers], dims="variable")
    scaled = scores.copy()
    for dim, in_units in (
        ("metric", is_in_units),
        ("ensemble_metric", ENSEMBLE_IN_UNITS.__contains__),
    ):
        if dim not in scores.dims:
            continue
        which = xr.DataArray([in_units(str(m)) for m in scores[dim].values], dims=dim)
        for name in SCORES_IN_UNITS:
            if name in scores and dim in scores[name].dims:
                scaled[name] = scores[name] * xr.where(which, factor, 1.0)
    units = [str(u) for u in scores["units"].values]
    shown = [f"1e{p:+03d} {u}" if p else u for p, u in zip(powers, units, strict=True)]
    return scaled.assign_coords(shown_units=("variable", shown))


def units_in(scores: xr.Dataset, scaled: bool = True) -> str:
    """The units of one variable's ``scores`` (``""`` for scores without them):
    those its scores are shown in (`readable`), or with ``scaled`` False the data's."""
    name = "shown_units" if scaled and "shown_units" in scores.coords else "units"
    return str(scores[name].values) if name in scores.coords else ""


def is_in_units(metric: str) -> bool:
    """Whether ``metric`` (of `METRICS`, a skill or the reference's RMSE) is in
    the variable's units."""
    return metric == REFERENCE_RMSE or (metric in METRICS and METRICS[metric].in_units)


def name_width(names: Iterable, least: int) -> int:
    """The width of a table's column of ``names`` (forecasts, regions): the
    longest name, and at least ``least``, so that every row stays aligned."""
    return max([least, *(len(str(name)) for name in names)])


def shown(metrics: Iterable[str] | None = None) -> dict[str, Presentation]:
    """The `Presentation` of every metric of ``metrics`` (default
    `stconv.evaluation.metrics.METRICS`), in its order."""
    return {name: presentation(name) for name in (METRICS if metrics is None else metrics)}


def skill_panels() -> list[list[plots.Curve]]:
    """The panels of ``skill_by_lead.png``: per panel name, in the order first
    named, the metrics of `METRICS` drawn in it."""
    panels: dict[str, list[plots.Curve]] = {}
    for name, shows in shown().items():
        if shows.plot is not None:
            metric = METRICS[name]
            curve = plots.Curve(
                name, shows.label, shows.title or shows.label, metric.in_units, metric.weighted
            )
            panels.setdefault(shows.plot, []).append(curve)
    return list(panels.values())


def skill_figure(scores: xr.Dataset | dict) -> Figure:
    """`stconv.evaluation.plots.skill_figure` of ``scores`` (a Dataset of
    `stconv.evaluation.scores`, or results in the layout of ``results.json``)
    with the panels of `skill_panels`."""
    if isinstance(scores, dict):
        scores = as_dataset(scores)
    return plots.skill_figure(scores, skill_panels())
