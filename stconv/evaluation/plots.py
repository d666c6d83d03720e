"""Figures of a run: the learning curve, skill by lead time, forecast maps
and an ensemble's scores (matplotlib, PNG)."""

import dataclasses
import itertools
import os

import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.ticker import ScalarFormatter

from stconv.data.grid import Grid


def learning_curve(
    history: list[dict], best_epoch: int, path: str | os.PathLike, units: str | None
) -> None:
    """Train loss and validation RMSE per epoch (in ``units``; None: several
    targets, whose normalized validation score is drawn), the best epoch marked."""
    epochs = [row["epoch"] for row in history]
    figure = Figure(figsize=(10, 3.8))
    train_axis, validation_axis = figure.subplots(1, 2)
    train_axis.plot(epochs, [row["train_loss"] for row in history], marker=".")
    train_axis.set(xlabel="epoch", ylabel="train loss (normalised RMSE)", title="training")
    validation_axis.plot(epochs, [row["validation_rmse"] for row in history], marker=".")
    validation_axis.axvline(
        best_epoch, color="tab:red", linestyle="--", label=f"best epoch {best_epoch}"
    )
    label = "validation score (RMSE / std)" if units is None else f"validation RMSE ({units})"
    validation_axis.set(xlabel="epoch", ylabel=label, title="validation")
    validation_axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)


@dataclasses.dataclass(frozen=True)
class Curve:
    """One score of `skill_figure`, drawn per lead time.

    Attributes:
      metric: its name in the scores (``"rmse"``).
      label: its axis label (``"RMSE"``).
      title: what the panel calls it (``"area-weighted"``).
      in_units: in the variable's units (an error), or a pure number (ACC).
      weighted: area-weighted: drawn only where the scores are.
    """

    metric: str
    label: str
    title: str
    in_units: bool = True
    weighted: bool = False


def skill_by_lead(scores: xr.Dataset, panels: list[list[Curve]], path: str | os.PathLike) -> None:
    """`skill_figure` as a PNG."""
    skill_figure(scores, panels).savefig(path, dpi=100)


def skill_figure(scores: xr.Dataset, panels: list[list[Curve]]) -> Figure:
    """Per lead time, the ``panels``' curves (those of
    `stconv.runs.presentation.skill_panels`) of every forecast of ``scores``
    (`stconv.evaluation.scores`): one row per target variable in its units,
    one panel per list, its first curve solid, the others dashed
    (area-weighted ones only where the scores are weighted), the first
    shaded by its 95% interval where the scores have one.

    Errors that differ by more than a factor 3 are drawn on a log scale; a
    forecast whose pure-number score is 0 at every lead (climatology's ACC: no
    anomaly by construction) is named instead of drawn, so that the others
    keep their resolution.
    """
    variables = scores["variable"].values
    figure = Figure(figsize=(5.5 * len(panels), 3.8 * len(variables)))
    rows = figure.subplots(len(variables), len(panels), squeeze=False)
    colors = {str(forecast): f"C{i}" for i, forecast in enumerate(scores["forecast"].values)}
    for axes, variable in zip(rows, variables, strict=True):
        of = scores.sel(variable=variable)
        units = str(of["units"].values) if "units" in of.coords else ""
        for axis, curves in zip(axes, panels, strict=True):
            draw_panel(axis, curves, of, units, colors)
            if len(variables) > 1:
                axis.set_title(f"{variable}: {axis.get_title()}")
        axes[0].legend(fontsize=8)
    figure.tight_layout()
    return figure


def draw_panel(axis, curves: list[Curve], scores: xr.Dataset, units: str, colors: dict) -> None:
    """One panel of `skill_figure`: the ``curves`` of every forecast of one
    variable's ``scores``."""
    flat, dashed, values = [], set(), []
    weighted = scores.attrs.get("area_weighted", False)
    for position, curve in enumerate(curves):
        if curve.metric not in scores["metric"] or (curve.weighted and not weighted):
            continue
        for forecast in scores["forecast"].values:
            per_lead = scores["per_lead"].sel(forecast=forecast, metric=curve.metric).values
            if not curve.in_units and not per_lead.any():
                flat.append(str(forecast))
                continue
            style = dict(marker="o", label=str(forecast))
            if position:
                style = dict(marker=".", linestyle="--")
                dashed.add(curve.title)
            leads = scores["lead_time"].values
            axis.plot(leads, per_lead, color=colors[forecast], **style)
            values += per_lead.tolist()
            if "interval_per_lead" in scores and not position:  # the 95% interval, shaded
                bounds = scores["interval_per_lead"].sel(forecast=forecast, metric=curve.metric)
                low, high = bounds.sel(bound="low").values, bounds.sel(bound="high").values
                if np.isfinite(low).all():
                    axis.fill_between(leads, low, high, color=colors[forecast], alpha=0.15)
    first = curves[0]
    in_units = all(curve.in_units for curve in curves)
    if in_units and values and min(values) > 0 and max(values) > 3 * min(values):
        axis.set_yscale("log")
        axis.yaxis.set_major_formatter(ScalarFormatter())
        axis.yaxis.set_minor_formatter(ScalarFormatter())
    title = first.title
    if dashed:
        title += f" (dashed: {', '.join(sorted(dashed))})"
    if flat:
        title += f" ({', '.join(flat)}: 0, no anomaly)"
    ylabel = f"{first.label} ({units})" if first.in_units else first.label
    axis.set(xlabel="lead time (steps)", ylabel=ylabel, title=title)
    axis.xaxis.get_major_locator().set_params(integer=True)
    axis.grid(alpha=0.3, which="both")


def ensemble_scores(scores: xr.Dataset, path: str | os.PathLike) -> None:
    """`ensemble_figure` as a PNG."""
    ensemble_figure(scores).savefig(path, dpi=100)


def ensemble_figure(scores: xr.Dataset) -> Figure:
    """Per target variable (one row) of ``scores`` (`stconv.evaluation.scores`,
    with an ensemble's): the CRPS per lead time of every forecast, the
    spread-skill ratio of every ensemble (1: reliable), and the rank
    histogram of every ensemble over all lead times, as the fraction of cells
    per rank (flat at ``1 / (M + 1)`` for a reliable ensemble)."""
    variables = scores["variable"].values
    figure = Figure(figsize=(16, 3.8 * len(variables)))
    rows = figure.subplots(len(variables), 3, squeeze=False)
    leads = scores["lead_time"].values
    for (crps, ratio, ranks), variable in zip(rows, variables, strict=True):
        of = scores.sel(variable=variable)
        units = str(of["units"].values) if "units" in of.coords else ""
        for i, forecast in enumerate(of["forecast"].values):
            one, color = of.sel(forecast=forecast), f"C{i}"
            per_lead = one["ensemble_per_lead"]
            values = per_lead.sel(ensemble_metric="crps").values
            crps.plot(leads, values, marker="o", color=color, label=str(forecast))
            members = int(one["members"])
            if members < 2:
                continue
            spread_skill = per_lead.sel(ensemble_metric="spread_skill_ratio").values
            ratio.plot(leads, spread_skill, marker="o", color=color)
            counts = np.sum(one["rank_histogram"].values[:, : members + 1], axis=0)
            positions = np.linspace(0, 1, len(counts))
            label = f"{forecast} ({members} members)"
            ranks.step(positions, counts / counts.sum(), where="mid", color=color, label=label)
        ratio.axhline(1.0, color="gray", linestyle="--")
        prefix = f"{variable}: " if len(variables) > 1 else ""
        crps.set(xlabel="lead time (steps)", ylabel=f"CRPS ({units})", title=f"{prefix}CRPS")
        ratio.set(xlabel="lead time (steps)", ylabel="spread / skill", title="spread-skill ratio")
        ranks.set(
            xlabel="rank of the truth among the members (0 lowest, 1 highest)",
            ylabel="fraction of cells", title="rank histogram (all leads)",
        )  # fmt: skip
        for axis in (crps, ratio):
            axis.xaxis.get_major_locator().set_params(integer=True)
        for axis in (crps, ratio, ranks):
            axis.grid(alpha=0.3)
        crps.legend(fontsize=8)
        ranks.legend(fontsize=8)
    figure.tight_layout()
    return figure


def forecast_maps(
    last_inputs: np.ndarray,
    truths: np.ndarray,
    forecasts: np.ndarray,
    titles: list[str],
    grid: Grid,
    path: str | os.PathLike,
) -> None:
    """One row per sample and target variable: last input frame, truth,
    forecast and error at lead 1 (``(samples, lat, lon, variable)`` each,
    physical units; the variables' names and units from the `Grid` ``grid``), north up."""
    samples, variables = len(truths), truths.shape[-1]
    lat = grid.lat
    origin = "upper" if len(lat) > 1 and lat[0] > lat[-1] else "lower"
    figure = Figure(figsize=(14, 3 * samples * variables))
    axes = figure.subplots(samples * variables, 4, squeeze=False)
    for row, (sample, c) in enumerate(itertools.product(range(samples), range(variables))):
        fields = last_inputs[sample, ..., c], truths[sample, ..., c], forecasts[sample, ..., c]
        low, high = np.nanmin(fields), np.nanmax(fields)
        error = fields[2] - fields[1]
        bound = np.nanmax(np.abs(error)) or 1.0
        panels = [
            (fields[0], "last input", dict(vmin=low, vmax=high, cmap="viridis")),
            (fields[1], "truth", dict(vmin=low, vmax=high, cmap="viridis")),
            (fields[2], "forecast", dict(vmin=low, vmax=high, cmap="viridis")),
            (error, "forecast - truth", dict(vmin=-bound, vmax=bound, cmap="RdBu_r")),
        ]
        name = f"{grid.channels[c]}, " if variables > 1 else ""
        for axis, (values, panel, style) in zip(axes[row], panels, strict=True):
            image = axis.imshow(values, origin=origin, **style)
            axis.set_title(f"{name}{titles[sample]}: {panel}", fontsize=9)
            axis.set_xticks([])
            axis.set_yticks([])
            figure.colorbar(image, ax=axis, shrink=0.8, label=grid.units[c])
    figure.tight_layout()
    figure.savefig(path, dpi=90)


def confusion_matrix(
    labels: np.ndarray, predicted: np.ndarray, path: str | os.PathLike, title: str = ""
) -> None:
    """Counts of true (rows) against predicted (columns) classes."""
    classes = int(max(labels.max(), predicted.max())) + 1
    counts = np.zeros((classes, classes), int)
    np.add.at(counts, (labels, predicted), 1)
    figure = Figure(figsize=(6, 5.4))
    axis = figure.subplots()
    image = axis.imshow(counts, cmap="Blues")
    for (row, column), count in np.ndenumerate(counts):
        if count:
            color = "white" if count > counts.max() / 2 else "black"
            axis.text(column, row, count, ha="center", va="center", fontsize=7, color=color)
    accuracy = np.trace(counts) / counts.sum()
    axis.set(xlabel="predicted", ylabel="true", xticks=range(classes), yticks=range(classes))
    axis.set_title(f"{title} test accuracy {accuracy:.2%}")
    figure.colorbar(image, ax=axis, shrink=0.8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
