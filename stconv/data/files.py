"""Opening gridded fields with xarray.

A field is an `xarray.DataArray` with dims ``(time, lat, lon, channel)``: one
or several variables of one or several netCDF files, or of a zarr store,
stacked as channels. It stays lazy (dask-backed) when ``chunks`` is given, so
fields larger than memory can be windowed without loading them.
"""

import contextlib
import glob
import os
import re
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
import xarray as xr

from stconv.data import footprint, stores
from stconv.data.checks import check_numeric, check_times, named_decoding_errors, time_name
from stconv.data.dims import DIMS, dim_role, find_dims, named_dims, time_dimension
from stconv.data.errors import DataError
from stconv.data.projection import RotatedPole
from stconv.data.selection import (
    RELEASE_DIM,
    box_cells,
    level_names,
    merged_releases,
    select_box,
    select_level,
    select_times,
)


def resolve_paths(paths: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str]:
    """Expands globs and checks that every file or store exists."""
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    resolved = []
    for path in map(str, paths):
        matches = sorted(glob.glob(path)) if glob.has_magic(path) else [path]
        if not matches or not all(os.path.exists(p) for p in matches):
            raise DataError(f"file {path!r} does not exist")
        resolved.extend(matches)
    return resolved


def open_dataset(
    paths: str | os.PathLike | Sequence[str | os.PathLike],
    chunks: Mapping | None = None,
    cache: bool | None = None,
) -> xr.Dataset:
    """Opens one netCDF file, several (a list or a glob, combined by coordinates:
    files of one variable along time, files of different variables side by
    side, which must share one grid and time axis) or a zarr store (a
    ``.zarr`` directory), whose chunks never written must read as missing
    values (`check_chunks_written`). A single netCDF file keeps what is read
    of it (``cache``) when opened without ``chunks``, unless told not to."""
    files = resolve_paths(paths)
    cache = chunks is None if cache is None else cache
    if is_zarr(files):
        try:
            dataset = open_store(files[0])
        except (OSError, ValueError) as error:
            raise DataError(f"file {files[0]!r} could not be opened: {error}") from None
        check_chunks_written(files[0], dataset)
        return in_chunks(dataset, chunks)
    try:
        if len(files) == 1:
            return in_chunks(xr.open_dataset(files[0], cache=cache), chunks)
    except (OSError, ValueError) as error:
        raise DataError(f"file {files[0]!r} could not be opened: {why(error, files[0])}") from None
    try:
        dataset = xr.open_mfdataset(
            files, chunks={}, combine="by_coords", join="exact", compat="override",
            data_vars="all", coords="minimal", preprocess=on_first_files_grid(),
        )  # fmt: skip
        return in_chunks(dataset, chunks)
    except ValueError as error:  # an alignment or merge error, or a time axis undecoded
        named, reason = f"files {files[0]!r} (+{len(files) - 1} more)", why(error, files[0])
        if reason != str(error):
            raise DataError(f"{named} could not be opened: {reason}") from None
        if "Could not find any dimension coordinates" in str(error):
            raise DataError(
                f"{named} hold the same times on the same grid, as runs or members of one "
                "model do: give one of them, or files of different variables or periods"
            ) from None
        raise DataError(
            f"{named} do not combine into one dataset: "
            f"{str(error).splitlines()[0]}; give files of one grid and time axis"
        ) from None
    except OSError as error:
        raise DataError(f"file {files[0]!r} could not be opened: {why(error, files[0])}") from None


def open_store(path: str) -> xr.Dataset:
    """A zarr store, by its consolidated metadata; where it has none, by every
    array's, with a `StoreWarning` of one line (xarray's took eight)."""
    try:
        return xr.open_zarr(path, chunks=None, consolidated=True)
    except ValueError:
        dataset = xr.open_zarr(path, chunks=None, consolidated=False)
    warnings.warn(
        f"zarr store {path!r} has no consolidated metadata: opening it reads every array's "
        f"(zarr.consolidate_metadata({path!r}) makes it one read)",
        StoreWarning,
        stacklevel=3,
    )
    return dataset


class StoreWarning(UserWarning):
    """A zarr store is opened the slow way: it has no consolidated metadata."""


GRIB = (".grib", ".grib1", ".grib2", ".grb", ".grb2")


def why(error: Exception, path: str) -> str:
    """xarray's reason, or what to do: for a GRIB file that it has no engine
    for, and for a time axis it cannot decode (``months since``)."""
    if path.lower().endswith(GRIB) and "IO backends" in str(error):
        return (
            "it is GRIB, which xarray reads with cfgrib only (pip install cfgrib), or convert "
            "it to netCDF (cdo -f nc4 copy IN.grib OUT.nc), or download netCDF"
        )
    undecoded = re.match(r"unable to decode time units '([^']*)'", str(error))
    if undecoded:
        return (
            f"its time axis is in {undecoded.group(1)!r}, which xarray cannot read as dates "
            "(CF gives a month or a year no fixed length): rewrite it in days, e.g. "
            "cdo settunits,days IN OUT"
        )
    return str(error)


def is_zarr(files: Sequence[str]) -> bool:
    return len(files) == 1 and (files[0].rstrip("/").endswith(".zarr") or os.path.isdir(files[0]))


def in_chunks(dataset: xr.Dataset, chunks: Mapping | None) -> xr.Dataset:
    """``dataset``, opened lazily without dask, read in ``chunks`` whose
    ``time`` is its own time dimension (ERA5's ``valid_time``): opened with
    them, xarray would ignore a name it does not know and read the whole
    time axis as one chunk. (Reopening the file to learn the name instead
    can crash HDF5 while another handle of it is open.)"""
    if chunks is None:
        return dataset
    dim = time_dimension(dataset) or "time"
    named = {dim if key == "time" else key: value for key, value in chunks.items()}
    return dataset.chunk({key: value for key, value in named.items() if key in dataset.dims})


def check_chunks_written(path: str, dataset: xr.Dataset) -> None:
    """Raises DataError if a numeric data variable of the zarr store ``path``
    (opened as ``dataset``) has chunks that were never written and read as a
    number, its fill value, rather than as missing values (`stconv.data.stores`):
    a store whose writing stopped. Lists the store's folders; reads no data.
    The error names the first time step such chunks hold.

    zarr writes no chunk that holds only the fill value either: a store
    written so, whose fill value is a value of its data (0 of an integer
    variable), is refused too, and must be written with ``write_empty_chunks``.
    """
    if not stores.is_store(path):
        return
    time = time_dimension(dataset)
    for name, array in stores.store_arrays(path, list(map(str, dataset.data_vars))).items():
        variable = dataset[name]
        if not np.issubdtype(variable.dtype, np.number):
            continue
        fill = array.metadata.fill_value
        if stores.reads_as_missing(fill, variable.encoding):
            continue
        missing = stores.unwritten_chunks(array, path)
        if not missing:
            continue
        axis = variable.dims.index(time) if time in variable.dims else 0
        first = stores.earliest(missing, axis)
        if time in variable.dims:
            start = first.region[axis].start
            where = f" at time {time_name(dataset[time].values[start])} (index {start})"
        else:
            where = f" at {variable.dims[0]} index {first.region[0].start}" if first.region else ""
        total = int(np.prod(stores.stored_grid(array)))
        raise DataError(
            f"zarr store {path!r}: variable {name!r} has {len(missing)} of its {total} chunks "
            f"never written, the first {first.key!r}{where}: they read as its fill value "
            f"{float(fill):g}, as if they were data: finish writing the store (was it "
            f"interrupted?), or, if they hold only {float(fill):g} (zarr writes no such chunk), "
            "write it again with write_empty_chunks=True or a NaN fill value"
        )


def without_scalar_coordinates(dataset: xr.Dataset) -> xr.Dataset:
    """``dataset`` without its scalar coordinates (CMIP6's ``height``, ERA5's
    ``number``), which differ between the files of different variables."""
    return dataset.drop_vars([name for name, coord in dataset.coords.items() if coord.ndim == 0])


def on_first_files_grid() -> Callable[[xr.Dataset], xr.Dataset]:
    """``open_mfdataset``'s ``preprocess``: each file without its scalar
    coordinates (`without_scalar_coordinates`), its latitudes and longitudes
    those of the first file where they differ by rounding only (one file's
    float32 coordinates beside another's float64), which would not combine."""
    first = {}

    def preprocess(dataset: xr.Dataset) -> xr.Dataset:
        dataset = without_scalar_coordinates(dataset)
        grid = [str(d) for d in dataset.dims if dim_role(dataset, str(d)) in ("lat", "lon")]
        if not first:
            first.update({dim: dataset[dim].values for dim in grid if dim in dataset.coords})
        rounded = {
            dim: dataset[dim].copy(data=first[dim])
            for dim in grid
            if dim in first and dataset.sizes[dim] == len(first[dim])
            and np.allclose(dataset[dim].values, first[dim], rtol=0, atol=1e-4)
        }  # fmt: skip
        return dataset.assign_coords(rounded)

    return preprocess


def open_field(
    paths: str | os.PathLike | Sequence[str | os.PathLike],
    variables: str | Sequence[str] | None = None,
    *,
    dims: Mapping[str, str] | None = None,
    bbox: tuple[float, float, float, float] | None = None,
    time_range: tuple | None = None,
    chunks: Mapping | None = None,
    stream_if_large: bool = False,
) -> xr.DataArray:
    """Opens variables of gridded files as one ``(time, lat, lon, channel)`` field.

    Args:
      paths: a netCDF file, a list or glob of files, or a zarr store.
      variables: name(s) to stack as channels; default all variables that have
        the time, lat and lon dimensions.
      dims: overrides for dimension names, e.g. ``{"lat": "rlat"}``.
      bbox: ``(lat_min, lat_max, lon_min, lon_max)``, inclusive.
      time_range: ``(start, stop)``, inclusive, anything xarray can select on.
      chunks: dask chunks (e.g. ``{"time": 64}``) to stay lazy; None loads on use.
      stream_if_large: without ``chunks``, stay lazy in the chunks
        `streaming_chunk` chooses if a run of the field would not fit this
        machine's memory (saying so), as ``stconv train`` does.

    Returns:
      A DataArray with dims ``(time, lat, lon, channel)``, the coordinates of
      the source, and a ``channel`` coordinate holding the variable names.
    """
    files, dataset, choosing = open_for_field(paths, chunks, stream_if_large)
    return opened_field(
        dataset, files, variables, dims=dims, bbox=bbox, time_range=time_range,
        stream_if_large=choosing,
    )  # fmt: skip


def open_for_field(
    paths: str | os.PathLike | Sequence[str | os.PathLike],
    chunks: Mapping | None = None,
    stream_if_large: bool = False,
) -> tuple[list[str], xr.Dataset, bool]:
    """``paths`` opened as `open_field` opens them: their files, the dataset,
    and whether the chunks to stream it by are still to be chosen
    (``stream_if_large`` without ``chunks``: `opened_field` chooses them). It
    is then opened without xarray's cache, so that a field that streams is
    never read whole."""
    files = resolve_paths(paths)
    choosing = stream_if_large and chunks is None
    return files, open_dataset(files, chunks, cache=chunks is None and not choosing), choosing


def opened_field(
    dataset: xr.Dataset,
    files: Sequence[str],
    variables: str | Sequence[str] | None = None,
    *,
    dims: Mapping[str, str] | None = None,
    bbox: tuple[float, float, float, float] | None = None,
    time_range: tuple | None = None,
    stream_if_large: bool = False,
) -> xr.DataArray:
    """`open_field` of ``dataset``, opened from ``files`` (opened without
    ``cache`` if ``stream_if_large``: its values are then read where they are used)."""
    source = files[0] if len(files) == 1 else f"{files[0]} (+{len(files) - 1} more)"
    names = [variables] if isinstance(variables, str) else variables
    if stream_if_large:
        chunk = streaming_chunk(dataset, names, source, dims, bbox, time_range)
        dataset = in_chunks(dataset, None if chunk is None else {"time": chunk})
    # Without chunks, the variables are read here: a chunk that cannot be decoded is named.
    with named_decoding_errors(source, names, time_dimension(dataset, dims)):
        return dataset_field(
            dataset, variables, source=source, dims=dims, bbox=bbox, time_range=time_range
        )


class StreamingWarning(UserWarning):
    """The data would not fit this machine's memory: the run streams them."""


def streaming_chunk(
    dataset: xr.Dataset,
    variables: Sequence[str] | None,
    source: str,
    dims: Mapping[str, str] | None = None,
    bbox: tuple[float, float, float, float] | None = None,
    time_range: tuple | None = None,
) -> int | None:
    """The time chunk to stream the field of ``variables`` of ``dataset`` by
    (its ``bbox`` and ``time_range``, where given), with a `StreamingWarning`
    that says why, when a run of it in memory would not fit
    `footprint.memory_budget`; None when it fits (or when the field cannot
    be made: its errors are `dataset_field`'s to raise)."""
    try:
        names = find_dims(dataset, source, dims)
        chosen = chosen_variables(dataset, variables, names)
    except DataError:
        return None
    channels = len(chosen) if variables is None else len(variables)
    shape = (*selected_sizes(dataset, names, source, bbox, time_range), channels)
    stored = smallest_chunk(time_chunk_of(dataset[name]) for name in chosen)
    chunk = footprint.time_chunk_for(shape, stored)
    if chunk is not None:
        warnings.warn(
            f"file {source!r}: a run of its field in memory would need about "
            f"{footprint.in_memory_bytes(shape) / 1e9:.3g} GB, more than the "
            f"{footprint.memory_budget() / 1e9:.3g} GB this machine lends a run: it streams "
            f"the field in blocks of {chunk} steps (execution.time_chunk={chunk})",
            StreamingWarning,
            stacklevel=2,
        )
    return chunk


def selected_sizes(
    dataset: xr.Dataset, names: dict, source: str, bbox: tuple | None, time_range: tuple | None
) -> tuple[int, int, int]:
    """The time steps, rows and columns of ``dataset`` (dims ``names``) in
    ``time_range`` and ``bbox``, from its coordinates alone; the whole
    dimension where one cannot select (`dataset_field` then says why)."""
    steps, rows, columns = (dataset.sizes[names[role]] for role in DIMS)
    with contextlib.suppress(DataError, KeyError, TypeError, ValueError):
        if time_range is not None:
            times = dataset[names["time"]].rename({names["time"]: "time"})
            steps = select_times(times, time_range, source).size
        if bbox is not None:
            lat, lon = dataset[names["lat"]].values, dataset[names["lon"]].values
            rows, columns = map(len, box_cells(lat, lon, bbox, source))
    return steps, rows, columns


def gridded_names(dataset: xr.Dataset, dims: Mapping[str, str] | None = None) -> list[str]:
    """The variables of ``dataset`` on its time, lat and lon dimensions, named
    as ``dims`` maps them (default: ``time``, ``lat`` and ``lon``)."""
    wanted = {dims[role] if dims else role for role in DIMS}
    return [str(name) for name, array in dataset.data_vars.items() if wanted <= set(array.dims)]


def chosen_variables(dataset: xr.Dataset, specs: Sequence[str] | None, dims: dict) -> list[str]:
    """The variables of ``dataset`` a run would read: those of ``specs``
    (``NAME`` or ``NAME:LEVEL``), else every one on the time, lat and lon dims.

    Raises:
      DataError: naming a variable the files do not hold.
    """
    gridded = gridded_names(dataset, dims)
    if specs is None:
        return gridded
    names = list(dict.fromkeys(spec.partition(":")[0] for spec in specs))
    for name in names:
        if name not in dataset.data_vars:
            raise DataError(f"the files hold no variable {name!r}: available are {gridded}")
    return names


def time_chunk_of(array: xr.DataArray) -> int | None:
    """The stored chunk of ``array`` along its first (time or sample) dim;
    None if stored contiguous."""
    chunks = array.encoding.get("chunks") or array.encoding.get("chunksizes")
    return int(chunks[0]) if chunks else None


def smallest_chunk(chunks: Iterable[int | None]) -> int | None:
    """The smallest of the stored time chunks ``chunks`` (`time_chunk_of`);
    None if every variable is stored contiguous."""
    return min(filter(None, chunks), default=None)


def dataset_field(
    dataset: xr.Dataset,
    variables: str | Sequence[str] | None = None,
    *,
    source: str = "the dataset",
    dims: Mapping[str, str] | None = None,
    bbox: tuple[float, float, float, float] | None = None,
    time_range: tuple | None = None,
) -> xr.DataArray:
    """`open_field` of a Dataset already open (or held in memory); ``source``
    names it in errors."""
    names = find_dims(dataset, source, dims)
    dataset = named_dims(dataset, {names[r]: r for r in DIMS if names[r] != r})
    gridded = gridded_names(dataset)
    if variables is None:
        variables = gridded
    elif isinstance(variables, str):
        variables = [variables]
    if not variables:
        raise DataError(f"file {source!r} has no variable with time, lat and lon dimensions")
    arrays = [variable_array(dataset, spec, gridded, source) for spec in variables]
    field = xr.concat(arrays, dim="channel", coords="minimal", compat="override")
    field = field.transpose(*DIMS, "channel").assign_coords(
        channel=[array.name for array in arrays],
        **{
            attribute: ("channel", [str(array.attrs.get(attribute, "")) for array in arrays])
            for attribute in CHANNEL_ATTRIBUTES
        },
    )
    # One variable keeps its attributes on the field too, as it always did.
    attrs = dict(arrays[0].attrs) if len(arrays) == 1 else {}
    field.attrs = {**attrs, "source": source, "dims": {role: names[role] for role in DIMS}}
    field.attrs["rotated_pole"] = RotatedPole.of(dataset, [v.partition(":")[0] for v in variables])
    if bbox is not None:
        field = select_box(field, bbox, source)
    if time_range is not None:
        check_times(field["time"], source, regular=False)  # before selecting on it
        field = select_times(field, time_range, source)
    if field.sizes["time"] == 0:
        raise DataError(f"file {source!r}: data.time_range={time_range!r} selects no time steps")
    check_times(field["time"], source)
    return field


# Attributes of every variable kept with the field, one value per channel.
CHANNEL_ATTRIBUTES = ("units", "long_name", "standard_name")


def channel_name(spec: str) -> str:
    """The channel of a variable spec: its name, or ``NAME`` and the level of
    ``NAME:LEVEL`` (``z500`` of ``z:500``, ``tas_r1i1p1f1`` of a level named
    ``r1i1p1f1``)."""
    name, colon, level = spec.partition(":")
    try:
        return f"{name}{float(level):g}" if colon else name
    except ValueError:
        return f"{name}_{level}"


def variable_array(dataset: xr.Dataset, spec: str, gridded: list[str], source: str):
    """The ``(time, lat, lon)`` array of ``spec``: a variable's name, or
    ``NAME:LEVEL`` for one level of a variable with a vertical dimension
    (named ``NAME`` and the level, ``z500``, as a channel); ERA5's releases
    (``expver``) merged (`merged_releases`)."""
    name, colon, level = spec.partition(":")
    if name not in gridded:
        raise DataError(
            f"file {source!r} has no gridded variable {name!r}: available are {gridded}"
        )
    array = dataset[name]
    check_numeric(array, name, source)
    if array.sizes.get(RELEASE_DIM, 1) > 1:
        array = merged_releases(array)
    extra = [d for d in array.dims if d not in DIMS]
    vertical = [d for d in extra if array.sizes[d] > 1]
    if colon:
        if not vertical:
            raise DataError(
                f"file {source!r}: variable {name!r} has no vertical dimension: write {name!r} "
                f"without {colon + level!r}"
            )
        array = select_level(array, vertical[0], level, source)
        name = channel_name(spec)
        extra.remove(vertical[0])
        vertical = vertical[1:]
    if vertical:
        dim = vertical[0]
        levels = level_names(array[dim].values)
        raise DataError(
            f"file {source!r}: variable {name!r} has {len(levels)} levels on {dim!r} "
            f"({', '.join(levels)}): choose one as {name}:LEVEL, e.g. "
            f"data.variables={name}:{levels[0]}"
        )
    return array.squeeze(extra, drop=True).transpose(*DIMS).rename(name)
