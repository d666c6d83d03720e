"""Figures of a run: the learning curve, skill by lead time, forecast maps
and an ensemble's scores (matplotlib, PNG)."""

import itertools
import os

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import ScalarFormatter

from stconv.evaluation.metrics import METRICS


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


def skill_by_lead(results: dict[str, dict], path: str | os.PathLike) -> None:
    """`skill_figure` as a PNG."""
    skill_figure(results).savefig(path, dpi=100)


def skill_figure(results: dict[str, dict]) -> Figure:
    """Per lead time, every metric of `stconv.evaluation.metrics.METRICS` that
    names a ``plot`` panel, for every forecast of `stconv.evaluation.scoring`
    results (``{variable: {forecast: scores}}``): one row per target variable
    in its units, one panel per name, the first metric of a panel solid, the
    others dashed (area-weighted ones only where the scores are weighted).

    Errors that differ by more than a factor 3 are drawn on a log scale; a
    forecast whose pure-number score is 0 at every lead (climatology's ACC: no
    anomaly by construction) is named instead of drawn, so that the others
    keep their resolution.
    """
    panels: dict[str, list] = {}
    for name, metric in METRICS.items():
        if metric.plot is not None:
            panels.setdefault(metric.plot, []).append((name, metric))
    figure = Figure(figsize=(5.5 * len(panels), 3.8 * len(results)))
    rows = figure.subplots(len(results), len(panels), squeeze=False)
    several = len(results) > 1
    for axes, (variable, scores) in zip(rows, results.items(), strict=True):
        colors = {forecast: f"C{i}" for i, forecast in enumerate(scores)}
        units = next(iter(scores.values())).get("units", "")
        for axis, metrics in zip(axes, panels.values(), strict=True):
            draw_panel(axis, metrics, scores, units, colors)
            if several:
                axis.set_title(f"{variable}: {axis.get_title()}")
        axes[0].legend(fontsize=8)
    figure.tight_layout()
    return figure


def draw_panel(axis, metrics: list, results: dict, units: str, colors: dict) -> None:
    """One panel of `skill_figure`: ``metrics`` (``(name, Metric)``) of every forecast."""
    flat, dashed, values = [], set(), []
    for position, (name, metric) in enumerate(metrics):
        for forecast, result in results.items():
            scores = result.get(f"{name}_per_lead")
            if scores is None or (metric.weighted and not result.get("area_weighted")):
                continue
            if not metric.in_units and not any(scores):
                flat.append(forecast)
                continue
            style = dict(marker="o", label=forecast)
            if position:
                style = dict(marker=".", linestyle="--")
                dashed.add(metric.title or metric.label)
            axis.plot(range(1, len(scores) + 1), scores, color=colors[forecast], **style)
            values += scores
    first = metrics[0][1]
    in_units = all(metric.in_units for _, metric in metrics)
    if in_units and values and min(values) > 0 and max(values) > 3 * min(values):
        axis.set_yscale("log")
        axis.yaxis.set_major_formatter(ScalarFormatter())
        axis.yaxis.set_minor_formatter(ScalarFormatter())
    title = first.title or first.label
    if dashed:
        title += f" (dashed: {', '.join(sorted(dashed))})"
    if flat:
        title += f" ({', '.join(flat)}: 0, no anomaly)"
    ylabel = f"{first.label} ({units})" if first.in_units else first.label
    axis.set(xlabel="lead time (steps)", ylabel=ylabel, title=title)
    axis.xaxis.get_major_locator().set_params(integer=True)
    axis.grid(alpha=0.3, which="both")


def ensemble_scores(results: dict[str, dict], path: str | os.PathLike) -> None:
    """`ensemble_figure` as a PNG."""
    ensemble_figure(results).savefig(path, dpi=100)


def ensemble_figure(results: dict[str, dict]) -> Figure:
    """Per target variable (one row): the CRPS per lead time of every
    forecast, the spread-skill ratio of every ensemble (1: reliable), and the
    rank histogram of every ensemble over all lead times, as the fraction of
    cells per rank (flat at ``1 / (M + 1)`` for a reliable ensemble)."""
    figure = Figure(figsize=(16, 3.8 * len(results)))
    rows = figure.subplots(len(results), 3, squeeze=False)
    several = len(results) > 1
    for (crps, ratio, ranks), (variable, scores) in zip(rows, results.items(), strict=True):
        units = next(iter(scores.values())).get("units", "")
        for i, (forecast, result) in enumerate(scores.items()):
            ensemble, color = result["ensemble"], f"C{i}"
            leads = range(1, len(ensemble["crps_per_lead"]) + 1)
            crps.plot(leads, ensemble["crps_per_lead"], marker="o", color=color, label=forecast)
            if ensemble["members"] < 2:
                continue
            ratio.plot(leads, ensemble["spread_skill_ratio_per_lead"], marker="o", color=color)
            counts = np.sum(ensemble["rank_histogram"], axis=0)
            positions = np.linspace(0, 1, len(counts))
            label = f"{forecast} ({ensemble['members']} members)"
            ranks.step(positions, counts / counts.sum(), where="mid", color=color, label=label)
        ratio.axhline(1.0, color="gray", linestyle="--")
        prefix = f"{variable}: " if several else ""
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
    grid: dict,
    path: str | os.PathLike,
) -> None:
    """One row per sample and target variable: last input frame, truth,
    forecast and error at lead 1 (``(samples, lat, lon, variable)`` each,
    physical units; the variables' names and units from ``grid``), north up."""
    samples, variables = len(truths), truths.shape[-1]
    lat = np.asarray(grid["lat"])
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
        name = f"{grid['channel'][c]}, " if variables > 1 else ""
        for axis, (values, panel, style) in zip(axes[row], panels, strict=True):
            image = axis.imshow(values, origin=origin, **style)
            axis.set_title(f"{name}{titles[sample]}: {panel}", fontsize=9)
            axis.set_xticks([])
            axis.set_yticks([])
            figure.colorbar(image, ax=axis, shrink=0.8, label=grid["units"][c])
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
