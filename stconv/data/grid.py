"""A field's grid: its rows and columns, and each channel's variable.

    grid = Grid.of(field)  # a field of `stconv.data.files.open_field`
    grid.lat, grid.channels, grid.units
    grid.first(2)  # the grid of the first two channels (a run's targets)

A run keeps its grid in ``data.json`` (`Grid.description`: the entries
``variables``, ``units``, ``long_name``, ``standard_name``, ``lat``, ``lon``,
``geographic``, ``rotated``, ``rotated_pole`` and ``dims``, as stconv always
wrote them), and reads it back with `Grid.from_description`.
"""

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np
import xarray as xr

from stconv.data.dims import DIMS
from stconv.data.files import CHANNEL_ATTRIBUTES
from stconv.data.projection import RotatedPole

# A field's channel attributes, their fields of `Grid` and their entries of ``data.json``.
ATTRIBUTES = dict(zip(CHANNEL_ATTRIBUTES, ("units", "long_names", "standard_names"), strict=True))


@dataclasses.dataclass(frozen=True, eq=False)
class Grid:
    """The grid of a field ``(time, lat, lon, channel)`` and its variables.

    Attributes:
      lat: the latitude of each row, or the row indices where the input has
        no coordinates (the paper's pre-windowed files).
      lon: the longitude of each column, or the column indices.
      channels: each channel's variable name (``z500`` for ``z:500``).
      units: each variable's units (``""`` where the input gives none).
      long_names: each variable's ``long_name`` (``""`` where it has none).
      standard_names: each variable's ``standard_name`` (``""`` where it has none).
      geographic: whether ``lat`` holds latitudes (coordinates of the input),
        which area weights need.
      rotated: whether they are a rotated pole's latitudes and longitudes
        (CF ``grid_latitude``: CORDEX's ``rlat`` and ``rlon``).
      pole: that pole, where the input's grid mapping names it; forecast
        files then carry each cell's latitude and longitude.
      dims: the input's own names of ``time``, ``lat`` and ``lon``
        (``latitude``, ``valid_time``), which forecast files keep.

    ``units``, ``long_names`` and ``standard_names`` left empty are ``""``
    for every channel.
    """

    lat: np.ndarray
    lon: np.ndarray
    channels: tuple[str, ...] = ()
    units: tuple[str, ...] = ()
    long_names: tuple[str, ...] = ()
    standard_names: tuple[str, ...] = ()
    geographic: bool = True
    rotated: bool = False
    pole: RotatedPole | None = None
    dims: Mapping[str, str] = dataclasses.field(default_factory=lambda: {d: d for d in DIMS})

    def __post_init__(self):
        fields = {"lat": np.asarray(self.lat), "lon": np.asarray(self.lon)}
        fields["channels"] = tuple(str(name) for name in self.channels)
        for name in ATTRIBUTES.values():
            values = tuple(str(value) for value in getattr(self, name))
            values = values or ("",) * len(self.channels)
            if len(values) != len(self.channels):
                raise ValueError(
                    f"grid {name}={values!r} is invalid: give one per channel "
                    f"({len(self.channels)}: {list(self.channels)})"
                )
            fields[name] = values
        fields["dims"] = {**{d: d for d in DIMS}, **dict(self.dims)}
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    @classmethod
    def of(cls, field: xr.DataArray) -> "Grid":
        """The grid of ``field``: its ``lat`` and ``lon`` coordinates (the row
        and column indices where it has none, as the paper's files), its
        channels and their attributes, and the input's names of the
        dimensions (the field's ``dims`` attribute)."""

        def values(dim: str) -> np.ndarray:
            if dim in field.coords:
                return field[dim].values
            return np.arange(field.sizes[dim], dtype=np.float32)

        def per_channel(attribute: str) -> tuple[str, ...]:
            if attribute in field.coords:
                return tuple(str(value) for value in field[attribute].values)
            return ()

        return cls(
            lat=values("lat"),
            lon=values("lon"),
            channels=tuple(str(c) for c in field["channel"].values),
            **{name: per_channel(attribute) for attribute, name in ATTRIBUTES.items()},
            geographic="lat" in field.coords,
            rotated="lat" in field.coords and is_rotated(field["lat"]),
            pole=field.attrs.get("rotated_pole"),
            dims=dict(field.attrs.get("dims", {})),
        )

    @classmethod
    def from_description(cls, description: Mapping) -> "Grid":
        """The grid a run's ``data.json`` records (`description`); runs made
        before ``geographic``, ``rotated``, ``rotated_pole`` and ``dims`` were
        recorded had latitudes, not rotated, and the dimensions' own names.

        Raises:
          KeyError: for a description without ``lat`` and ``lon`` (runs of
            old versions: the caller has no grid then).
        """
        pole = description.get("rotated_pole")
        return cls(
            lat=np.asarray(description["lat"]),
            lon=np.asarray(description["lon"]),
            channels=tuple(description["variables"]),
            **{name: tuple(description.get(key, ())) for key, name in ATTRIBUTES.items()},
            geographic=bool(description.get("geographic", True)),
            rotated=bool(description.get("rotated", False)),
            pole=RotatedPole.from_attrs(pole) if pole else None,
            dims=dict(description.get("dims", {})),
        )

    def description(self) -> dict:
        """The grid's entries of ``data.json``, as JSON values (``rotated_pole``
        only where the pole is known)."""
        return {
            "variables": list(self.channels),
            **{key: list(getattr(self, name)) for key, name in ATTRIBUTES.items()},
            "lat": self.lat.tolist(),
            "lon": self.lon.tolist(),
            "geographic": self.geographic,
            "rotated": self.rotated,
            "dims": dict(self.dims),
            **({"rotated_pole": self.pole.attrs()} if self.pole else {}),
        }

    def axis_attrs(self) -> tuple[dict, dict]:
        """The CF attributes of the latitude and longitude coordinates of a
        file on this grid: ``degrees_north`` and ``degrees_east``, or a rotated
        pole's ``grid_latitude`` and ``grid_longitude`` in degrees."""
        if self.rotated:
            return (
                {"standard_name": "grid_latitude", "units": "degrees", "axis": "Y"},
                {"standard_name": "grid_longitude", "units": "degrees", "axis": "X"},
            )
        return {"units": "degrees_north", "axis": "Y"}, {"units": "degrees_east", "axis": "X"}

    def map_variables(self) -> dict[str, xr.Variable]:
        """What places a rotated pole's grid on the globe in a file: the
        latitude and longitude of each cell, 2-D (``lat`` and ``lon``, or
        ``latitude`` and ``longitude`` where the grid's dims bear those
        names), and the grid mapping ``rotated_pole``; nothing for another grid."""
        if self.pole is None:
            return {}
        dims = (self.dim("lat"), self.dim("lon"))
        names = ("lat", "lon") if {"lat", "lon"}.isdisjoint(dims) else ("latitude", "longitude")
        lat, lon = self.pole.geographic(self.lat, self.lon)
        lat_attrs = {"standard_name": "latitude", "units": "degrees_north"}
        lon_attrs = {"standard_name": "longitude", "units": "degrees_east"}
        return {
            names[0]: xr.Variable(dims, lat, lat_attrs),
            names[1]: xr.Variable(dims, lon, lon_attrs),
            "rotated_pole": xr.Variable((), np.int32(0), self.pole.attrs()),
        }

    @property
    def shape(self) -> tuple[int, int]:
        """``(lat, lon)``: rows and columns."""
        return len(self.lat), len(self.lon)

    @property
    def latitudes(self) -> np.ndarray | None:
        """The latitude of each row, or None where the rows are not latitudes
        (`geographic` is false): what area weights are made of."""
        return self.lat if self.geographic else None

    def dim(self, name: str) -> str:
        """The input's own name of the dimension ``name`` (``lat``, ``lon``, ``time``)."""
        return self.dims.get(name, name)

    def first(self, count: int) -> "Grid":
        """The grid of the first ``count`` channels: a run's targets."""
        return dataclasses.replace(
            self,
            channels=self.channels[:count],
            **{name: getattr(self, name)[:count] for name in ATTRIBUTES.values()},
        )

    def in_units(self, units: Sequence[str]) -> "Grid":
        """The grid with ``units`` (one per channel, or more: the first are
        taken), as the variables of a run's forecasts are written."""
        return dataclasses.replace(self, units=tuple(units)[: len(self.channels)])

    def attrs(self, channel: int) -> dict[str, str]:
        """A variable's attributes in a file: its ``units`` (always), its
        ``long_name`` and ``standard_name`` where known, and its
        ``grid_mapping`` on a rotated pole's grid (`map_variables`)."""
        attrs = {"units": self.units[channel]}
        for attribute in CHANNEL_ATTRIBUTES[1:]:
            value = getattr(self, ATTRIBUTES[attribute])[channel]
            if value:
                attrs[attribute] = value
        if self.pole is not None:
            attrs["grid_mapping"] = "rotated_pole"
        return attrs


def is_rotated(latitudes: xr.DataArray) -> bool:
    """Whether a latitude coordinate is a rotated pole's (CF ``grid_latitude``:
    CORDEX's ``rlat``)."""
    return latitudes.attrs.get("standard_name") == "grid_latitude"


def positions(values: np.ndarray, wanted: np.ndarray) -> np.ndarray | None:
    """The index in ``values`` (latitudes, or longitudes modulo 360) of every
    value of ``wanted``, or None unless ``values`` holds each of them."""
    values, wanted = np.asarray(values, np.float64), np.asarray(wanted, np.float64)
    order = np.argsort(values)
    ordered = values[order]
    above = np.clip(np.searchsorted(ordered, wanted), 0, len(values) - 1)
    below = np.clip(above - 1, 0, len(values) - 1)
    nearer = np.abs(ordered[below] - wanted) < np.abs(ordered[above] - wanted)
    found = order[np.where(nearer, below, above)]
    return found if np.allclose(values[found], wanted) else None


def cells_of(
    lat: np.ndarray, lon: np.ndarray, wanted_lat: np.ndarray, wanted_lon: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """The rows and columns of a grid of ``lat`` x ``lon`` that hold the cells
    of ``wanted_lat`` x ``wanted_lon``, in their order (`positions`; the
    longitudes in either convention), or None unless the grid holds them all."""
    rows = positions(lat, wanted_lat)
    columns = positions(np.mod(lon, 360), np.mod(wanted_lon, 360))
    return None if rows is None or columns is None else (rows, columns)
