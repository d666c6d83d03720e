"""Datasets by name, split, normalized and masked, ready for the input pipeline.

    dataset = load_dataset("hadcm3-a1b", input_length=5, horizon=5)
    dataset.splits["train"][0]  # {"inputs", "targets", "mask"}

The names are one table, `DATASETS`: ``hadcm3-a1b`` (the embedded default),
``cfsr`` and ``chirps`` (the paper's files, ``path=`` required),
``weather`` (coupled, weather-like and synthetic, with seasons and a static
orography: `stconv.data.weather`) and ``synthetic`` (seeded, any size).
Anything else is read as a path to a netCDF file, glob or zarr store. A new
dataset is one `Entry`: a description, how to open it and which files it reads.
"""

import dataclasses
import os
import warnings
from collections.abc import Callable, Mapping, Sequence

import iris_sample_data
import numpy as np
import xarray as xr

from stconv.config import DataConfig
from stconv.data.checks import (
    channel_names,
    check_extremes,
    check_values,
    field_time_dim,
    named_decoding_errors,
)
from stconv.data.climatology import Climatology, check_window, fit_climatology
from stconv.data.dims import GRID_DIMS, other_dims
from stconv.data.errors import DataError
from stconv.data.features import (
    ExtraInputs,
    calendar_names,
    check_static,
    normalized_static,
    split_static,
    static_fields,
)
from stconv.data.files import (
    channel_name,
    open_dataset,
    open_field,
    open_for_field,
    opened_field,
    resolve_paths,
)
from stconv.data.grid import Grid
from stconv.data.masks import load_mask_file, nan_mask
from stconv.data.normalization import Normalizer
from stconv.data.sources import FieldWindows, SampleWindows
from stconv.data.synthetic import synthetic_field
from stconv.data.weather import weather_file
from stconv.data.windows import WindowSpec, paper_split, split_starts, time_segments

EMBEDDED_FILE = os.path.join(iris_sample_data.path, "A1B_north_america.nc")


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A dataset cut into train, validation and test windows.

    Attributes:
      name: registry name or path.
      splits: ``{"train", "validation", "test"}`` -> a random-access source.
      normalizer: statistics of the training split.
      mask: ``(lat, lon, channels)`` valid cells.
      climatology: the training split's climatology by time of year
        (`stconv.data.climatology`; for annual data each cell's mean), in
        physical units: the climatology forecast and the ACC's reference.
      spec: the window lengths.
      grid: the field's `Grid`: coordinates, channel names, their units
        and other attributes.
      targets: the variables forecast: the first channels (inputs hold them
        first, then the other input variables).
      extra: the inputs appended after the variables: static fields and
        calendar features (`stconv.data.features`).
    """

    name: str
    splits: dict
    normalizer: Normalizer
    mask: np.ndarray
    climatology: Climatology
    spec: WindowSpec
    grid: Grid
    targets: list[str]
    extra: ExtraInputs | None = None

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        """``(input_length, lat, lon, channels)`` of one example: the
        variables' channels, then the extra inputs."""
        extra = 0 if self.extra is None else self.extra.count
        lat, lon, channels = self.mask.shape
        return (self.spec.input_length, lat, lon, channels + extra)


def targets_first(field: xr.DataArray, targets: Sequence[str] | None, source: str):
    """``field`` with the ``targets`` channels (variable specs, `channel_name`)
    first, in their order, then the other channels; all targets when None.

    Raises:
      DataError: naming the target that is not among the field's channels.
    """
    names = [str(c) for c in field["channel"].values]
    if targets is None:
        return field, names
    wanted = [channel_name(target) for target in targets]
    for target, name in zip(targets, wanted, strict=True):
        if name not in names:
            raise DataError(
                f"{source}: target {target!r} is not an input variable: the inputs are "
                f"{names}; add it to data.variables, or choose targets among them"
            )
    order = [names.index(name) for name in wanted]
    order += [i for i in range(len(names)) if i not in order]
    return field.isel(channel=order), wanted


def training_statistics(
    train: xr.DataArray,
    normalization: str,
    mask_file: str | None,
    climatology_window: int = 61,
    source: str = "the data",
) -> tuple[Normalizer, np.ndarray, Climatology]:
    """The normalizer, the valid-cell mask (or the mask file's) and the
    climatology (`training_climatology`), all from the training split.

    numpy's warnings are silenced: masked cells (all NaN) are expected, and an
    infinite value is refused by `stconv.data.checks.check_values` just after.
    """
    channels = train.sizes["channel"]
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        climatology = training_climatology(train, climatology_window, source)
        if normalization == "none":
            normalizer = Normalizer.identity(channels)
        elif normalization == "climatology":
            normalizer = Normalizer.fit_anomalies(train, climatology)
        else:
            normalizer = Normalizer.fit(train, per_cell=normalization == "cell")
        mask = load_mask_file(mask_file, Grid.of(train), channels) if mask_file else nan_mask(train)
    return normalizer, mask, climatology


def training_climatology(train: xr.DataArray, window: int, source: str) -> Climatology:
    """The climatology by time of year of the training split (`fit_climatology`);
    each cell's mean for the paper's samples, which carry no dates, and, with
    a warning that says why, where no climatology by time of year can be
    formed (less than a year of training data, an unknown calendar)."""
    check_window(window)  # an invalid window is an error, not a reason to fall back
    if other_dims(train) == ["time"]:
        try:
            return fit_climatology(train, window, source)
        except DataError as error:
            message = f"{error}; the climatology is each cell's training mean instead"
            warnings.warn(message, ClimatologyWarning, stacklevel=2)
    mean = train.mean(other_dims(train), skipna=True, dtype=np.float64)
    mean = mean.transpose(*GRID_DIMS).values.astype(np.float32)
    return Climatology("annual", mean[None])


class ClimatologyWarning(UserWarning):
    """No climatology by time of year could be formed: each cell's mean is used."""


def extra_inputs(field: xr.DataArray, data: DataConfig, source: str) -> ExtraInputs:
    """The static fields of ``data.static`` (``FILE[:var,var]``, a file of a
    named dataset too), checked as the data are, and, with
    ``data.time_features``, the calendar features of ``field``'s time axis
    (`stconv.data.features`)."""
    extra = ExtraInputs.none(field.sizes["lat"], field.sizes["lon"])
    if data.static is not None:
        fields = static_fields(data.static, field, resolve=dataset_file)
        check_static(fields, data.static, data.allow_extreme_values)
        names = tuple(str(name) for name in fields["channel"].values)
        extra = dataclasses.replace(extra, static=normalized_static(fields), static_names=names)
    if data.time_features:
        extra = dataclasses.replace(extra, calendar=calendar_names(field["time"], source))
    return extra


def dataset_file(name: str) -> str:
    """The file of a dataset of `DATASETS` that reads one (``weather``), else ``name``."""
    if name in DATASETS:
        files = DATASETS[name].files(None)
        return files[0] if files else name
    return name


def field_dataset(
    data: DataConfig,
    field: xr.DataArray,
    spec: WindowSpec,
    fractions: Sequence[float],
    extra: ExtraInputs | None = None,
) -> Dataset:
    """Splits a ``(time, lat, lon, channel)`` field of the dataset of ``data``
    on time and windows each split; its targets (default all) first, the
    ``extra`` inputs last; normalized and masked as ``data`` says."""
    name = data.dataset
    source = f"dataset {name!r}"
    field, targets = targets_first(field, data.targets, source)
    starts = split_starts(field.sizes["time"], spec, fractions, source)
    train_start, train_stop = time_segments(field.sizes["time"], fractions)["train"]
    train = field.isel(time=slice(train_start, train_stop))
    opened = field.attrs.get("source", name)
    check_extremes(field, opened, data.allow_extreme_values)
    with named_decoding_errors(opened, channel_names(field), field_time_dim(field)):
        normalizer, mask, climatology = training_statistics(
            train, data.normalization, data.mask_file, data.climatology_window, source
        )
    check_values(field, mask, opened)
    outputs = len(targets)
    splits = {
        split: FieldWindows(field, starts[split], spec, normalizer, mask, outputs, extra)
        for split in starts
    }
    grid = Grid.of(field)
    return Dataset(name, splits, normalizer, mask, climatology, spec, grid, targets, extra)


def is_paper_format(dataset: xr.Dataset) -> bool:
    return {"x", "y"} <= set(dataset.data_vars) and "sample" in dataset.dims


def paper_dataset(data: DataConfig, dataset: xr.Dataset, path: str, spec: WindowSpec) -> Dataset:
    """The paper's pre-windowed files (``x``, ``y``; dims sample, time, lat, lon, channel),
    opened from ``path``, with the reference's split on sample index. Their
    channels are named ``channel_0``, ...; the targets of ``data`` (default
    all) first; normalized and masked as ``data`` says."""
    name, targets, allow_extreme_values = data.dataset, data.targets, data.allow_extreme_values
    for variable in ("x", "y"):
        if variable not in dataset:
            raise DataError(
                f"file {path!r} has no variable {variable!r} of the paper's format: "
                f"available are {sorted(map(str, dataset.data_vars))}"
            )
    x, y = dataset["x"], dataset["y"]
    if x.ndim != 5 or y.ndim != 5:
        raise DataError(
            f"file {path!r}: x and y must have dims (sample, time, lat, lon, channel), "
            f"got {x.dims} and {y.dims}"
        )
    channels = [f"channel_{c}" for c in range(x.shape[-1])]
    dims = ("sample", "time", "lat", "lon", "channel")
    x = x.rename(dict(zip(x.dims, dims, strict=True))).assign_coords(channel=channels)
    y = y.rename(dict(zip(y.dims, dims, strict=True))).assign_coords(channel=channels)
    x, targets = targets_first(x, targets, f"file {path!r}")
    y, _ = targets_first(y, targets, f"file {path!r}")
    if x.sizes["time"] < spec.input_length or y.sizes["time"] < spec.horizon:
        raise DataError(
            f"file {path!r} stores {x.sizes['time']} input and {y.sizes['time']} target steps: "
            f"too few for input_length={spec.input_length}, horizon={spec.horizon}"
        )
    samples = paper_split(x.sizes["sample"])
    train_inputs = x.isel(sample=slice(0, len(samples["train"])), time=slice(0, spec.input_length))
    check_extremes(x.isel(time=slice(0, spec.input_length)), f"{path} (x)", allow_extreme_values)
    check_extremes(y.isel(time=slice(0, spec.horizon)), f"{path} (y)", allow_extreme_values)
    normalizer, mask, climatology = training_statistics(
        train_inputs, data.normalization, data.mask_file
    )
    check_values(x.isel(time=slice(0, spec.input_length)), mask, f"{path} (x)")
    check_values(y.isel(time=slice(0, spec.horizon)), mask, f"{path} (y)")
    outputs = len(targets)
    splits = {s: SampleWindows(x, y, samples[s], spec, normalizer, mask, outputs) for s in samples}
    return Dataset(name, splits, normalizer, mask, climatology, spec, Grid.of(x), targets)


@dataclasses.dataclass(frozen=True)
class Request:
    """What `load_dataset` was asked for, as a dataset's opener reads it.

    Attributes:
      data: the data section (`stconv.config.DataConfig`): the dataset's
        name or path, ``data_path``, variables, targets, ... as given.
      spec: the windows (`stconv.data.windows.WindowSpec`).
      chunks: dask chunks to keep the data lazy; None loads them.
      synthetic_shape, seed: of the synthetic field (and the weather file's seed).
      open_options: more keyword arguments for `stconv.data.files.open_field`
        (``dims``, ``time_range``, ``bbox``, ``stream_if_large``).
    """

    data: DataConfig
    spec: WindowSpec
    chunks: Mapping | None = None
    synthetic_shape: tuple[int, int, int, int] = (400, 16, 16, 1)
    seed: int = 0
    open_options: dict = dataclasses.field(default_factory=dict)


Opened = xr.DataArray | Dataset  # a (time, lat, lon, channel) field, or a dataset already split


@dataclasses.dataclass(frozen=True)
class Entry:
    """A dataset of the table.

    Attributes:
      description: one line, for people.
      open: the `Request` to a ``(time, lat, lon, channel)`` field, which
        `load_dataset` splits on time, normalizes and masks; or to a `Dataset`
        already split (the paper's pre-windowed files).
      files: the files it reads, given ``path=`` (recorded with every run).
    """

    description: str
    open: Callable[[Request], Opened]
    files: Callable[[str | None], list[str]] = lambda path: []


def open_embedded(request: Request) -> xr.DataArray:
    variables = request.data.variables or "air_temperature"
    return open_field(EMBEDDED_FILE, variables, chunks=request.chunks, **request.open_options)


def open_paper_file(request: Request) -> Dataset:
    path = request.data.data_path
    if path is None:
        raise DataError(
            f"dataset {request.data.dataset!r} needs path= the paper's netCDF file "
            "(see data/README.md)"
        )
    return paper_dataset(request.data, open_dataset(path, request.chunks), path, request.spec)


def open_synthetic(request: Request) -> xr.DataArray:
    field = synthetic_field(*request.synthetic_shape, seed=request.seed)
    return field if request.chunks is None else field.chunk(request.chunks)


def open_weather(request: Request) -> xr.DataArray:
    return open_field(
        weather_file(request.seed), request.data.variables, chunks=request.chunks,
        **request.open_options,
    )  # fmt: skip


def paper_files(path: str | None) -> list[str]:
    return resolve_paths(path) if path is not None else []


DATASETS: dict[str, Entry] = {
    "hadcm3-a1b": Entry(
        "HadCM3 A1B annual surface air temperature over North America, 1860-2099, 37x49 "
        "(iris-sample-data, installed with stconv)",
        open_embedded,
        lambda path: [EMBEDDED_FILE],
    ),
    "cfsr": Entry(
        "the paper's CFSR air temperature, pre-windowed (path= its Zenodo file)",
        open_paper_file,
        paper_files,
    ),
    "chirps": Entry(
        "the paper's CHIRPS rainfall, pre-windowed (path= its Zenodo file)",
        open_paper_file,
        paper_files,
    ),
    "weather": Entry(
        "coupled weather-like synthetic data (labelled so): daily t2m (K) advected by u10 and "
        "v10 (m s-1) with seasons, 20 years on 16x32, and a static orography (m); generated "
        "on first use into ~/.cache/stconv (or $STCONV_DATA_DIR)",
        open_weather,
        lambda path: [weather_file()],
    ),
    "synthetic": Entry(
        "seeded advecting, diffusing fields of any size (for tests and benchmarks)",
        open_synthetic,
    ),
}


def is_path(name: str) -> bool:
    """Whether a dataset name not in `DATASETS` is meant as a file, glob or store."""
    return os.path.exists(name) or any(c in name for c in "*?[") or name.endswith((".nc", ".zarr"))


def open_path(request: Request) -> Opened:
    """A netCDF file, glob or zarr store, opened once: the paper's format
    (read whole), or a field."""
    options = dict(request.open_options)
    stream_if_large = options.pop("stream_if_large", False)
    files, dataset, choosing = open_for_field(request.data.dataset, request.chunks, stream_if_large)
    if is_paper_format(dataset):
        dataset = dataset.load() if choosing else dataset
        return paper_dataset(request.data, dataset, request.data.dataset, request.spec)
    variables = request.data.variables
    return opened_field(dataset, files, variables, stream_if_large=choosing, **options)


def opener(name: str) -> Callable[[Request], Opened]:
    """How `load_dataset` opens ``name``; DataError naming the choices if it is
    neither a dataset of the table nor a path."""
    if name in DATASETS:
        return DATASETS[name].open
    if is_path(name):
        return open_path
    raise DataError(f"dataset {name!r} is unknown: choose from {list(DATASETS)} or a netCDF path")


def data_files(
    name: str, path: str | None = None, mask_file: str | None = None, static: str | None = None
) -> list[str]:
    """The files that `load_dataset` reads for ``name`` (``path`` for the
    paper's datasets), then the mask file, then the file of the ``static``
    fields (``FILE[:var,var]``) where it is another; none for generated data."""
    files = DATASETS[name].files(path) if name in DATASETS else resolve_paths(name)
    files += [mask_file] if mask_file is not None else []
    files += resolve_paths(static_file(static)) if static is not None else []
    return list(dict.fromkeys(files))


def static_file(static: str) -> str:
    """The file of the static fields ``static`` (``FILE[:var,var]``): FILE, or
    the file of the dataset it names (``weather``)."""
    path, _ = split_static(static, lambda given: os.path.exists(dataset_file(given)))
    return dataset_file(path)


def load_dataset(
    data: DataConfig | str,
    *,
    stride: int = 1,
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
    chunks: Mapping | None = None,
    synthetic_shape: tuple[int, int, int, int] = (400, 16, 16, 1),
    seed: int = 0,
    path: str | None = None,
    **options,
) -> Dataset:
    """Loads a dataset by name or path, split, normalized and masked.

    ``load_dataset(DataConfig(dataset="hadcm3-a1b", horizon=3))`` (a run's
    data section), or with the dataset's name and the section's fields as
    keywords: ``load_dataset("hadcm3-a1b", horizon=3)``.

    Args:
      data: the data section (`stconv.config.DataConfig`: the dataset, its
        variables and targets, window lengths, normalization, mask, static
        and calendar inputs, bbox), or a name of `DATASETS` or a file path /
        glob, with the section's other fields in ``options``.
      stride: steps between window starts (time-series data only).
      fractions: train, validation, test fractions of time (the paper's files
        use the reference's sample split instead).
      chunks: dask chunks to keep the data lazy, e.g. ``{"time": 64}``.
      synthetic_shape: ``(time, lat, lon, channels)`` of the synthetic field.
      seed: the synthetic field's seed.
      path: with a name: the section's ``data_path`` (the file of ``cfsr`` and ``chirps``).
      **options: with a name: the section's fields (``input_length``,
        ``horizon``, ``normalization``, ``variables``, ``targets``,
        ``mask_file``, ``climatology_window``, ``static``, ``time_features``,
        ``allow_extreme_values``, ``bbox``); and ``dims``, ``time_range``,
        ``stream_if_large`` (lazy in chunks of its own choosing if the data
        would not fit this machine's memory, as ``stconv train`` does) for
        `stconv.data.files.open_field`.

    Raises:
      DataError: naming the file, variable or field that is not usable.
    """
    if isinstance(data, str):
        data, options = data_section(data, path, options)
    spec = WindowSpec(data.input_length, data.horizon, stride)
    given = {"bbox": data.bbox, "time_range": data.time_range}  # what the files are read with
    options = {**options, **{name: value for name, value in given.items() if value is not None}}
    request = Request(data, spec, chunks, synthetic_shape, seed, options)
    name = data.dataset
    opened = opener(name)(request)
    if isinstance(opened, Dataset):
        if data.static is not None or data.time_features or data.time_range is not None:
            raise DataError(
                f"dataset {name!r} is pre-windowed without dates or coordinates: it takes "
                "no data.static, no data.time_features and no data.time_range"
            )
        return opened
    extra = extra_inputs(opened, data, f"dataset {name!r}")
    return field_dataset(data, opened, spec, fractions, extra)


def data_section(name: str, path: str | None, options: dict) -> tuple[DataConfig, dict]:
    """The data section of ``load_dataset(name, path=..., **options)`` and the
    options that are not its fields (`stconv.data.files.open_field`'s).

    Raises:
      DataError: naming the field, for an invalid value.
    """
    fields = {field.name for field in dataclasses.fields(DataConfig)}
    given = {key: value for key, value in options.items() if key in fields}
    try:
        data = DataConfig(dataset=name, data_path=path, **given)
    except ValueError as error:
        raise DataError(str(error)) from None
    return data, {key: value for key, value in options.items() if key not in fields}
