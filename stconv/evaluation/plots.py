"""Figures of a run: the learning curve and forecast maps (matplotlib, PNG)."""

import os

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import ScalarFormatter


def learning_curve(
    history: list[dict], best_epoch: int, path: str | os.PathLike, units: str
) -> None:
    """Train loss and validation RMSE per epoch, the best epoch marked."""
    epochs = [row["epoch"] for row in history]
    figure = Figure(figsize=(10, 3.8))
    train_axis, validation_axis = figure.subplots(1, 2)
    train_axis.plot(epochs, [row["train_loss"] for row in history], marker=".")
    train_axis.set(xlabel="epoch", ylabel="train loss (normalised RMSE)", title="training")
    validation_axis.plot(epochs, [row["validation_rmse"] for row in history], marker=".")
    validation_axis.axvline(
        best_epoch, color="tab:red", linestyle="--", label=f"best epoch {best_epoch}"
    )
    validation_axis.set(xlabel="epoch", ylabel=f"validation RMSE ({units})", title="validation")
    validation_axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def skill_by_lead(results: dict[str, dict], path: str | os.PathLike, units: str) -> None:
    """RMSE (unweighted, and area-weighted when weighted) and ACC per lead time
    of every forecast of a `stconv.evaluation.scoring` result.

    RMSEs that differ by more than a factor 3 are drawn on a log scale; a
    forecast with no anomaly (climatology: ACC 0 by construction) is named
    instead of drawn, so that the others' ACCs keep their resolution.
    """
    figure = Figure(figsize=(11, 3.8))
    rmse_axis, acc_axis = figure.subplots(1, 2)
    flat = []
    for name, result in results.items():
        leads = range(1, len(result["rmse_per_lead"]) + 1)
        (line,) = rmse_axis.plot(leads, result["rmse_per_lead"], marker="o", label=name)
        if result.get("area_weighted"):
            rmse_axis.plot(
                leads, result["weighted_rmse_per_lead"], marker=".", linestyle="--",
                color=line.get_color(),
            )  # fmt: skip
        if "acc_per_lead" in result and any(result["acc_per_lead"]):
            acc_axis.plot(
                leads, result["acc_per_lead"], marker="o", label=name, color=line.get_color()
            )
        elif "acc_per_lead" in result:
            flat.append(name)
    rmses = [value for result in results.values() for value in result["rmse_per_lead"]]
    if max(rmses) > 3 * min(rmses):
        rmse_axis.set_yscale("log")
        rmse_axis.yaxis.set_major_formatter(ScalarFormatter())
        rmse_axis.yaxis.set_minor_formatter(ScalarFormatter())
    weighted = any(result.get("area_weighted") for result in results.values())
    rmse_axis.set(
        xlabel="lead time (steps)",
        ylabel=f"RMSE ({units})",
        title="RMSE (dashed: area-weighted)" if weighted else "RMSE",
    )
    note = f" ({', '.join(flat)}: 0, no anomaly)" if flat else ""
    acc_axis.set(xlabel="lead time (steps)", ylabel="ACC", title=f"anomaly correlation{note}")
    for axis in (rmse_axis, acc_axis):
        axis.xaxis.get_major_locator().set_params(integer=True)
        axis.grid(alpha=0.3, which="both")
    rmse_axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def forecast_maps(
    last_inputs: np.ndarray,
    truths: np.ndarray,
    forecasts: np.ndarray,
    titles: list[str],
    path: str | os.PathLike,
    units: str,
) -> None:
    """One row per sample: last input frame, truth, forecast and error at lead 1
    (``(samples, lat, lon)`` each, physical units)."""
    rows = len(truths)
    figure = Figure(figsize=(14, 3 * rows))
    axes = figure.subplots(rows, 4, squeeze=False)
    for row in range(rows):
        low = np.nanmin([last_inputs[row], truths[row], forecasts[row]])
        high = np.nanmax([last_inputs[row], truths[row], forecasts[row]])
        error = forecasts[row] - truths[row]
        bound = np.nanmax(np.abs(error)) or 1.0
        panels = [
            (last_inputs[row], "last input", dict(vmin=low, vmax=high, cmap="viridis")),
            (truths[row], "truth", dict(vmin=low, vmax=high, cmap="viridis")),
            (forecasts[row], "forecast", dict(vmin=low, vmax=high, cmap="viridis")),
            (error, "forecast - truth", dict(vmin=-bound, vmax=bound, cmap="RdBu_r")),
        ]
        for axis, (values, name, style) in zip(axes[row], panels, strict=True):
            image = axis.imshow(values, origin="lower", **style)
            axis.set_title(f"{titles[row]}: {name}", fontsize=9)
            axis.set_xticks([])
            axis.set_yticks([])
            figure.colorbar(image, ax=axis, shrink=0.8, label=units)
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
