"""Maps of per-cell scores, of a forecast beside the truth and its error, and
the power spectra of forecasts and truth (matplotlib Figures, not saved).

Lead times are steps 1 .. horizon, as in the scores; where none are chosen, up
to `DEFAULT_LEADS` spread evenly over the horizon (its first and last among
them) are drawn. Maps are drawn north up with longitude and latitude on the
axes (cell indices where the grid has no coordinates); missing (NaN) cells
are left blank. Colour scales are shared along a row of maps of one variable
(per-cell scores) or over the whole figure (a forecast, so that the error's
growth with lead time shows); signed quantities (a bias, an error) are drawn
with a diverging colour map centred at 0, correlations on -1 .. 1.
"""

import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.ticker import LogLocator, NullFormatter, StrMethodFormatter

from stconv.evaluation.spectra import TRUTH

DEFAULT_LEADS = 4
SEQUENTIAL, DIVERGING = "viridis", "RdBu_r"
PANEL_SIZE = (3.6, 2.6)  # inches per map


def chosen_leads(available: np.ndarray, leads: list[int] | None) -> list[int]:
    """``leads``, checked against the ``available`` lead times, or up to
    `DEFAULT_LEADS` of them spread evenly (first and last included) when None.

    Raises:
      ValueError: for an empty list or a lead time not available.
    """
    available = [int(lead) for lead in available]
    if leads is None:
        count = min(DEFAULT_LEADS, len(available))
        positions = np.round(np.linspace(0, len(available) - 1, count)).astype(int)
        return [available[i] for i in dict.fromkeys(positions)]
    unknown = [lead for lead in leads if lead not in available]
    if not leads or unknown:
        raise ValueError(
            f"leads: {unknown or '[]'} not lead times of the data; allowed: "
            f"{available[0]}..{available[-1]}"
        )
    return [int(lead) for lead in leads]


def is_correlation(metric: str) -> bool:
    """Whether ``metric`` is a correlation (a pure number on -1 .. 1: the ACC)."""
    return "acc" in metric or "corr" in metric


def metric_style(metric: str, values: np.ndarray) -> dict:
    """``pcolormesh`` keywords for a score's maps: a correlation on -1 .. 1, a
    bias diverging around 0 (symmetric limits), anything else sequential
    from 0 (or its minimum where negative) to its maximum."""
    if is_correlation(metric):
        return dict(cmap=DIVERGING, vmin=-1.0, vmax=1.0)
    if "bias" in metric:
        return symmetric_style(values)
    finite = values[np.isfinite(values)]
    low = min(0.0, float(finite.min())) if finite.size else 0.0
    high = float(finite.max()) if finite.size else 1.0
    return dict(cmap=SEQUENTIAL, vmin=low, vmax=high if high > low else low + 1.0)


def symmetric_style(values: np.ndarray) -> dict:
    """A diverging colour map with limits ``±max |values|`` (1 where all are 0 or NaN)."""
    bound = float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 0.0
    return dict(cmap=DIVERGING, vmin=-(bound or 1.0), vmax=bound or 1.0)


def draw_map(axis, values: np.ndarray, lat: np.ndarray, lon: np.ndarray, style: dict):
    """``values`` ``(lat, lon)`` on ``axis`` at their coordinates, NaN blank; the image."""
    image = axis.pcolormesh(lon, lat, np.ma.masked_invalid(values), shading="nearest", **style)
    axis.set_xlabel("longitude", fontsize=8)
    axis.set_ylabel("latitude", fontsize=8)
    axis.tick_params(labelsize=7)
    axis.label_outer()  # the maps of a figure share their axes
    return image


def grid_coordinates(data: xr.Dataset | xr.DataArray) -> tuple[np.ndarray, np.ndarray]:
    """``data``'s latitudes and longitudes (unwrapped across the 0 or 180
    meridian, so that they increase), or cell indices where it has none."""
    lat, lon = (
        np.asarray(data[name].values, np.float64)
        if name in data.coords
        else np.arange(data.sizes[name], dtype=np.float64)
        for name in ("lat", "lon")
    )
    return lat, np.unwrap(lon, period=360.0) if "lon" in data.coords else lon


def checked_choice(name: str, value: str, allowed: list[str]) -> None:
    """Raises a one-line ValueError when ``value`` is not among ``allowed``."""
    if value not in allowed:
        raise ValueError(f"{name}: {value!r} is not in the scores; allowed: {', '.join(allowed)}")


def cell_score_maps(
    scores: xr.Dataset, metric: str, forecast: str, leads: list[int] | None = None
) -> Figure:
    """Maps of one per-cell score of one forecast: a row per variable, a
    column per lead time, one colour scale (and colour bar) per row.

    Args:
      scores: data variables (the metrics: ``rmse``, ``bias``, ``acc``, ...)
        over ``(forecast, lead_time, lat, lon, variable)``, in any order; a
        ``units`` coordinate of ``variable`` gives the units of the errors.
      metric: the data variable to draw.
      forecast: the forecast to draw.
      leads: the lead times (columns); None: up to 4 spread over the horizon.

    Raises:
      ValueError: for an unknown metric or forecast, or a lead time not in the scores.
    """
    checked_choice("metric", metric, [str(name) for name in scores.data_vars])
    checked_choice("forecast", forecast, [str(f) for f in scores["forecast"].values])
    leads = chosen_leads(scores["lead_time"].values, leads)
    of = scores[metric].sel(forecast=forecast, lead_time=leads)
    rows = [(str(v), metric, of.sel(variable=v)) for v in of["variable"].values]
    return map_rows(rows, leads, forecast)


def score_maps(
    scores: xr.Dataset,
    forecast: str,
    metrics: list[str],
    variable: str,
    leads: list[int] | None = None,
) -> Figure:
    """Maps of several per-cell scores of one forecast and variable: a row
    per metric, a column per lead time (as `cell_score_maps`)."""
    checked_choice("forecast", forecast, [str(f) for f in scores["forecast"].values])
    for metric in metrics:
        checked_choice("metric", metric, [str(name) for name in scores.data_vars])
    leads = chosen_leads(scores["lead_time"].values, leads)
    of = scores.sel(forecast=forecast, lead_time=leads, variable=variable)
    return map_rows([(variable, metric, of[metric]) for metric in metrics], leads, forecast)


def map_rows(rows: list[tuple[str, str, xr.DataArray]], leads: list[int], forecast: str) -> Figure:
    """One row of maps per ``(variable, metric, values (lead_time, lat, lon))``,
    a column per lead time, one colour scale (and colour bar) per row."""
    width, height = PANEL_SIZE
    figure = Figure(figsize=(width * len(leads) + 1, height * len(rows)), layout="constrained")
    axes_rows = figure.subplots(len(rows), len(leads), squeeze=False, sharex=True, sharey=True)
    for axes, (variable, metric, of) in zip(axes_rows, rows, strict=True):
        of = of.transpose("lead_time", "lat", "lon")
        lat, lon = grid_coordinates(of)
        values = of.values
        style = metric_style(metric, values)
        units = str(of["units"].values) if "units" in of.coords else ""
        label = f"{metric} ({units})" if units and not is_correlation(metric) else metric
        for axis, lead, field in zip(axes, leads, values, strict=True):
            image = draw_map(axis, field, lat, lon, style)
            axis.set_title(f"{variable}, lead {lead}: {forecast} {label}", fontsize=9)
        figure.colorbar(image, ax=list(axes), shrink=0.9, label=label)
    return figure


def forecast_figure(
    truth: np.ndarray,
    forecast: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    title: str,
    leads: list[int],
    units: str = "",
) -> Figure:
    """One initialisation time of one variable: a row per lead time in
    ``leads`` (steps, 1 .. lead), the columns truth, forecast and forecast -
    truth; truth and forecast share one colour scale, the error a symmetric
    diverging one, both over all rows.

    Args:
      truth, forecast: ``(lead, lat, lon)``, in ``units``.
      lat, lon: the grid's coordinates (``lat`` ascending or descending).
      title: what the panels are of (the variable and the initialisation time).

    Raises:
      ValueError: for shapes that differ or do not match the coordinates, or
        a lead time outside 1 .. lead.
    """
    truth, forecast = np.asarray(truth, np.float64), np.asarray(forecast, np.float64)
    lat, lon = np.asarray(lat, np.float64), np.unwrap(np.asarray(lon, np.float64), period=360.0)
    if truth.ndim != 3 or forecast.shape != truth.shape or truth.shape[1:] != (len(lat), len(lon)):
        raise ValueError(
            f"truth {truth.shape}, forecast {forecast.shape}: not both (lead, lat, lon) "
            f"with lat {len(lat)} and lon {len(lon)}"
        )
    leads = chosen_leads(np.arange(1, len(truth) + 1), leads)
    steps = [lead - 1 for lead in leads]
    truth, forecast = truth[steps], forecast[steps]
    finite = np.concatenate([truth[np.isfinite(truth)], forecast[np.isfinite(forecast)]])
    low, high = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
    shared = dict(cmap=SEQUENTIAL, vmin=low, vmax=high if high > low else low + 1.0)
    error = forecast - truth
    columns = [("truth", truth, shared), ("forecast", forecast, shared)]
    columns.append(("forecast - truth", error, symmetric_style(error)))
    width, height = PANEL_SIZE
    figure = Figure(figsize=(width * 3 + 1, height * len(leads)), layout="constrained")
    rows = figure.subplots(len(leads), 3, squeeze=False, sharex=True, sharey=True)
    images = []
    for axes, (name, values, style) in zip(rows.T, columns, strict=True):
        for axis, lead, field in zip(axes, leads, values, strict=True):
            axis.set_title(f"{title}, lead {lead}: {name}", fontsize=9)
            images.append(draw_map(axis, field, lat, lon, style))
    bars = [
        ("truth and forecast", rows[:, :2], images[0]),
        ("forecast - truth", rows[:, 2], images[-1]),
    ]
    for name, axes, image in bars:  # one colour bar for the truth and the forecast
        label = f"{name} ({units})" if units else name
        figure.colorbar(image, ax=list(axes.flat), shrink=0.9, label=label)
    return figure


def spectra_figure(power: xr.Dataset, leads: list[int] | None = None) -> Figure:
    """Power against zonal wavenumber ``k >= 1`` on log-log axes
    (`stconv.evaluation.spectra.SpectrumAccumulator.result`): a row per lead
    time, a column per variable, the truth (black) and every forecast in each.

    Args:
      power: ``power`` ``(source, variable, lead_time, wavenumber)``.
      leads: the lead times (rows); None: up to 4 spread over the horizon.

    Raises:
      ValueError: for a lead time not in ``power``, or no wavenumber above 0.
    """
    leads = chosen_leads(power["lead_time"].values, leads)
    spectra = power["power"].sel(lead_time=leads, wavenumber=power["wavenumber"] >= 1)
    if spectra.sizes["wavenumber"] == 0:
        raise ValueError("power: no wavenumber >= 1 (the grid has a single longitude)")
    variables = [str(v) for v in spectra["variable"].values]
    sources = [str(s) for s in spectra["source"].values]
    forecasts = [source for source in sources if source != TRUTH]
    styles = {source: dict(color=f"C{i}") for i, source in enumerate(forecasts)}
    styles[TRUTH] = dict(color="black", linewidth=2)
    width, height = PANEL_SIZE
    figure = Figure(
        figsize=(width * len(variables) + 0.5, height * len(leads)), layout="constrained"
    )
    rows = figure.subplots(len(leads), len(variables), squeeze=False)
    wavenumbers = spectra["wavenumber"].values
    for axes, lead in zip(rows, leads, strict=True):
        for axis, variable in zip(axes, variables, strict=True):
            of = spectra.sel(lead_time=lead, variable=variable)
            for source in sources:
                values = of.sel(source=source).values
                positive = np.where(values > 0, values, np.nan)  # a log axis cannot show 0
                axis.plot(wavenumbers, positive, label=source, **styles[source])
            units = str(power["units"].sel(variable=variable).values) if "units" in power else ""
            scale = "log" if np.any(of.values > 0) else "linear"  # all 0: a uniform field
            axis.set(xscale="log", yscale=scale, xlabel="zonal wavenumber")
            axis.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            axis.xaxis.set_major_formatter(StrMethodFormatter("{x:g}"))
            axis.xaxis.set_minor_formatter(NullFormatter())
            axis.set_ylabel(f"power ({units}²)" if units else "power", fontsize=8)
            axis.set_title(f"{variable}, lead {lead}", fontsize=9)
            axis.grid(alpha=0.3, which="both")
    rows[0, 0].legend(fontsize=7)
    return figure
