"""What stconv makes of a user's data before a run: ``stconv check DATA``.

    report = inspect_data(DataConfig(dataset="era5.nc", variables=("t2m", "u10")))
    report.accepted, report.refusal, report.variables[0]["max"]

`inspect_data` reads the files' metadata (grid, time axis, variables,
chunking), streams each variable's values once in blocks of time steps (never
the whole field) for its missing share and range, then opens the data as
``stconv train`` does, lazily, in blocks: its checks decide whether train
accepts the data, and give the windows per split and the climatology. The
printed table is `stconv.data.inspection_table`.
"""

import contextlib
import dataclasses
import os
import warnings
from collections.abc import Sequence

import numpy as np
import xarray as xr

from stconv.config import DataConfig
from stconv.data import footprint
from stconv.data.checks import (
    first_irregular_step,
    named_decoding_errors,
    physical_range,
    plausible_range,
    time_name,
)
from stconv.data.climatology import DESCRIPTIONS, day_steps, is_dates, time_kind
from stconv.data.dims import DIMS, find_dims, named_dims, time_dimension
from stconv.data.errors import DataError
from stconv.data.files import (
    chosen_variables,
    gridded_names,
    open_dataset,
    selected_sizes,
    smallest_chunk,
    time_chunk_of,
    variable_array,
)
from stconv.data.grid import is_rotated
from stconv.data.projection import RotatedPole
from stconv.data.registry import data_files, is_paper_format, load_dataset
from stconv.data.selection import select_times
from stconv.data.windows import WindowSpec, split_starts
from stconv.outputs import progress_bar

FRACTIONS = (0.6, 0.2, 0.2)  # the train, validation, test shares of time train uses
ENCODED_FILL = ("_FillValue", "missing_value")


@dataclasses.dataclass
class Report:
    """What `inspect_data` found (JSON-able but for nothing).

    Attributes:
      data: the dataset's name or path, as given.
      files: the files read.
      layout: ``"field"`` (time, lat, lon), ``"paper"`` (pre-windowed
        samples) or ``"generated"`` (a dataset stconv makes).
      grid: sizes, latitude order, longitude convention, spacing.
      time: steps, first and last, frequency, calendar, gaps, duplicates.
      variables: one dict per variable: units, standard name, fill values,
        missing share, range and the range its units or quantity allow.
      storage: bytes on disk and in memory (float32), chunks along time.
      climatology: the climatology a run would use, in words.
      windows: windows per split.
      memory: a run's peak memory in memory and streamed, and the budget.
      refusal: why train would refuse the data; None if it accepts them.
      warnings: what train would warn about the data.
      suggested: config fields (flat names) the train command needs beside
        the data flags given (a ``time_chunk`` when the data do not fit).
    """

    data: str
    files: list[str]
    layout: str = "field"
    grid: dict | None = None
    time: dict | None = None
    variables: list[dict] = dataclasses.field(default_factory=list)
    storage: dict = dataclasses.field(default_factory=dict)
    climatology: str | None = None
    windows: dict | None = None
    memory: dict | None = None
    refusal: str | None = None
    warnings: list[str] = dataclasses.field(default_factory=list)
    suggested: dict = dataclasses.field(default_factory=dict)

    @property
    def accepted(self) -> bool:
        return self.refusal is None

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "accepted": self.accepted}

    def refuse(self, error: Exception) -> None:
        """Keeps the first reason train would refuse the data."""
        if self.refusal is None:
            self.refusal = str(error).replace("\n", " ")


def inspect_data(
    data: DataConfig, *, time_chunk: int | None = None, fractions: Sequence[float] = FRACTIONS
) -> Report:
    """Reports on the data of ``data`` (a run's data section) what
    ``stconv train`` would make of them.

    Args:
      data: the data section: the dataset (a name of `DATASETS`, a file, a
        glob or a zarr store) and the options train would be given.
      time_chunk: the steps ``--time-chunk`` would read at once; None: train
        loads the data, or streams them by itself if they do not fit.
      fractions: the train, validation and test shares of time.

    Returns:
      The `Report`. Every problem train would refuse the data for is in its
      ``refusal``, not raised.
    """
    report = Report(data.dataset, [])
    try:
        report.files = data_files(data.dataset, data.data_path, data.mask_file)
        files = [f for f in report.files if f != data.mask_file]
        with warnings.catch_warnings(record=True) as caught:  # in the report, as train's
            warnings.simplefilter("always")
            if files:
                describe_files(report, data, files, time_chunk)
            else:
                report.layout = "generated"
        report.warnings = [str(w.message).replace("\n", " ") for w in caught]
    except DataError as error:
        report.refuse(error)
        return report
    block = time_chunk or default_block(report)
    load_as_train(report, data, block, fractions)
    fill_memory(report, time_chunk)
    return report


def describe_files(
    report: Report, data: DataConfig, names: list[str], time_chunk: int | None
) -> None:
    """Grid, time axis, variables and storage of the files ``names`` of ``data``."""
    # Not closed: closing a netCDF file while another handle of it is open
    # (a dataset of the caller's) can crash HDF5; the handles close with the process.
    dataset = open_dataset(names)
    report.storage["disk_bytes"] = sum(map(disk_bytes, names))
    if is_paper_format(dataset):
        report.layout = "paper"
        variables = ["x", "y"]
        arrays = [(name, dataset[name]) for name in variables]
    else:
        dims = find_dims(dataset, names[0])
        report.grid = grid_summary(dataset[dims["lat"]].values, dataset[dims["lon"]].values)
        report.time = time_summary(chosen_times(dataset[dims["time"]], data, names[0]))
        variables = chosen_variables(dataset, data.variables, dims)
        report.grid["rotated"] = is_rotated(dataset[dims["lat"]])
        pole = RotatedPole.of(dataset, variables)
        report.grid["pole"] = pole.attrs() if pole else None
        arrays = chosen_arrays(dataset, variables, data.variables, dims, names[0])
    report.storage["time_chunks"] = {v: time_chunk_of(dataset[v]) for v in variables}
    time_dim = time_dimension(dataset)
    with named_decoding_errors(names[0], variables, time_dim):
        report.variables = [
            variable_summary(array, time_chunk, report.storage["time_chunks"][name])
            for name, array in progress_bar(arrays, desc="reading values", unit="variable")
        ]
    report.storage["memory_bytes"] = sum(footprint.field_bytes(a.shape) for _, a in arrays)
    if report.layout != "paper" and (data.time_range is not None or data.bbox is not None):
        selected = selected_sizes(dataset, dims, names[0], data.bbox, data.time_range)
        whole = [dataset.sizes[dims[role]] for role in DIMS]
        report.storage["memory_bytes"] = (
            report.storage["memory_bytes"] * int(np.prod(selected)) // int(np.prod(whole))
        )
        report.storage["selected"] = True  # what a run reads of the files


def chosen_times(times: xr.DataArray, data: DataConfig, source: str) -> xr.DataArray:
    """The times of ``data.time_range`` (all where unset, or where train
    refuses it: its refusal says why)."""
    if data.time_range is None:
        return times
    with contextlib.suppress(DataError, KeyError, ValueError):
        return select_times(times.rename({times.dims[0]: "time"}), data.time_range, source)
    return times


def chosen_arrays(
    dataset: xr.Dataset, variables: list[str], specs: Sequence[str] | None, dims: dict, source: str
) -> list[tuple[str, xr.DataArray]]:
    """``(variable, array)`` of what a run reads of ``variables`` (or of
    ``specs``, where given), as train reads it (`variable_array`: one level
    of a ``NAME:LEVEL``, named ``z500``; ERA5's releases merged), else the
    whole variable (where train refuses it: its refusal says why)."""
    specs = variables if specs is None else specs
    renames = {dims[role]: role for role in DIMS if dims[role] != role}
    renamed = named_dims(dataset, renames)
    gridded = gridded_names(renamed)
    back = {role: name for name, role in renames.items()}  # the file's own names, as reported
    arrays = []
    for spec in dict.fromkeys(specs):
        name = spec.partition(":")[0]
        try:  # as train reads it
            arrays.append((name, variable_array(renamed, spec, gridded, source).rename(back)))
        except DataError:
            arrays.append((name, dataset[name]))
    return arrays


def disk_bytes(path: str) -> int:
    """The bytes of a file, or of every file under a directory (a zarr store)."""
    if not os.path.isdir(path):
        return os.path.getsize(path)
    return sum(
        os.path.getsize(os.path.join(folder, name))
        for folder, _, names in os.walk(path)
        for name in names
    )


def grid_summary(lat: np.ndarray, lon: np.ndarray) -> dict:
    """Sizes, latitude order, longitude convention and spacing of a grid."""
    lat_steps, lon_steps = np.diff(lat.astype(float)), np.diff(lon.astype(float))
    regular = all(
        steps.size == 0 or np.allclose(steps, steps[0], rtol=1e-3)
        for steps in (lat_steps, lon_steps)
    )
    if lon.min() < 0:
        convention = "-180..180"
    elif lon.max() > 180:
        convention = "0..360"
    else:
        convention = "0..180 (either)"
    return {
        "lat": int(lat.size),
        "lon": int(lon.size),
        "latitudes": "north to south" if lat.size > 1 and lat[0] > lat[-1] else "south to north",
        "lat_range": [float(lat.min()), float(lat.max())],
        "lon_range": [float(lon.min()), float(lon.max())],
        "longitudes": convention,
        "regular": bool(regular),
        "spacing": [float(np.abs(steps).mean()) if steps.size else None
                    for steps in (lat_steps, lon_steps)],
    }  # fmt: skip


def time_summary(times: xr.DataArray) -> dict:
    """Steps, first and last time, frequency, calendar, gaps and duplicates."""
    values = times.values
    later = values[1:] > values[:-1]
    duplicates = int(np.sum(values[1:] == values[:-1]))
    summary = {
        "steps": int(values.size),
        "first": time_name(values[0]) if values.size else None,
        "last": time_name(values[-1]) if values.size else None,
        "calendar": times.dt.calendar if is_dates(values) else None,
        "duplicates": duplicates,
        "not_increasing": int(np.sum(~later)) - duplicates,
        "frequency": None,
        "step_days": None,
        "gaps": 0,
        "first_irregular": None,
        "kind": None,
    }
    if values.size < 2 or not np.all(later):
        return summary
    if values.size >= 3:
        summary["frequency"] = xr.infer_freq(times)
    first = first_irregular_step(times)
    summary["first_irregular"] = None if first is None else time_name(values[first])
    if is_dates(values):
        steps = day_steps(values)
        step = float(np.median(steps))
        summary["step_days"] = step
        summary["gaps"] = int(np.sum(steps > 1.5 * step + 1e-9))
    with contextlib.suppress(DataError):  # a calendar no climatology can use: train says so
        summary["kind"] = time_kind(values)
    return summary


def block_of(array: xr.DataArray, time_chunk: int | None, stored: int | None) -> int:
    """The steps of ``array`` read at once: ``time_chunk``, else whole stored
    chunks of about `footprint.DEFAULT_BLOCK_BYTES` (`footprint.block_steps`)."""
    return time_chunk or footprint.block_steps(array.shape, stored)


def variable_summary(array: xr.DataArray, time_chunk: int | None, stored: int | None) -> dict:
    """Units, names, fill values, missing share and range of one variable,
    streamed along its first dim in blocks (`block_of`)."""
    units = str(array.attrs.get("units", ""))
    standard_name = str(array.attrs.get("standard_name", ""))
    counts = {"cells": 0, "missing": 0, "infinite": 0}
    low, high = np.inf, -np.inf
    block = block_of(array, time_chunk, stored)
    for start in range(0, array.shape[0], block):
        values = np.asarray(array[start : start + block].values, np.float64)
        finite = np.isfinite(values)
        counts["cells"] += values.size
        counts["missing"] += int(np.isnan(values).sum())
        counts["infinite"] += int(np.isinf(values).sum())
        if finite.any():
            low, high = min(low, values[finite].min()), max(high, values[finite].max())
    allowed = physical_range(standard_name, units) or plausible_range(units)
    return {
        "name": str(array.name),
        "dims": [str(d) for d in array.dims],
        "units": units,
        "standard_name": standard_name,
        "fill_values": fill_values(array),
        "missing_share": counts["missing"] / max(counts["cells"], 1),
        "infinite": counts["infinite"],
        "min": float(low) if np.isfinite(low) else None,
        "max": float(high) if np.isfinite(high) else None,
        "allowed": [float(allowed[0]), float(allowed[1])],
        "within": bool(np.isfinite(low) and allowed[0] <= low and high <= allowed[1]),
    }


def fill_values(array: xr.DataArray) -> list[float]:
    """The values that the file marks as missing (decoded as NaN)."""
    found = []
    for key in ENCODED_FILL:
        value = array.encoding.get(key, array.attrs.get(key))
        if value is not None:
            found.extend(float(v) for v in np.atleast_1d(value))
    return sorted(set(found))


def default_block(report: Report) -> int | None:
    """Whole stored chunks of about `footprint.DEFAULT_BLOCK_BYTES` of the grid of ``report``."""
    if report.grid is None:
        return None
    shape = (1, report.grid["lat"], report.grid["lon"], max(len(report.variables), 1))
    return footprint.block_steps(shape, smallest_chunk(report.storage["time_chunks"].values()))


def load_as_train(
    report: Report, data: DataConfig, block: int | None, fractions: Sequence[float]
) -> None:
    """Opens the data as train does, in blocks of ``block`` steps: its refusal,
    its warnings, the windows per split, the climatology and the field's shape."""
    chunks = None if block is None else {"time": block}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            dataset = load_dataset(data, chunks=chunks, fractions=fractions)
        except (DataError, ValueError) as error:
            report.refuse(error)
            dataset = None
    found = [str(w.message).replace("\n", " ") for w in caught]
    report.warnings = list(dict.fromkeys([*report.warnings, *found]))
    if dataset is None:
        report.windows = estimated_windows(report, data, fractions)
        if report.time is not None and report.time["kind"] is not None:
            kind = report.time["kind"]
            report.climatology = DESCRIPTIONS[kind].format(window=data.climatology_window)
        return
    report.windows = {split: len(source) for split, source in dataset.splits.items()}
    report.climatology = dataset.climatology.describe()
    if data.bbox is not None and report.grid is not None:  # the cells a run reads
        lat, lon = dataset.grid.lat, dataset.grid.lon
        report.grid["selected"] = {
            "lat": len(lat), "lon": len(lon),
            "lat_range": [float(lat.min()), float(lat.max())],
            "lon_range": [float(lon[0]), float(lon[-1])],
        }  # fmt: skip
    cells = int(np.prod(dataset.mask.shape))
    if report.time:
        steps = report.time["steps"]
    elif report.layout == "generated":
        steps = dataset.splits["train"].field.sizes["time"]  # every split holds the whole field
    else:
        steps = report.storage.get("memory_bytes", 0) // (4 * cells)
    report.storage["field_shape"] = [steps, *dataset.mask.shape]


def estimated_windows(report: Report, data: DataConfig, fractions: Sequence[float]) -> dict | None:
    """The windows per split of a time axis that train refused, if it can be windowed."""
    if report.time is None:
        return None
    try:
        spec = WindowSpec(data.input_length, data.horizon)
        starts = split_starts(report.time["steps"], spec, fractions, report.data)
    except (DataError, ValueError):
        return None
    return {split: len(values) for split, values in starts.items()}


def fill_memory(report: Report, time_chunk: int | None) -> None:
    """The memory a run needs in memory and streamed, and whether it must
    stream; in memory only for the paper's samples (train reads them so) and
    for a generated field (made whole in memory, even read in chunks)."""
    shape = report.storage.get("field_shape")
    if shape is None:
        return
    report.memory = {
        "in_memory_bytes": footprint.in_memory_bytes(shape),
        "budget_bytes": footprint.memory_budget(),
        "machine_bytes": footprint.physical_memory(),
    }
    if report.layout in ("paper", "generated"):
        return
    stored = smallest_chunk(report.storage.get("time_chunks", {}).values())
    chunk = min(time_chunk or footprint.block_steps(shape, stored), shape[0])
    report.memory.update(streamed_bytes=footprint.streamed_bytes(shape), time_chunk=chunk)
    if time_chunk is None and footprint.time_chunk_for(shape, stored):
        report.suggested["time_chunk"] = chunk
