"""Scores per grid cell (stconv.evaluation.cells) and per region (stconv.evaluation.regions)."""

import numpy as np
import pytest
import scores
import xarray as xr

from stconv.data.errors import DataError
from stconv.evaluation.cells import CellAccumulator, cell_scores, write_cell_scores
from stconv.evaluation.metrics import area_weights
from stconv.evaluation.regions import (
    REGIONS,
    land_of,
    parse_regions,
    region_masks,
    regional_scores,
)

SHAPE = (6, 2, 2, 3, 2)  # (window, lead, lat, lon, channel): a 2x3 grid


def example(seed: int = 0, shape: tuple[int, ...] = SHAPE) -> dict[str, np.ndarray]:
    """Forecast, truth, climatology and a mask with a few invalid values (NaN there)."""
    rng = np.random.default_rng(seed)
    truth = rng.normal(10, 3, shape)
    mask = rng.random(shape) > 0.15
    truth[~mask] = np.nan
    return {
        "forecast": truth + rng.normal(0.5, 1, shape),
        "truth": truth,
        "mask": mask,
        "climatology": 10 + rng.normal(0, 0.5, shape),
    }


def accumulated(data: dict, splits: tuple[int, ...] = (), **coords) -> xr.Dataset:
    accumulator = CellAccumulator(("model",))
    for part in np.split(np.arange(len(data["truth"])), splits):
        accumulator.add("model", **{key: value[part] for key, value in data.items()})
    return accumulator.cell_sums(**coords)


def test_a_cell_scored_by_hand():
    """Cell (0, 0) of three windows, errors 1, -1, 3: RMSE sqrt(11/3), bias 1, MAE 5/3;
    anomalies f' = 1, 2, 6 and o' = 0, 3, 3 (climatology 0): correlation by hand."""
    forecast = np.zeros((3, 1, 2, 3, 1))
    truth = np.zeros_like(forecast)
    forecast[:, 0, 0, 0, 0], truth[:, 0, 0, 0, 0] = [1, 2, 6], [0, 3, 3]
    forecast[:, 0, 1, 2, 0] = [1, 1, 1]  # a constant anomaly: no correlation
    accumulator = CellAccumulator(("model",))
    accumulator.add("model", forecast, truth, np.ones(forecast.shape, bool), 0 * truth)
    result = cell_scores(accumulator.cell_sums()).sel(forecast="model", lead_time=1, variable="0")
    assert result["rmse"].values[0, 0] == pytest.approx(np.sqrt(11 / 3))
    assert result["bias"].values[0, 0] == pytest.approx(1)
    assert result["mae"].values[0, 0] == pytest.approx(5 / 3)
    f, o = np.array([1, 2, 6]) - 3, np.array([0, 3, 3]) - 2  # centred: means 3 and 2
    assert result["acc"].values[0, 0] == pytest.approx(f @ o / np.sqrt(f @ f * (o @ o)))
    assert result["acc"].values[0, 0] == pytest.approx(6 / np.sqrt(14 * 6))
    assert np.isnan(result["acc"].values[1, 2])  # no variance
    assert np.isnan(result["acc"].values[0, 1])  # neither anomaly varies
    assert result["rmse"].values[1, 2] == 1 and result["windows"].values[1, 2] == 3


def test_cell_scores_equal_numpy_per_cell():
    """Every cell, lead and channel against numpy over that cell's valid windows,
    the ACC against np.corrcoef of the anomalies."""
    data = example()
    result = cell_scores(accumulated(data)).sel(forecast="model")
    for lead, row, column, channel in np.ndindex(SHAPE[1:]):
        at = (slice(None), lead, row, column, channel)
        valid = data["mask"][at]
        f, o, c = (data[key][at][valid] for key in ("forecast", "truth", "climatology"))
        cell = result.isel(lead_time=lead, lat=row, lon=column, variable=channel)
        assert cell["rmse"].item() == pytest.approx(np.sqrt(np.mean((f - o) ** 2)))
        assert cell["bias"].item() == pytest.approx(np.mean(f - o))
        assert cell["mae"].item() == pytest.approx(np.mean(np.abs(f - o)))
        assert cell["acc"].item() == pytest.approx(np.corrcoef(f - c, o - c)[0, 1])
        assert cell["windows"].item() == valid.sum()


def test_two_batches_sum_to_one():
    data = example(1)
    one, two = accumulated(data), accumulated(data, splits=(4,))
    xr.testing.assert_allclose(one, two, rtol=1e-12)
    xr.testing.assert_allclose(cell_scores(one), cell_scores(two), rtol=1e-12)


def test_masked_cells_are_nan_and_ignored():
    data = example(2)
    data["mask"][:, :, 0, 1, :] = False  # never valid
    data["mask"][1:, :, 1, 0, :] = False  # one valid window
    data["mask"][0, :, 1, 0, :] = True
    data["truth"][0, :, 1, 0, :], data["forecast"][0, :, 1, 0, :] = 10.0, 11.0
    data["forecast"][~data["mask"]] = np.inf  # values outside the mask add nothing
    result = cell_scores(accumulated(data))
    never = result.isel(lat=0, lon=1)
    for name in ("rmse", "bias", "mae", "acc"):
        assert never[name].isnull().all(), name
    assert (never["windows"] == 0).all()
    once = result.isel(lat=1, lon=0, forecast=0)
    assert once["acc"].isnull().all() and (once["rmse"] == 1).all()
    others = result.drop_isel(lat=0, lon=1)
    assert np.isfinite(others["rmse"]).all()


def test_forecasts_with_and_without_climatology():
    data = example(3)
    accumulator = CellAccumulator(("model", "climatology", "persistence"))
    accumulator.add("model", **data)
    accumulator.add(
        "climatology", data["climatology"], data["truth"], data["mask"], data["climatology"]
    )
    persistence = np.nan_to_num(data["truth"][::-1], nan=10.0)
    accumulator.add("persistence", persistence, data["truth"], data["mask"])
    sums = accumulator.cell_sums(variables=["t2m", "tp"], units=["K", "mm"])
    result = cell_scores(sums)
    assert result["acc"].sel(forecast="model").notnull().all()
    assert result["acc"].sel(forecast=["climatology", "persistence"]).isnull().all()
    assert result["rmse"].sel(forecast="persistence").notnull().all()
    assert list(result["units"].values) == ["K", "mm"]
    assert result.sizes == {"forecast": 3, "lead_time": 2, "lat": 2, "lon": 3, "variable": 2}


def test_accumulator_errors():
    data = example()
    accumulator = CellAccumulator(("model",))
    with pytest.raises(ValueError, match=r"^cell_sums: no batch"):
        accumulator.cell_sums()
    with pytest.raises(ValueError, match=r"^name: 'other'"):
        accumulator.add("other", **data)
    with pytest.raises(ValueError, match=r"^forecast: shapes"):
        accumulator.add("model", data["forecast"][:, :1], data["truth"], data["mask"])
    accumulator.add("model", data["forecast"], data["truth"], data["mask"])
    with pytest.raises(ValueError, match=r"^forecast: shape .* differs"):
        accumulator.add("model", *(data[k][:, :, :1] for k in ("forecast", "truth", "mask")))
    with pytest.raises(ValueError, match=r"^climatology: forecast 'model'"):
        accumulator.add("model", **data)
    with pytest.raises(ValueError, match=r"^variables: 1 values for 2"):
        accumulator.cell_sums(variables=["t2m"])
    with pytest.raises(ValueError, match=r"^forecasts:"):
        CellAccumulator(("model", "model"))


def test_cell_scores_netcdf_round_trip_and_no_overwrite(tmp_path):
    data = example(4)
    lat, lon = np.array([45.0, -45.0]), np.array([0.0, 120.0, 240.0])
    result = cell_scores(
        accumulated(data, lat=lat, lon=lon, variables=["a", "b"], units=["K", "m"])
    )
    path = tmp_path / "cells.nc"
    write_cell_scores(result, path)
    with xr.open_dataset(path) as read:
        xr.testing.assert_identical(read.load(), result)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match=r"cells.nc exists"):
        write_cell_scores(result, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cells.nc"]  # no temporary left


def direct_scores(data: dict, weights: np.ndarray, rows=slice(None)) -> dict[str, np.ndarray]:
    """The whole-grid scores per lead and channel, computed directly over windows and cells."""
    valid = data["mask"][:, :, rows]
    error = np.where(valid, data["forecast"] - data["truth"], 0.0)[:, :, rows]
    w = np.where(valid, weights.astype(np.float64)[rows, None, None], 0.0)
    axes = (0, 2, 3)
    return {
        "rmse": np.sqrt((error**2).sum(axes) / valid.sum(axes)),
        "weighted_rmse": np.sqrt((w * error**2).sum(axes) / w.sum(axes)),
        "mae": np.abs(error).sum(axes) / valid.sum(axes),
        "weighted_mae": (w * np.abs(error)).sum(axes) / w.sum(axes),
        "bias": error.sum(axes) / valid.sum(axes),
    }


@pytest.mark.parametrize("weighted", [False, True])
def test_global_region_is_the_whole_grid_score(weighted):
    data = example(5)
    lat = np.array([60.0, 0.0])
    weights = area_weights(lat) if weighted else None
    sums = accumulated(data, lat=lat)
    masks = region_masks(parse_regions("global,tropics"), lat, np.arange(3) * 120.0)
    result = regional_scores(sums, masks, weights)
    ones = np.ones(2) if weights is None else weights.astype(np.float64)
    direct = direct_scores(data, ones)
    for metric, value in direct.items():
        got = result["per_lead"].sel(forecast="model", region="global", metric=metric)
        np.testing.assert_allclose(got.transpose("lead_time", "variable"), value, rtol=1e-12)
    tropics = direct_scores(data, ones, rows=slice(1, 2))
    got = result["per_lead"].sel(forecast="model", region="tropics", metric="rmse")
    np.testing.assert_allclose(got.transpose("lead_time", "variable"), tropics["rmse"])
    everything = result["overall"].sel(forecast="model", region="global", metric="weighted_rmse")
    valid = data["mask"]
    w = np.where(valid, ones[:, None, None], 0)
    error = np.where(valid, data["forecast"] - data["truth"], 0)
    expected = np.sqrt((w * error**2).sum((0, 1, 2, 3)) / w.sum((0, 1, 2, 3)))
    np.testing.assert_allclose(everything, expected, rtol=1e-12)
    assert (result["cells"].sel(region="global") == valid.sum((0, 1, 2, 3))).all()
    assert result.attrs["area_weighted"] == int(weighted)


def test_global_weighted_rmse_equals_scores_library():
    """The oracle: `scores`' latitude-weighted RMSE over time and cells, masked cells NaN."""
    data = example(6)
    lat = np.array([70.0, 10.0])
    weights = area_weights(lat).astype(np.float64)
    sums = accumulated(data, lat=lat)
    result = regional_scores(sums, region_masks((REGIONS["global"],), lat, np.zeros(3)), weights)
    dims = ("time", "lead_time", "lat", "lon", "variable")
    truth = xr.DataArray(np.where(data["mask"], data["truth"], np.nan), dims=dims)
    forecast = xr.DataArray(data["forecast"], dims=dims)
    expected = scores.continuous.rmse(
        forecast,
        truth,
        preserve_dims=["lead_time", "variable"],
        weights=xr.DataArray(weights, dims="lat"),
    )
    got = result["per_lead"].sel(forecast="model", region="global", metric="weighted_rmse")
    np.testing.assert_allclose(got.transpose("lead_time", "variable"), expected, rtol=1e-10)


def test_latitude_bands_on_a_north_to_south_grid():
    lat = np.array([89.0, 70.0, 66.5, 30.0, 20.0, 0.0, -20.0, -50.0, -66.5, -80.0])
    masks = region_masks(tuple(REGIONS[name] for name in list(REGIONS)[:6]), lat, np.zeros(1))
    rows = {name: list(lat[mask[:, 0]]) for name, mask in masks.items()}
    assert rows["global"] == list(lat)
    assert rows["tropics"] == [20.0, 0.0, -20.0]
    assert rows["northern_extratropics"] == [89.0, 70.0, 66.5, 30.0, 20.0]
    assert rows["southern_extratropics"] == [-20.0, -50.0, -66.5, -80.0]
    assert rows["arctic"] == [89.0, 70.0, 66.5]
    assert rows["antarctic"] == [-66.5, -80.0]


@pytest.mark.parametrize("box", ["350:10", "-10:10", "0:360"])
@pytest.mark.parametrize("first", [0.0, -180.0])
def test_a_box_across_the_seam(box, first):
    lon = first + np.arange(36) * 10.0  # 0..350 or -180..170
    lat = np.array([10.0, 0.0, -10.0])
    (mask,) = region_masks(parse_regions(f"seam=-5:10:{box}"), lat, lon).values()
    columns = sorted(np.mod(lon[mask.any(axis=0)], 360))
    assert columns == ([0.0, 10.0, 350.0] if box != "0:360" else sorted(np.mod(lon, 360)))
    assert list(mask.any(axis=1)) == [True, True, False]


def test_land_and_sea_from_a_land_mask():
    lat, lon = np.array([10.0, -10.0]), np.array([0.0, 120.0, 240.0])
    fraction = np.array([[0.9, 0.2, 0.5], [1.0, 0.0, 0.6]])
    specs = parse_regions("land,sea,box=0:20:100:250")
    masks = region_masks(specs, lat, lon, land=fraction)
    np.testing.assert_array_equal(masks["land"], fraction > 0.5)
    np.testing.assert_array_equal(masks["sea"], fraction <= 0.5)
    np.testing.assert_array_equal(masks["box"], [[False, True, True], [False, False, False]])
    with pytest.raises(ValueError, match=r"^regions: region 'sea' needs a land mask"):
        region_masks(parse_regions("sea"), lat, lon)
    with pytest.raises(ValueError, match=r"^land: shape"):
        region_masks(specs, lat, lon, land=fraction[:1])


def test_a_data_mask_is_a_land_mask_where_it_leaves_cells_out():
    lat, lon = np.array([10.0, -10.0]), np.array([0.0, 120.0])
    valid = np.array([[True, False], [True, True]])  # CHIRPS: no rain over the sea
    masks = region_masks(parse_regions("land,sea"), lat, lon, land=land_of(valid))
    np.testing.assert_array_equal(masks["sea"], ~valid)
    assert land_of(np.ones((2, 2), bool)) is None  # every cell valid: no land told from sea
    with pytest.raises(ValueError, match=r"^regions: region 'land' needs a land mask"):
        region_masks(parse_regions("land"), lat, lon, land=land_of(np.ones((2, 2), bool)))
    # A run scores the valid cells only: the data's sea, or a box in it, scores nothing.
    scored = region_masks(parse_regions("land,box=-15:-5:100:130"), lat, lon, scored=valid)
    np.testing.assert_array_equal(scored["land"], valid)  # the land of the scored cells
    for region in ("sea", "east=5:15:100:130"):
        with pytest.raises(ValueError, match=r"has no scored cell: the data's mask"):
            region_masks(parse_regions(region), lat, lon, scored=valid)


def write_regions(path, lat, lon, **variables) -> str:
    data = {name: (("latitude", "longitude"), values) for name, values in variables.items()}
    xr.Dataset(data, coords={"latitude": lat, "longitude": lon}).to_netcdf(path)
    return f"file:{path}"


def test_a_region_file_round_trip(tmp_path):
    lat, lon = np.array([-30.0, 30.0]), np.array([-120.0, 0.0, 120.0])  # south to north
    west = np.array([[1, 0, 0], [1, 1, 0]], np.int8)
    north = np.array([[False] * 3, [True] * 3])
    item = write_regions(tmp_path / "r.nc", lat, lon, west=west, north=north)
    grid_lat, grid_lon = lat[::-1], np.mod(lon, 360)  # the grid: north to south, 0..360
    masks = region_masks(parse_regions(f"global,{item}"), grid_lat, grid_lon)
    assert list(masks) == ["global", "west", "north"]
    np.testing.assert_array_equal(masks["west"], [[True, True, False], [True, False, False]])
    np.testing.assert_array_equal(masks["north"], [[True] * 3, [False] * 3])
    part = region_masks(parse_regions(item), grid_lat[:1], grid_lon[1:])  # a region of the file's
    np.testing.assert_array_equal(part["west"], [[True, False]])


def test_region_file_errors(tmp_path):
    lat, lon = np.array([10.0, -10.0]), np.array([0.0, 120.0, 240.0])
    inside = np.ones((2, 3), bool)
    with pytest.raises(DataError, match=r"missing.nc' does not exist"):
        region_masks(parse_regions(f"file:{tmp_path}/missing.nc"), lat, lon)
    other = write_regions(tmp_path / "other.nc", lat + 1, lon, a=inside)
    with pytest.raises(DataError, match=r"other.nc' is on another grid"):
        region_masks(parse_regions(other), lat, lon)
    fraction = write_regions(tmp_path / "fraction.nc", lat, lon, a=inside * 0.5)
    with pytest.raises(DataError, match=r"variable 'a' is not boolean or 0/1"):
        region_masks(parse_regions(fraction), lat, lon)
    empty = write_regions(tmp_path / "empty.nc", lat, lon, a=~inside)
    with pytest.raises(ValueError, match=r"^regions: region 'a' has no cell"):
        region_masks(parse_regions(empty), lat, lon)
    clash = write_regions(tmp_path / "clash.nc", lat, lon, tropics=inside)
    with pytest.raises(ValueError, match=r"^regions: region 'tropics' is given twice"):
        region_masks(parse_regions(f"tropics,{clash}"), lat, lon)


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty item"),
        ("global,", "empty item"),
        ("europe", "unknown region 'europe'"),
        ("box=0:10:20", "is not name=lat_min"),
        ("box=north:10:0:20", "is not name=lat_min"),
        ("box=10:0:0:20", "-90 <= lat_min <= lat_max <= 90"),
        ("box=-95:0:0:20", "-90 <= lat_min"),
        ("=0:10:0:20", "needs a name"),
        ("file:", "names no file"),
        ("tropics,tropics", "tropics given twice"),
    ],
)
def test_bad_region_text(text, message):
    with pytest.raises(ValueError, match=f"^regions: .*{message}") as error:
        parse_regions(text)
    assert "\n" not in str(error.value)


def test_regional_score_errors():
    sums = accumulated(example())
    masks = region_masks((REGIONS["global"],), np.array([1.0, 0.0]), np.zeros(3))
    with pytest.raises(ValueError, match=r"^weights: shape \(3,\)"):
        regional_scores(sums, masks, np.ones(3))
    with pytest.raises(ValueError, match=r"^regions: region 'x' has shape"):
        regional_scores(sums, {"x": np.ones((3, 2), bool)}, None)
    with pytest.raises(ValueError, match=r"^regions: region 'arctic' has no cell"):
        region_masks(parse_regions("arctic"), np.array([1.0, 0.0]), np.zeros(3))
