"""A rotated pole's grid (CF ``rotated_latitude_longitude``, CORDEX's): the
pole a file's grid mapping names, and the geographic latitude and longitude
of each of its cells, which forecast files carry beside ``rlat`` and ``rlon``.

    pole = RotatedPole.of(dataset, ["tas"])  # None without a rotated grid mapping
    lat, lon = pole.geographic(rlat, rlon)  # (rlat, rlon) arrays of degrees
"""

import dataclasses
from collections.abc import Iterable, Mapping

import numpy as np
import xarray as xr

MAPPING_NAME = "rotated_latitude_longitude"


@dataclasses.dataclass(frozen=True)
class RotatedPole:
    """The north pole of a rotated grid, in CF's terms.

    Attributes:
      latitude: ``grid_north_pole_latitude``, in degrees.
      longitude: ``grid_north_pole_longitude``, in degrees.
      grid_longitude: ``north_pole_grid_longitude``: the rotated longitude of
        the geographic north pole (CF's default 0).
    """

    latitude: float
    longitude: float
    grid_longitude: float = 0.0

    @classmethod
    def of(cls, dataset: xr.Dataset, variables: Iterable[str]) -> "RotatedPole | None":
        """The pole of the grid mapping of the first of ``variables`` that
        names one (its ``grid_mapping`` attribute), or None where none names
        a rotated pole's."""
        for name in variables:
            array = dataset[name]
            mapping = array.attrs.get("grid_mapping") or array.encoding.get("grid_mapping")
            if mapping in dataset.variables:
                attrs = dataset[mapping].attrs
                if attrs.get("grid_mapping_name") == MAPPING_NAME:
                    return cls.from_attrs(attrs)
        return None

    @classmethod
    def from_attrs(cls, attrs: Mapping) -> "RotatedPole":
        """The pole of a grid mapping's CF attributes (`attrs`)."""
        return cls(
            latitude=float(attrs["grid_north_pole_latitude"]),
            longitude=float(attrs["grid_north_pole_longitude"]),
            grid_longitude=float(attrs.get("north_pole_grid_longitude", 0.0)),
        )

    def __str__(self) -> str:
        return f"rotated about the pole ({self.latitude:g}, {self.longitude:g})"

    def attrs(self) -> dict:
        """The CF attributes of the grid mapping variable."""
        return {
            "grid_mapping_name": MAPPING_NAME,
            "grid_north_pole_latitude": self.latitude,
            "grid_north_pole_longitude": self.longitude,
            "north_pole_grid_longitude": self.grid_longitude,
        }

    def geographic(self, rlat: np.ndarray, rlon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The latitude and longitude (-180..180), in degrees, of every cell of
        the rows ``rlat`` and columns ``rlon``: two ``(rlat, rlon)`` arrays.

        The rotation that takes the pole (90, 0) of the rotated sphere to
        (``latitude``, ``longitude``), its meridian ``grid_longitude`` through
        the geographic north pole.
        """
        row, column = np.meshgrid(np.asarray(rlat, np.float64), np.asarray(rlon, np.float64))
        row, column = np.radians(row.T), np.radians(column.T - self.grid_longitude)
        pole = np.radians(self.latitude)
        latitude = np.arcsin(
            np.sin(row) * np.sin(pole) + np.cos(row) * np.cos(column) * np.cos(pole)
        )
        east = np.cos(row) * np.sin(column)
        north = np.sin(pole) * np.cos(row) * np.cos(column) - np.cos(pole) * np.sin(row)
        longitude = self.longitude + 180 + np.degrees(np.arctan2(east, north))
        return np.degrees(latitude), (longitude + 180) % 360 - 180
