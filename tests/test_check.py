"""``stconv check DATA``: what train would make of a file, before a run
(`stconv.data.inspection`), on the ERA5-style, CMIP-style, paper-schema and
broken files the suite builds (synthetic values)."""

import json
import shlex
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from conftest import digest, paper_format_dataset, time_series_dataset
from test_stores import air_temperature, chunk_file, half_written, write_store

from stconv import cli
from stconv.config import DataConfig
from stconv.data import footprint
from stconv.data.inspection import variable_summary
from stconv.data.inspection_table import step_name
from stconv.data.projection import RotatedPole
from stconv.data.registry import load_dataset
from stconv.data.synthetic import cmip6_like, era5_like

SERIES = ["--input-length", "3", "--horizon", "2"]


def check(capsys, *argv: str, code: int = 0) -> dict:
    """``stconv check --json``: asserts the exit code; the report."""
    assert cli.main(["check", *argv, "--json"]) == code
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def era5(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("check") / "era5.nc"
    era5_like(num_steps=40).to_netcdf(path)
    return path


def test_an_era5_file_is_described_as_train_reads_it(era5, capsys):
    report = check(capsys, str(era5), *SERIES, "--variables", "t2m,u10", "--targets", "t2m")
    grid = report["grid"]
    assert (grid["lat"], grid["lon"], grid["latitudes"]) == (7, 12, "north to south")
    assert (grid["longitudes"], grid["regular"], grid["spacing"]) == ("0..360", True, [20, 30])
    time = report["time"]
    assert (time["steps"], time["frequency"], time["calendar"]) == (40, "6h", "proleptic_gregorian")
    assert (time["gaps"], time["duplicates"], time["kind"]) == (0, 0, "subdaily")
    assert [v["name"] for v in report["variables"]] == ["t2m", "u10"]
    t2m = report["variables"][0]
    with xr.open_dataset(era5) as data:  # the values as read back (unpacked)
        assert t2m["min"] == pytest.approx(float(data["t2m"].min()))
        assert t2m["max"] == pytest.approx(float(data["t2m"].max()))
    assert (t2m["units"], t2m["fill_values"], t2m["missing_share"]) == ("K", [-32767.0], 0.0)
    dataset = load_dataset(str(era5), input_length=3, horizon=2, variables=["t2m", "u10"])
    assert report["windows"] == {s: len(source) for s, source in dataset.splits.items()}
    assert report["climatology"] == dataset.climatology.describe()  # under a year: the mean
    assert report["accepted"] and report["refusal"] is None
    assert "one full year" in report["warnings"][0]
    assert report["storage"]["field_shape"] == [40, 7, 12, 2]


def test_the_suggested_command_trains_with_the_flags_given(era5, capsys, monkeypatch):
    """It parses as a train command that gives the data section checked; a
    machine too small for the data in memory adds a time chunk."""
    monkeypatch.setattr(footprint, "physical_memory", lambda: 2**20)
    report = check(capsys, str(era5), *SERIES, "--variables", "t2m,u10", "--no-time-features")
    words = shlex.split(report["command"])
    assert words[:3] == ["stconv", "train", "--workdir"]
    args = cli.parser().parse_args(words[1:])
    config = cli.config_from_args(args)
    assert config.data == DataConfig(
        dataset=str(era5), variables=("t2m", "u10"), input_length=3, horizon=2
    )
    assert config.execution.time_chunk == report["memory"]["time_chunk"] == 40
    assert report["suggested"] == {"time_chunk": 40}
    assert report["memory"]["in_memory_bytes"] == footprint.in_memory_bytes((40, 7, 12, 2))


def test_the_table_names_what_matters(era5, capsys):
    assert cli.main(["check", str(era5), *SERIES]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"{era5}: train accepts these data")
    assert "latitudes north to south (-60..60), longitudes 0..360" in printed
    assert "every 6 hours (6h), calendar proleptic_gregorian, no gaps, no duplicates" in printed
    steps = [step_name(days) for days in (1 / 24, 0.25, 1, 2)]
    assert steps == ["hour", "6 hours", "day", "2 days"]
    lines = printed.splitlines()
    rows = {line.split()[0]: line.split() for line in lines if line.startswith(("t2m", "msl"))}
    assert rows["msl"][1:4] == ["Pa", "-", "-32767"]
    assert "suggested: stconv train --workdir runs/era5 --dataset" in printed


def test_a_bbox_across_the_meridian_is_reported_and_suggested_as_a_flag_that_parses(era5, capsys):
    report = check(capsys, str(era5), *SERIES, "--bbox=-30,30,-40,40")
    assert report["grid"]["selected"] == {
        "lat": 3, "lon": 3, "lat_range": [-20.0, 20.0], "lon_range": [330.0, 30.0],
    }  # fmt: skip
    words = shlex.split(report["command"])
    assert "--bbox=-30.0,30.0,-40.0,40.0" in words  # "--bbox -30,..." would be another flag
    config = cli.config_from_args(cli.parser().parse_args(words[1:]))
    assert config.data.bbox == (-30.0, 30.0, -40.0, 40.0)
    # The storage a run reads: the box's 3 x 3 cells of the file's 40 steps and 3 variables.
    assert report["storage"]["memory_bytes"] == 4 * 40 * 3 * 3 * 3
    assert cli.main(["check", str(era5), *SERIES, "--bbox=-30,30,-40,40"]) == 0
    printed = capsys.readouterr().out
    assert "; the bbox selects 3 x 3 (lat -20..20, lon 330..30)" in printed
    assert "in memory as float32 (the part selected)" in printed
    period = check(capsys, str(era5), *SERIES, "--time-range", "2001-01-02,2001-01-09")
    assert period["storage"]["memory_bytes"] == 4 * 32 * 7 * 12 * 3


def test_cmip6_files_are_read_with_their_calendar_and_standard_names(tmp_path, capsys):
    for name, dataset in cmip6_like(num_steps=40, calendar="noleap").items():
        dataset.to_netcdf(tmp_path / f"{name}_day_model_2000.nc")
    report = check(capsys, str(tmp_path / "*_day_*.nc"), *SERIES)
    assert report["time"]["calendar"] == "noleap" and report["time"]["frequency"] == "D"
    names = {v["name"]: (v["units"], v["standard_name"]) for v in report["variables"]}
    assert names == {"tas": ("K", "air_temperature"), "uas": ("m s-1", "eastward_wind")}
    assert all(v["within"] for v in report["variables"])
    assert len(report["files"]) == 2 and report["accepted"]
    assert report["command"].startswith("stconv train --workdir runs/day --dataset ")
    assert cli.run_name("downloads/era5/*.nc") == "era5"  # every file of a folder: its name
    assert cli.run_name("*") == "run"


def test_a_pressure_level_is_described_as_the_level_train_reads(tmp_path, capsys):
    era5_like(num_steps=40, levels=(1000, 850, 500)).to_netcdf(tmp_path / "levels.nc")
    report = check(capsys, str(tmp_path / "levels.nc"), *SERIES, "--variables", "z:500,t", code=2)
    assert report["accepted"] is False  # t has three levels: the refusal says so
    assert [v["name"] for v in report["variables"]] == ["z500", "t"]
    with xr.open_dataset(tmp_path / "levels.nc") as data:
        z500 = data["z"].sel(pressure_level=500)
        assert report["variables"][0]["max"] == pytest.approx(float(z500.max()))
        assert report["variables"][0]["min"] == pytest.approx(float(z500.min()))
        assert report["variables"][1]["min"] == pytest.approx(float(data["t"].min()))
    assert report["storage"]["memory_bytes"] == 4 * 40 * 7 * 12 * (1 + 3)


def test_a_cordex_file_is_read_on_its_rotated_grid(tmp_path, capsys):
    """CORDEX's rotated pole: dims rlat, rlon (``grid_latitude``), beside
    two-dimensional ``lat`` and ``lon`` (which made renaming the dims fail)."""
    data = time_series_dataset(num_steps=40).rename(lat="rlat", lon="rlon")
    data["rlat"].attrs = {"standard_name": "grid_latitude", "units": "degrees"}
    data["rlon"].attrs = {"standard_name": "grid_longitude", "units": "degrees"}
    rlat, rlon = xr.broadcast(data["rlat"], data["rlon"])
    data = data.assign_coords(lat=45 + rlat, lon=10 + rlon)  # the true coordinates, 2D
    data["tas"].attrs["grid_mapping"] = "rotated_pole"
    data["rotated_pole"] = xr.Variable((), 0, {
        "grid_mapping_name": "rotated_latitude_longitude",
        "grid_north_pole_latitude": 39.25, "grid_north_pole_longitude": -162.0,
    })  # fmt: skip
    data.to_netcdf(tmp_path / "cordex.nc")
    report = check(capsys, str(tmp_path / "cordex.nc"), *SERIES)
    assert report["accepted"] and report["grid"]["rotated"]
    dataset = load_dataset(str(tmp_path / "cordex.nc"), input_length=3, horizon=2)
    np.testing.assert_array_equal(dataset.grid.lat, data["rlat"].values)
    assert dataset.grid.dims == {"time": "time", "lat": "rlat", "lon": "rlon"}
    assert dataset.grid.rotated and dataset.grid.axis_attrs()[0]["standard_name"] == "grid_latitude"
    assert dataset.grid.pole == RotatedPole(39.25, -162.0, 0.0)
    assert cli.main(["check", str(tmp_path / "cordex.nc"), *SERIES]) == 0
    assert (
        "; a grid rotated about the pole (39.25, -162): its rows are rotated latitudes"
        in capsys.readouterr().out
    )


def test_the_papers_files_are_described_as_samples(tmp_path, capsys):
    paper_format_dataset(num_samples=20).to_netcdf(tmp_path / "paper.nc")
    report = check(capsys, str(tmp_path / "paper.nc"))
    assert report["layout"] == "paper" and report["time"] is None
    assert "streamed_bytes" not in report["memory"]  # the samples are read in memory
    assert report["windows"] == {"train": 12, "validation": 4, "test": 4}  # the reference's split
    assert [v["name"] for v in report["variables"]] == ["x", "y"]
    assert report["variables"][0]["max"] == pytest.approx(19.14)  # x[s, t] = s + t / 100


def test_a_generated_dataset_is_sized_by_its_field_and_read_in_memory(capsys):
    """``synthetic`` has no file: its shape is the generated field's (it was
    0 steps: "streamed in blocks of 0 steps"), and it is never streamed."""
    report = check(capsys, "synthetic")
    assert report["layout"] == "generated" and report["accepted"]
    assert report["storage"]["field_shape"] == [400, 16, 16, 1]
    assert report["memory"]["in_memory_bytes"] == footprint.in_memory_bytes((400, 16, 16, 1))
    assert "streamed_bytes" not in report["memory"] and "time_chunk" not in report["memory"]


def test_missing_values_are_counted_and_ranges_streamed_in_blocks():
    """A hand-made variable: 3 of 60 cells missing, one infinite; the range
    of its finite values, the same read in blocks of 1, 4 or all steps."""
    values = np.arange(60, dtype=np.float64).reshape(10, 2, 3)
    values[2, 0, 0] = values[7, 1, 2] = values[9, 0, 1] = np.nan
    values[5, 1, 1] = np.inf
    array = xr.DataArray(values, dims=("time", "lat", "lon"), name="v", attrs={"units": "1"})
    for block in (1, 4, None):
        summary = variable_summary(array, block, None)
        assert summary["missing_share"] == 3 / 60 and summary["infinite"] == 1
        assert (summary["min"], summary["max"]) == (0.0, 59.0)


@pytest.mark.parametrize(
    "edit, refusal, fact",
    [
        (lambda d: d.isel(time=[0, 1, 2, 2, *range(3, 40)]), "duplicated at index 3", "duplicates"),
        (lambda d: d.drop_isel(time=[20, 21]), "not regular at index 20", "gaps"),
    ],
    ids=["duplicated-time", "gap"],
)
def test_a_broken_time_axis_is_described_and_refused(tmp_path, capsys, edit, refusal, fact):
    edit(time_series_dataset(num_steps=40)).to_netcdf(tmp_path / "bad.nc")
    report = check(capsys, str(tmp_path / "bad.nc"), *SERIES, code=2)
    assert report["time"][fact] == 1
    assert refusal in report["refusal"] and "bad.nc" in report["refusal"]


def test_a_gap_is_refused_naming_the_flag_that_selects_a_regular_period(tmp_path, capsys):
    time_series_dataset(num_steps=40).drop_isel(time=[8, 9]).to_netcdf(tmp_path / "gap.nc")
    report = check(capsys, str(tmp_path / "gap.nc"), *SERIES, code=2)
    assert report["refusal"].endswith("select a regular period with --time-range START,END")
    assert cli.main(["check", str(tmp_path / "gap.nc"), *SERIES]) == 2
    printed = capsys.readouterr().out
    assert "38 steps, 2001-01-01 00:00:00 to 2001-02-09 00:00:00, every day, " in printed
    assert "calendar proleptic_gregorian, 1 gap\n" in printed
    after = check(
        capsys, str(tmp_path / "gap.nc"), *SERIES, "--time-range", "2001-01-11,2001-02-09"
    )
    # 30 steps, split 18, 6, 6, in windows of 5 that stay in their split
    assert after["accepted"] and after["windows"] == {"train": 14, "validation": 2, "test": 2}
    assert "--time-range 2001-01-11,2001-02-09" in after["command"]
    assert (after["time"]["steps"], after["time"]["gaps"]) == (30, 0)  # the time range's
    assert after["time"]["first"] == "2001-01-11 00:00:00"


def test_values_outside_what_the_units_allow_are_shown_and_refused(tmp_path, capsys):
    dataset = era5_like(num_steps=40)
    dataset["t2m"].encoding = {}
    dataset["t2m"][9, 0, 0] = 4900.0
    dataset.to_netcdf(tmp_path / "hot.nc")
    before = digest(tmp_path)
    assert cli.main(["check", str(tmp_path / "hot.nc"), *SERIES]) == 2
    printed = capsys.readouterr().out
    t2m = next(line for line in printed.splitlines() if line.startswith("t2m"))
    assert t2m.endswith("-400..400  OUTSIDE") and "4900" in t2m
    assert "refused: file" in printed and "--allow-extreme-values" in printed  # as its flag
    assert digest(tmp_path) == before  # nothing written


def test_a_half_written_zarr_store_is_refused_before_its_values_are_read(tmp_path, capsys):
    report = check(capsys, str(half_written(tmp_path / "half.zarr")), *SERIES, code=2)
    assert "never written" in report["refusal"] and report["variables"] == []


def test_a_damaged_zarr_chunk_is_named(tmp_path, capsys):
    store = write_store(tmp_path / "cut.zarr", air_temperature())
    chunk = chunk_file(store, "tas", 1)
    chunk.write_bytes(chunk.read_bytes()[:10])
    report = check(capsys, str(store), *SERIES, code=2)
    assert "variable 'tas': chunk 'c/1/0/0'" in report["refusal"]
    assert report["storage"]["time_chunks"] == {"tas": 8}


@pytest.mark.parametrize(
    "argv, message",
    [
        (["{d}/none.nc"], "file '{d}/none.nc' does not exist"),
        (["{d}/era5.nc", "--variables", "t2m,sst"], "no variable 'sst'"),
    ],
    ids=["missing-file", "missing-variable"],
)
def test_unusable_data_or_flags_exit_2_naming_them(era5, capsys, argv, message):
    argv = [word.format(d=era5.parent) for word in argv]
    report = check(capsys, *argv, *SERIES, code=2)
    assert message.format(d=era5.parent) in report["refusal"]


def test_invalid_data_flags_exit_2_naming_the_flag(era5, capsys):
    argv = ["check", str(era5), "--variables", "t2m", "--targets", "u10"]
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith("stconv check: error: ") and "--targets" in captured.err


def test_a_field_too_large_for_the_memory_is_streamed_saying_so(era5, monkeypatch):
    """``load_config_dataset`` streams it in blocks (the same windows) with
    a warning; a field that fits is loaded without one."""
    from stconv.config import Config
    from stconv.data.files import StreamingWarning
    from stconv.runs.assembly import load_config_dataset

    config = Config.from_flags(dataset=str(era5), input_length=3, horizon=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = load_config_dataset(config)
    assert not [w for w in caught if w.category is StreamingWarning]
    monkeypatch.setattr(footprint, "physical_memory", lambda: 2**20)
    with pytest.warns(StreamingWarning, match=r"0\.000524 GB this machine lends a run: it str"):
        streamed = load_config_dataset(config)
    assert streamed.splits["train"].field.chunks is not None
    assert loaded.splits["train"].field.chunks is None
    for split in ("train", "test"):
        np.testing.assert_array_equal(
            streamed.splits[split][3]["inputs"], loaded.splits[split][3]["inputs"]
        )


def test_the_part_a_run_reads_decides_whether_it_streams(era5, tmp_path, monkeypatch):
    """A machine that holds three quarters of the field: a run of all of it
    streams, a run of 28 of its 40 steps (``--time-range``) or of 4 of its 7
    rows (``--bbox``) loads it (streaming was decided on the whole file)."""
    from stconv.config import Config
    from stconv.data.files import StreamingWarning
    from stconv.runs.assembly import load_config_dataset

    whole = footprint.in_memory_bytes((40, 7, 12, 3))
    monkeypatch.setattr(footprint, "physical_memory", lambda: 2 * (whole - 40_000))
    # A file of its own: HDF5 can crash opening a file whose other handles were closed.
    shutil.copy(era5, tmp_path / "era5.nc")
    base = dict(dataset=str(tmp_path / "era5.nc"), input_length=3, horizon=2)
    with pytest.warns(StreamingWarning):
        assert load_config_dataset(Config.from_flags(**base)).splits["train"].field.chunks
    for part in (dict(time_range=("2001-01-01", "2001-01-07")), dict(bbox=(0, 90, 0, 360))):
        with warnings.catch_warnings():
            warnings.simplefilter("error", StreamingWarning)
            dataset = load_config_dataset(Config.from_flags(**base, **part))
        assert dataset.splits["train"].field.chunks is None


def test_train_opens_a_glob_once_to_load_it_in_memory_or_streamed(tmp_path, monkeypatch):
    """``load_config_dataset`` decides whether to stream on the files it
    opened: a glob is combined once (it was three times)."""
    from stconv.config import Config
    from stconv.data.files import StreamingWarning
    from stconv.runs.assembly import load_config_dataset

    for name, dataset in cmip6_like(num_steps=40, calendar="noleap").items():
        dataset.to_netcdf(tmp_path / f"{name}_day_model_2000.nc")
    combined, combine = [], xr.open_mfdataset
    monkeypatch.setattr(
        xr, "open_mfdataset", lambda *a, **k: combined.append(a) or combine(*a, **k)
    )
    config = Config.from_flags(dataset=str(tmp_path / "*_day_*.nc"), input_length=3, horizon=2)
    loaded = load_config_dataset(config)
    assert len(combined) == 1
    monkeypatch.setattr(footprint, "physical_memory", lambda: 2**20)
    with pytest.warns(StreamingWarning, match=r"_day_model_2000\.nc \(\+1 more\)"):
        streamed = load_config_dataset(config)
    assert len(combined) == 2 and streamed.splits["train"].field.chunks is not None
    np.testing.assert_array_equal(
        streamed.splits["test"][2]["targets"], loaded.splits["test"][2]["targets"]
    )


def test_the_papers_file_by_path_is_read_whole_by_train(tmp_path):
    """A path in the paper's format is never streamed: its samples are
    those ``load_dataset`` reads."""
    from stconv.config import Config
    from stconv.runs.assembly import load_config_dataset

    path = tmp_path / "paper.nc"
    paper_format_dataset(num_samples=20).to_netcdf(path)
    loaded = load_config_dataset(Config.from_flags(dataset=str(path)))
    expected = load_dataset(str(path))
    assert {split: len(windows) for split, windows in loaded.splits.items()} == {
        "train": 12, "validation": 4, "test": 4,
    }  # fmt: skip
    np.testing.assert_array_equal(
        loaded.splits["test"][3]["inputs"], expected.splits["test"][3]["inputs"]
    )


def test_an_era5_file_streams_along_its_own_time_dimension(era5):
    """``chunks={"time": 8}`` chunks ``valid_time`` (xarray would ignore the
    name ``time`` and read the whole axis as one chunk)."""
    dataset = load_dataset(str(era5), input_length=3, horizon=2, chunks={"time": 8})
    assert dataset.splits["train"].field.chunks[0] == (8,) * 5
