"""A rotated pole's grid placed on the globe: `stconv.data.projection`, and
the grid value that carries its pole from a CORDEX file to a run's
``data.json`` and forecast files."""

import numpy as np
import pytest
import xarray as xr

from stconv.data.grid import Grid
from stconv.data.projection import RotatedPole

# Recorded with PROJ 9 (pyproj 3.7.2, from the CF attributes by
# pyproj.CRS.from_cf, to EPSG:4326) at rlat (-23.375, 0, 21.835) and
# rlon (-28.375, 10, 18.155).
RLAT, RLON = np.array([-23.375, 0.0, 21.835]), np.array([-28.375, 10.0, 18.155])
RECORDED = {
    (39.25, -162.0, 0.0): ([21.987829, 49.696417, 66.689837], [-10.06388, 33.572482, 64.964377]),
    (-40.0, 30.0, -35.0): ([72.459166, 32.797751, 10.797012], [9.42804, -27.267593, -19.133541]),
}


@pytest.mark.parametrize("pole", list(RECORDED))
def test_cells_are_placed_where_proj_places_them(pole):
    lat, lon = RotatedPole(*pole).geographic(RLAT, RLON)
    assert lat.shape == lon.shape == (3, 3)
    expected_lat, expected_lon = RECORDED[pole]
    np.testing.assert_allclose(np.diag(lat), expected_lat, atol=1e-6)
    np.testing.assert_allclose(np.diag(lon), expected_lon, atol=1e-6)


def test_the_rotated_origin_lies_opposite_the_pole():
    """EURO-CORDEX's pole (39.25 N, 162 W): the rotated origin is at 50.75 N, 18 E,
    and the rotated pole itself at the pole."""
    pole = RotatedPole(39.25, -162.0)
    lat, lon = pole.geographic([0.0, 90.0], [0.0])
    np.testing.assert_allclose(lat[:, 0], [50.75, 39.25], atol=1e-12)
    np.testing.assert_allclose(lon[0, 0], 18.0, atol=1e-12)


def cordex(mapping: dict) -> xr.Dataset:
    data = xr.Dataset(
        {"tas": (("time", "rlat", "rlon"), np.zeros((2, 3, 3)), {"grid_mapping": "rotated_pole"})},
        {"rlat": RLAT, "rlon": RLON},
    )
    data["rotated_pole"] = xr.Variable((), np.int32(0), mapping)
    return data


def test_the_pole_is_read_from_the_grid_mapping_a_variable_names():
    attrs = {
        "grid_mapping_name": "rotated_latitude_longitude",
        "grid_north_pole_latitude": 39.25,
        "grid_north_pole_longitude": -162.0,
    }
    assert RotatedPole.of(cordex(attrs), ["tas"]) == RotatedPole(39.25, -162.0, 0.0)
    assert RotatedPole.of(cordex(attrs).drop_vars("rotated_pole"), ["tas"]) is None
    lambert = {"grid_mapping_name": "lambert_conformal_conic", "standard_parallel": 30.0}
    assert RotatedPole.of(cordex(lambert), ["tas"]) is None


def test_a_grid_keeps_its_pole_in_its_description():
    grid = Grid(lat=RLAT, lon=RLON, channels=("tas",), rotated=True, pole=RotatedPole(-40, 30, -35))
    again = Grid.from_description(grid.description())
    assert again.pole == grid.pole and again.rotated
    old = {key: value for key, value in grid.description().items() if key != "rotated_pole"}
    assert Grid.from_description(old).pole is None
    assert Grid(lat=RLAT, lon=RLON, channels=("tas",)).map_variables() == {}


def test_the_map_variables_name_the_cells_latitude_and_longitude():
    grid = Grid(
        lat=RLAT, lon=RLON, channels=("tas",), rotated=True, pole=RotatedPole(39.25, -162.0),
        dims={"lat": "rlat", "lon": "rlon"},
    )  # fmt: skip
    variables = grid.map_variables()
    assert list(variables) == ["lat", "lon", "rotated_pole"]
    assert variables["lat"].dims == ("rlat", "rlon")
    np.testing.assert_allclose(np.diag(variables["lat"].values), RECORDED[39.25, -162.0, 0.0][0])
    assert variables["rotated_pole"].attrs["grid_north_pole_latitude"] == 39.25
    assert grid.attrs(0)["grid_mapping"] == "rotated_pole"
    on_lat_lon = Grid(lat=RLAT, lon=RLON, channels=("tas",), rotated=True, pole=grid.pole)
    assert list(on_lat_lon.map_variables()) == ["latitude", "longitude", "rotated_pole"]
