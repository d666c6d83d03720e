"""Opening files as fields: variables, boxes, periods, globs, CF dims, zarr."""

import warnings

import numpy as np
import pytest
import xarray as xr
from conftest import time_series_dataset

from stconv.data.errors import DataError
from stconv.data.files import StoreWarning, open_field
from stconv.data.registry import load_dataset


def test_open_field_variables_bbox_time_range_and_glob(tmp_path):
    data = time_series_dataset(variables=("tas", "pr"))
    data.isel(time=slice(0, 12)).to_netcdf(tmp_path / "part-1.nc")
    data.isel(time=slice(12, None)).to_netcdf(tmp_path / "part-2.nc")
    field = open_field(str(tmp_path / "part-*.nc"))
    assert field.dims == ("time", "lat", "lon", "channel") and field.shape == (30, 4, 5, 2)
    assert list(field["channel"].values) == ["tas", "pr"]
    np.testing.assert_array_equal(field.values[13, 2, 3], [1323, 2323])
    box = open_field(str(tmp_path / "part-1.nc"), "pr", bbox=(-1, 10, 5, 25))
    assert box.shape == (12, 2, 2, 1)
    np.testing.assert_allclose(box["lat"].values, [10 / 3, 10.0])
    window = open_field([tmp_path / "part-1.nc"], time_range=("2001-01-03", "2001-01-05"))
    assert window.sizes["time"] == 3
    numbers = data.assign_coords(time=np.arange(30.0) * 6)  # hours since its start
    numbers.to_netcdf(tmp_path / "numbers.nc")
    steps = open_field(tmp_path / "numbers.nc", "tas", time_range=("12", "30"))
    assert steps["time"].values.tolist() == [12.0, 18.0, 24.0, 30.0]
    with pytest.raises(DataError, match=r"data.time_range=\('x', '30'\) is invalid: its time axis"):
        open_field(tmp_path / "numbers.nc", "tas", time_range=("x", "30"))
    with pytest.raises(
        DataError, match=r"part-1.nc': data.time_range=.* is invalid: its time axis"
    ):
        open_field(tmp_path / "part-1.nc", time_range=("abc", "2001-01-05"))


def test_dims_from_cf_attributes_and_overrides(tmp_path):
    data = time_series_dataset().rename({"time": "valid_time", "lat": "rlat", "lon": "rlon"})
    data["valid_time"].attrs["axis"] = "T"
    data["rlat"].attrs = {"standard_name": "grid_latitude"}
    data["rlon"].attrs = {"axis": "X"}
    data.to_netcdf(tmp_path / "cf.nc")
    assert open_field(str(tmp_path / "cf.nc")).shape == (30, 4, 5, 1)
    plain = time_series_dataset().rename({"lat": "north", "lon": "east"})
    plain["north"].attrs = {}
    plain["east"].attrs = {}
    plain.to_netcdf(tmp_path / "plain.nc")
    with pytest.raises(DataError, match=r"no lat dimension .* axis=Y \(ncatted .* pass dims="):
        open_field(str(tmp_path / "plain.nc"))
    # An ocean model's curvilinear grid: 2-D latitudes and longitudes over j x i.
    j, i = np.meshgrid(np.arange(4), np.arange(5), indexing="ij")
    ocean = time_series_dataset().rename({"lat": "j", "lon": "i"})
    ocean["j"].attrs, ocean["i"].attrs = {}, {}
    ocean = ocean.assign_coords(latitude=(("j", "i"), 40 + j + 0.1 * i), longitude=(("j", "i"), i))
    ocean.to_netcdf(tmp_path / "tos.nc")
    with pytest.raises(DataError, match=r"tos.nc' is on a curvilinear grid \('latitude' is 2-D"):
        open_field(str(tmp_path / "tos.nc"))
    # WRF's output: XLAT and XLONG are 3-D over Time x south_north x west_east.
    wrf = time_series_dataset().drop_vars(["lat", "lon"]).rename_vars({"time": "XTIME"})
    wrf = wrf.rename_dims({"time": "Time", "lat": "south_north", "lon": "west_east"})
    wrf = wrf.assign_coords(
        XLAT=(
            wrf["tas"].dims,
            np.broadcast_to(40 + j + 0.1 * i, (30, 4, 5)),
            {"units": "degree_north"},
        ),
        XLONG=(wrf["tas"].dims, np.broadcast_to(i + 0.0, (30, 4, 5)), {"units": "degree_east"}),
    )
    wrf.to_netcdf(tmp_path / "wrfout.nc")
    with pytest.raises(DataError, match=r"wrfout.nc' is on a curvilinear grid \('XLAT' is 3-D"):
        open_field(str(tmp_path / "wrfout.nc"))
    # Daymet's Lambert conformal grid: x and y in metres, read as degrees before.
    projected = time_series_dataset().rename({"lat": "y", "lon": "x"})
    projected = projected.assign_coords(y=1e5 * np.arange(4), x=1e5 * np.arange(5))
    projected["y"].attrs = {"units": "m", "standard_name": "projection_y_coordinate"}
    projected["x"].attrs = {"units": "m", "standard_name": "projection_x_coordinate"}
    projected.to_netcdf(tmp_path / "daymet.nc")
    with pytest.raises(DataError, match=r"daymet.nc' is on a projected grid \('y' in m, not deg"):
        open_field(str(tmp_path / "daymet.nc"))
    field = open_field(str(tmp_path / "plain.nc"), dims={"lat": "north", "lon": "east"})
    assert field.shape == (30, 4, 5, 1)


def test_files_whose_coordinates_differ_by_rounding_combine(tmp_path):
    """One variable's file with float32 coordinates (as cdo or an older
    download writes them) beside another's float64, on a 0.1 degree grid:
    one grid, which xarray's exact join refused. A grid shifted is still refused."""
    data = time_series_dataset(lat=20, lon=30, variables=("tas", "pr"))
    data = data.assign_coords(lat=np.round(40 + 0.1 * np.arange(20), 1), lon=0.1 * np.arange(30))
    data[["tas"]].to_netcdf(tmp_path / "tas.nc")
    single = data[["pr"]].assign_coords(lat=data["lat"].astype(np.float32))
    single.assign_coords(lon=data["lon"].astype(np.float32)).to_netcdf(tmp_path / "pr.nc")
    assert not np.array_equal(single["lat"].values, data["lat"].values)
    field = open_field([tmp_path / "tas.nc", tmp_path / "pr.nc"])
    assert field.shape == (30, 20, 30, 2)
    np.testing.assert_array_equal(field["lat"].values, data["lat"].values)
    np.testing.assert_array_equal(field.sel(channel="pr").values, data["pr"].values)
    data[["tas"]].to_netcdf(tmp_path / "tas-r2.nc")  # another member of the same variable
    with pytest.raises(DataError, match=r"tas-r2.nc' \(\+1 more\) hold the same times on the"):
        open_field([tmp_path / "tas-r2.nc", tmp_path / "tas.nc"])
    data[["pr"]].assign_coords(lat=data["lat"] + 0.05).to_netcdf(tmp_path / "shifted.nc")
    with pytest.raises(DataError, match="do not combine into one dataset: cannot align"):
        open_field([tmp_path / "tas.nc", tmp_path / "shifted.nc"])


def test_a_time_axis_in_months_is_refused_with_the_conversion(tmp_path):
    """'months since': xarray cannot decode it, and said to pass decode_times=False."""
    data = time_series_dataset(num_steps=12).assign_coords(time=np.arange(12.0))
    data["time"].attrs = {"units": "months since 1979-01-01", "calendar": "standard"}
    data.to_netcdf(tmp_path / "monthly.nc")
    data.to_netcdf(tmp_path / "monthly-2.nc")
    refusal = (
        r"monthly(-2)?.nc'.* could not be opened: its time axis is in "
        r"'months since 1979-01-01', .* cdo settunits,days IN OUT$"
    )
    for paths in (tmp_path / "monthly.nc", str(tmp_path / "monthly*.nc")):
        with pytest.raises(DataError, match=refusal):
            open_field(paths)


def test_a_level_is_a_number_or_a_name(tmp_path):
    """Pangeo's CMIP6 stores hold every member on a ``member_id`` of names:
    reading its levels as numbers crashed with "could not convert string to float"."""
    data = time_series_dataset(num_steps=6)
    members = xr.concat([data["tas"], data["tas"] + 1], "member_id")
    data["tas"] = members.assign_coords(member_id=["r1i1p1f1", "r2i1p1f1"])
    data.to_netcdf(tmp_path / "members.nc")
    with pytest.raises(DataError, match=r"2 levels on 'member_id' \(r1i1p1f1, r2i1p1f1\)"):
        open_field(tmp_path / "members.nc")
    field = open_field(tmp_path / "members.nc", "tas:r2i1p1f1")
    assert field["channel"].values.tolist() == ["tas_r2i1p1f1"]
    np.testing.assert_array_equal(field.values[..., 0], data["tas"].values[1])
    with pytest.raises(DataError, match=r"no level 'r3' on 'member_id': choose from r1i1p1f1, r2"):
        open_field(tmp_path / "members.nc", "tas:r3")


def test_era5s_releases_are_merged_final_first(tmp_path):
    """Files of the old CDS spanning the last months hold ERA5 (expver 1) and
    the preliminary ERA5T (expver 5) on a dimension, each NaN where the other
    has the value; where both have one, the final release's is read."""
    data = time_series_dataset(num_steps=8)
    final, preliminary = data["tas"].copy(), data["tas"] + 0.5
    final[6:] = np.nan  # ERA5T for the last two days
    preliminary[:5] = np.nan  # day 5 in both releases
    releases = xr.concat([preliminary, final], "expver").assign_coords(expver=["0005", "0001"])
    data["tas"] = releases.transpose("time", "expver", "lat", "lon")
    data.to_netcdf(tmp_path / "era5.nc")
    field = open_field(str(tmp_path / "era5.nc"))
    assert field.shape == (8, 4, 5, 1)
    expected = time_series_dataset(num_steps=8)["tas"].values
    expected[6:] += 0.5
    np.testing.assert_array_equal(field.values[..., 0], expected)


def test_zarr_store(tmp_path):
    pytest.importorskip("zarr")
    time_series_dataset().to_zarr(tmp_path / "store.zarr")
    field = open_field(str(tmp_path / "store.zarr"))
    assert field.shape == (30, 4, 5, 1) and float(field[2, 1, 1, 0]) == 211.0
    dataset = load_dataset(str(tmp_path / "store.zarr"), input_length=3, horizon=2)
    assert len(dataset.splits["train"]) == 14
    time_series_dataset().to_zarr(tmp_path / "plain.zarr", consolidated=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plain = open_field(str(tmp_path / "plain.zarr"))
    assert [w.category for w in caught] == [StoreWarning]  # xarray's eight lines are not shown
    assert str(caught[0].message).startswith(f"zarr store '{tmp_path}/plain.zarr' has no cons")
    np.testing.assert_array_equal(plain.values, field.values)


@pytest.mark.parametrize(
    "lon, bbox, expected",
    [
        (np.arange(0, 360, 30.0), (-90, 90, -60, 60), [300, 330, 0, 30, 60]),  # across 0
        (np.arange(0, 360, 30.0), (-90, 90, 300, 420), [300, 330, 0, 30, 60]),  # the same box
        (np.arange(-180, 180, 30.0), (-90, 90, 150, 210), [150, -180, -150]),  # across 180
        (np.arange(-180, 180, 30.0), (-90, 90, 100, 160), [120, 150]),
        (np.arange(0, 360, 30.0), (-90, 90, -150, -90), [210, 240, 270]),  # west as negative
    ],
)
def test_a_box_in_either_longitude_convention_and_across_the_seam(tmp_path, lon, bbox, expected):
    data = time_series_dataset(lon=len(lon)).assign_coords(lon=lon)
    data.to_netcdf(tmp_path / "grid.nc")
    assert open_field(tmp_path / "grid.nc", bbox=bbox)["lon"].values.tolist() == expected
