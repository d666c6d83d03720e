"""New data given to a trained run: read as its field, and checked against
what the run was trained on, once, before anything is forecast.

`RunInputs` says what a run reads (its variables and their units, its grid,
mask and window length, its static fields, its training climatology);
`read_field` opens data (a path, Dataset or DataArray) as its ``(time, lat,
lon, channel)`` field, and `check_field` refuses, with one line naming the
data and the variable, data the run cannot forecast:

- other variables than the run's, or too few time steps;
- other units than the run's (`check_units`, with the units a caller states
  for variables that give none, `stated_units`);
- another grid (`grid_difference`; the run's cells in another order or
  longitude convention, or among more, are taken in its order,
  `on_run_cells`), unless the caller accepts it (a
  network's mask is then the cells of the data that are not all missing,
  `field_mask`), for runs without static fields that are not fitted per cell;
- values `stconv.data.checks` refuses, and means that lie further from the
  training data's than `TYPICAL_SPREADS` spreads (`check_magnitude`): data
  whose units attribute does not say what they are in.

Errors about a value the caller gave name its parameter
(`stconv.checks.ParameterError`: ``units``, ``other_grid``).
"""

import dataclasses
import os
from collections.abc import Mapping, Sequence

import numpy as np
import xarray as xr

from stconv.checks import ParameterError
from stconv.data.checks import check_extremes, check_values, same_units
from stconv.data.climatology import Climatology
from stconv.data.errors import DataError
from stconv.data.features import ExtraInputs, calendar_names
from stconv.data.files import dataset_field, open_field
from stconv.data.grid import Grid, cells_of
from stconv.data.masks import nan_mask
from stconv.data.normalization import Normalizer
from stconv.data.projection import RotatedPole
from stconv.data.registry import targets_first
from stconv.data.sources import FieldWindows
from stconv.data.windows import WindowSpec

# Data whose mean lies further from the training data's, in their spreads,
# are in other units than they say (`check_magnitude`).
TYPICAL_SPREADS = 10
# The units of the data's variables that give none: one for all, or per variable.
Units = str | Mapping[str, str] | None
Data = str | os.PathLike | xr.Dataset | xr.DataArray


class InputError(DataError, ParameterError):
    """A DataError that names a parameter of the caller (``units``, ``other_grid``)."""


@dataclasses.dataclass(frozen=True)
class RunInputs:
    """What a trained run reads, to check new data against.

    Attributes:
      variables: the input variables, as channels: the targets first.
      targets: the variables forecast (the first channels).
      units: the units of every variable (``""``: none given).
      specs: the variables as the run asked for them (``z:500``).
      input_length: the input frames of a window.
      mask: ``(lat, lon, channel)`` the cells the run forecasts.
      lat, lon: the run's coordinates; None where not recorded (then only
        the grid's shape is checked).
      pole: the pole its grid is rotated about, where its input named one.
      bbox: the run's box of the grid, or None.
      static_names: the static fields it reads on its own grid.
      calendar: whether it reads calendar features (the data need dates).
      fitted: the name of a model fitted per cell (ARIMA), or None.
      allow_extreme_values: the run accepts values beyond their units' range.
      climatology: the training climatology, or None (not recorded: the
        magnitude is not checked).
      std: the training standard deviation per channel, or None where the
        run was not normalized.
      chunk_frames: frames per dask chunk of a file read lazily.
    """

    variables: tuple[str, ...]
    targets: tuple[str, ...]
    units: tuple[str, ...]
    specs: tuple[str, ...]
    input_length: int
    mask: np.ndarray
    lat: np.ndarray | None = None
    lon: np.ndarray | None = None
    pole: RotatedPole | None = None
    bbox: tuple[float, float, float, float] | None = None
    static_names: tuple[str, ...] = ()
    calendar: bool = False
    fitted: str | None = None
    allow_extreme_values: bool = False
    climatology: Climatology | None = None
    std: np.ndarray | None = None
    chunk_frames: int = 1


def read_field(
    data: Data,
    run: RunInputs,
    chunks: dict | None = None,
    other_grid: bool = False,
    units: Units = None,
) -> xr.DataArray:
    """The run's variables in ``data`` as a ``(time, lat, lon, channel)`` field,
    targets first, checked against the run (`check_field`).

    Args:
      data: a netCDF path or glob (read lazily, ``chunks`` or
        ``run.chunk_frames`` frames per chunk), an ``xarray.Dataset``
        holding the run's variables, or a DataArray of the run's (single) variable.
      run: what the run reads.
      chunks: dask chunks for a path.
      other_grid: accept a grid other than the run's.
      units: the units of variables the data give none for (`stated_units`).

    Raises:
      DataError: naming the data and what it lacks or what differs from the run.
    """
    if isinstance(data, xr.DataArray):
        name = data.name if data.name is not None else run.variables[0]
        if len(run.variables) > 1 or name != run.variables[0]:
            raise DataError(
                f"DataArray {name!r} is not the run's data: pass a Dataset holding "
                f"the variables {list(run.variables)}"
            )
        data = data.to_dataset(name=name)
    specs = list(run.specs)
    if isinstance(data, xr.Dataset):
        source = "the Dataset"
        field = dataset_field(data, specs, source=source, bbox=run.bbox)
    else:
        source = os.fspath(data)
        chunks = chunks if chunks is not None else {"time": run.chunk_frames}
        field = open_field(source, specs, chunks=chunks, bbox=run.bbox)
    field, _ = targets_first(field, list(run.targets), repr(source))
    field = on_run_cells(field, run, other_grid)
    check_field(field, source, run, other_grid, units)
    if run.calendar:
        calendar_names(field["time"], repr(source))  # the run reads the calendar: dates
    return field


def check_field(
    field: xr.DataArray,
    source: str,
    run: RunInputs,
    other_grid: bool = False,
    units: Units = None,
) -> None:
    """Raises DataError unless ``run`` can forecast ``field``: its variables in
    its units (`check_units`), at least ``input_length`` steps, its grid (or
    ``other_grid``, for a network without static fields), and values
    `stconv.data.checks` accepts, of the magnitude of its training data."""
    grid = Grid.of(field)
    names = list(grid.channels)
    if names != list(run.variables):
        raise DataError(
            f"{source!r} holds the variables {names}, the run {list(run.variables)}: "
            "give the run's variables"
        )
    check_units(list(grid.units), stated_units(units, names), source, run)
    if field.sizes["time"] < run.input_length:
        raise DataError(
            f"{source!r} has {field.sizes['time']} time steps: at least "
            f"input_length={run.input_length} are needed"
        )
    difference = grid_difference(field, run)
    if difference and not other_grid:
        raise InputError(
            f"{source!r} is not on the run's grid ({difference}): pass {{other_grid}} "
            "to forecast it anyway, masked where it has no data",
            other_grid=True,
        )
    if difference and run.static_names:
        raise DataError(
            f"{source!r} is not on the run's grid ({difference}): the run reads static "
            f"fields {list(run.static_names)} of its own grid"
        )
    if difference and run.fitted:
        raise DataError(
            f"{source!r} is not on the run's grid ({difference}): a {run.fitted} "
            "run forecasts only the cells it was fitted on"
        )
    check_extremes(field, source, run.allow_extreme_values)
    mask = field_mask(field, run)  # another grid's is a pass over the data: once
    check_values(field, mask, source)
    if not run.allow_extreme_values:
        check_magnitude(field, mask, source, run)


def check_units(given: list[str], stated: dict[str, str], source: str, run: RunInputs) -> None:
    """Raises DataError unless every variable is in the run's units: as the
    data give them, or, where they give none, as ``stated`` (the caller's
    ``units``), spelled either way (`same_units`: ``kelvin`` is ``K``,
    ``m2 s-2`` is ``m**2 s**-2``). A run trained without units accepts any."""
    for name, found, trained in zip(run.variables, given, run.units, strict=True):
        said = stated.get(name, "")
        if found and said and not same_units(found, said):
            raise InputError(
                f"{source!r}: variable {name!r} is in {found}, not in {said} as {{units}} "
                "says: state units only for variables that have none",
                units=None,
            )
        units = found or said
        if trained and not units:
            raise InputError(
                f"{source!r}: variable {name!r} has no units and the run was trained in "
                f"{trained}: pass {{units}} if it is in {trained}, or convert it",
                units=trained,
            )
        if units and trained and not same_units(units, trained):
            raise DataError(
                f"{source!r}: variable {name!r} is in {units}, the run was trained in "
                f"{trained}: convert it first"
            )


def check_magnitude(field: xr.DataArray, mask: np.ndarray, source: str, run: RunInputs) -> None:
    """Raises DataError where a variable's mean over ``field`` (its cells in
    ``mask``) lies more than `TYPICAL_SPREADS` spreads of the training data
    from their mean: data whose units attribute does not say what they are
    in (Celsius still labelled K after ``ds.t2m - 273.15``, which keeps the
    attribute in xarray since 2025). The spread is that of the training climatology over
    time of year and cells, or the training std if larger; runs that
    recorded no climatology are not checked. The mean is taken in float64:
    float16 data would overflow."""
    if run.climatology is None:
        return
    trained = run.climatology.values
    train_mean = np.nanmean(trained, axis=(0, 1, 2))
    spread = np.nanstd(trained, axis=(0, 1, 2))
    if run.std is not None:
        spread = np.maximum(spread, run.std)
    inside = xr.DataArray(mask, dims=("lat", "lon", "channel"))
    given = field.astype(np.float64).where(inside).mean(("time", "lat", "lon")).compute().values
    distance = np.abs(given - train_mean) / np.where(spread > 0, spread, np.inf)
    if np.any(distance > TYPICAL_SPREADS):
        channel = int(np.argmax(distance))
        units = run.units[channel]
        raise DataError(
            f"{source!r}: variable {run.variables[channel]!r} averages "
            f"{given[channel]:.4g} {units}, {distance[channel]:.0f} spreads from the "
            f"{train_mean[channel]:.4g} {units} of the run's training data: is it in "
            "other units than its attribute says? Convert it first"
        )


def grid_difference(field: xr.DataArray, run: RunInputs) -> str:
    """How the grid of ``field`` differs from the run's, or ``""``."""
    shape, trained = field.shape[1:3], run.mask.shape[:2]
    if shape != trained:
        return f"lat x lon {shape[0]} x {shape[1]}, the run's {trained[0]} x {trained[1]}"
    if run.lat is None or run.lon is None:
        return ""
    grid = Grid.of(field)
    for dim, values, run_values in (("lat", grid.lat, run.lat), ("lon", grid.lon, run.lon)):
        run_values = np.asarray(run_values)
        if not np.allclose(values, run_values):
            return (
                f"{dim} {values[0]:g}..{values[-1]:g}, the run's "
                f"{run_values[0]:g}..{run_values[-1]:g}"
            )
    pole = grid.pole if grid.rotated else "not rotated"  # None: a rotated grid's unknown pole
    if run.pole is not None and pole is not None and pole != run.pole:
        return f"{pole}, the run's {run.pole}"
    return ""


def on_run_cells(field: xr.DataArray, run: RunInputs, other_grid: bool = False) -> xr.DataArray:
    """``field`` on the run's grid where it holds the run's cells: in another
    order or longitude convention (latitudes south to north where the run's
    ran north to south, longitudes 0..360 where the run's were -180..180),
    or, unless ``other_grid`` (forecast the whole field), among more (a wider
    area); else ``field`` as it is."""
    if run.lat is None or run.lon is None:
        return field
    same_size = field.shape[1:3] == run.mask.shape[:2]
    if other_grid and not same_size:
        return field
    cells = cells_of(field["lat"].values, field["lon"].values, run.lat, run.lon)
    if cells is None:
        return field
    rows, columns = cells
    unmoved = np.array_equal(rows, np.arange(len(rows))) and np.array_equal(
        columns, np.arange(len(columns))
    )
    if unmoved and same_size:
        return field
    field = field.isel(lat=rows, lon=columns)
    return field.assign_coords(lon=("lon", np.asarray(run.lon), field["lon"].attrs))


def field_mask(field: xr.DataArray, run: RunInputs) -> np.ndarray:
    """The run's mask, or the cells of ``field`` that are not all NaN when
    its grid differs from the run's."""
    return nan_mask(field) if grid_difference(field, run) else run.mask


def scored_windows(
    field: xr.DataArray,
    run: RunInputs,
    horizon: int,
    normalizer: Normalizer,
    extra: ExtraInputs | None = None,
) -> tuple[FieldWindows, np.ndarray, bool]:
    """Every complete window of ``field`` (``input_length`` inputs and
    ``horizon`` targets) to score a run's forecasts on, normalized with its
    statistics, with the latitude of each row and whether the grid is the run's.

    Raises:
      DataError: for data shorter than one window.
    """
    spec = WindowSpec(run.input_length, horizon)
    count = field.sizes["time"] - spec.length + 1
    if count < 1:
        raise DataError(
            f"the data has {field.sizes['time']} time steps: evaluating needs at least "
            f"input_length + horizon = {spec.length}"
        )
    mask, outputs = field_mask(field, run), len(run.targets)
    source = FieldWindows(field, range(count), spec, normalizer, mask, outputs, extra)
    return source, Grid.of(field).lat, not grid_difference(field, run)


def stated_units(units: Units, names: Sequence[str]) -> dict[str, str]:
    """The units a caller states per variable: ``"K"`` for every variable of
    ``names``, ``"t2m=K,u10=m s-1"`` or a mapping per variable; none for None.

    Raises:
      ParameterError: naming ``units``, for a variable that is not among ``names``.
    """
    if units is None:
        return {}
    if isinstance(units, str) and "=" not in units:
        return dict.fromkeys(names, units.strip())
    if isinstance(units, str):
        pairs = [item.split("=", 1) for item in units.split(",")]
        if any(len(pair) != 2 for pair in pairs):
            raise ParameterError(
                "{units} is invalid: write UNITS for all variables, or NAME=UNITS,NAME=UNITS",
                units=units,
            )
        units = {name.strip(): unit.strip() for name, unit in pairs}
    unknown = sorted(set(units) - set(names))
    if unknown:
        raise ParameterError(
            f"{{units}} names {unknown}, which are not the run's variables {list(names)}: "
            "write UNITS for all, or NAME=UNITS,...",
            units=None,
        )
    return dict(units)
