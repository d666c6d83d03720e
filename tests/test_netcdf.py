"""Streaming forecasts: the netCDF writer, padded batches that compile once, lazy windows;
outputs that never touch inputs and leave no temporary."""

import dataclasses
import errno
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import warnings

import cftime
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from flax import nnx

from stconv import models, outputs
from stconv.config import Config
from stconv.data.grid import Grid
from stconv.data.normalization import Normalizer
from stconv.data.projection import RotatedPole
from stconv.evaluation.netcdf import ForecastWriter, forecast_dataset, forecast_writer, valid_times
from stconv.evaluation.scoring import evaluate
from stconv.runs.directory import RunDirectory, check_new_file
from stconv.runs.forecaster import Forecaster
from stconv.runs.trained import TrainedRun
from stconv.training.step import make_predict

GRID = Grid(
    lat=np.linspace(-5, 5, 3, dtype=np.float32),
    lon=np.arange(4.0),
    channels=("tas", "pr"),
    units=("K", "kg m-2 s-1"),
)


def whole_dataset(predictions, init_times, mask):
    """The forecasts as one in-memory Dataset, the way they were written before streaming."""
    predictions = np.where(mask, predictions, np.nan).astype(np.float32)
    coords = {
        "init_time": init_times,
        "lead_time": ("lead_time", np.arange(1, predictions.shape[1] + 1), {"units": "steps"}),
        "lat": ("lat", GRID.lat, {"units": "degrees_north", "axis": "Y"}),
        "lon": ("lon", GRID.lon, {"units": "degrees_east", "axis": "X"}),
    }
    dims = ("init_time", "lead_time", "lat", "lon")
    data_vars = {
        name: (dims, predictions[..., c], {"units": GRID.units[c]})
        for c, name in enumerate(GRID.channels)
    }
    return xr.Dataset(data_vars, coords, attrs={"title": "stconv forecast"})


def forecasts(count=10, horizon=2):
    rng = np.random.default_rng(0)
    predictions = 280 + rng.standard_normal((count, horizon, 3, 4, 2))
    mask = np.ones((3, 4, 2), bool)
    mask[0, 1, 0] = mask[2, 3, 1] = False
    return predictions, mask


def write_batches(path, predictions, init_times, mask, sizes):
    with ForecastWriter(path, GRID, mask, predictions.shape[1]) as writer:
        for start, stop in zip(np.cumsum([0, *sizes[:-1]]), np.cumsum(sizes), strict=True):
            writer.write(predictions[start:stop], init_times[start:stop])


TIMES = {
    "datetime64": pd.date_range("2001-03-01", periods=10, freq="6h").values,
    "cftime": cftime.num2date(np.arange(10), "days since 2001-02-24", "noleap"),
    "samples": np.arange(30, 40),
}


@pytest.mark.parametrize("times", TIMES)
@pytest.mark.parametrize("sizes", [[10], [3, 1, 4, 2], [4, 4, 2]])
def test_streamed_file_equals_the_whole_dataset(tmp_path, times, sizes):
    predictions, mask = forecasts()
    write_batches(tmp_path / "streamed.nc", predictions, TIMES[times], mask, sizes)
    whole_dataset(predictions, TIMES[times], mask).to_netcdf(tmp_path / "whole.nc")
    with (
        xr.open_dataset(tmp_path / "streamed.nc") as streamed,
        xr.open_dataset(tmp_path / "whole.nc") as whole,
    ):
        xr.testing.assert_identical(streamed, whole)
        assert (
            streamed["tas"].dtype == np.float32
            and streamed["init_time"].dtype == whole["init_time"].dtype
        )
        assert streamed["init_time"].encoding.get("units") == whole["init_time"].encoding.get(
            "units"
        )
        assert streamed.encoding["unlimited_dims"] == {"init_time"}
        assert np.isnan(streamed["tas"].values[:, :, 0, 1]).all()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["streamed.nc", "whole.nc"]  # no temporary


@pytest.mark.filterwarnings("error::UserWarning")
def test_coordinates_in_explicit_byte_order_write_without_a_warning(tmp_path):
    """A zarr input's coordinates come back as ``<f8``: netCDF4 would warn of the byte order."""
    predictions, mask = forecasts()
    grid = dataclasses.replace(GRID, lat=GRID.lat.astype("<f8"), lon=GRID.lon.astype(">f8"))
    with ForecastWriter(tmp_path / "f.nc", grid, mask, 2) as writer:
        writer.write(predictions, TIMES["datetime64"])
    with xr.open_dataset(tmp_path / "f.nc") as written:
        np.testing.assert_array_equal(written["lon"].values, GRID.lon)
        np.testing.assert_array_equal(written["lat"].values, GRID.lat.astype(np.float64))


@pytest.mark.parametrize("failure", ["raised", "bad shape"])
def test_a_failure_midway_leaves_the_earlier_file_intact(tmp_path, failure):
    predictions, mask = forecasts()
    times = TIMES["datetime64"]
    path = tmp_path / "forecasts.nc"
    write_batches(path, predictions, times, mask, [10])
    before = path.read_bytes()
    error = RuntimeError if failure == "raised" else ValueError
    with pytest.raises(error), ForecastWriter(path, GRID, mask, 2) as writer:
        writer.write(predictions[:4], times[:4])
        if failure == "raised":
            raise RuntimeError("interrupted")
        writer.write(predictions[4:, :1], times[4:])  # one lead time of two: does not fit
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["forecasts.nc"]


def test_padded_batches_equal_batch_size_one_and_compile_once():
    model = models.create(
        "stconvs2s-r",
        input_shape=(3, 6, 6, 1),
        horizon=2,
        num_layers=1,
        hidden_dim=2,
        kernel_size=3,
        rngs=nnx.Rngs(0),
    )
    state = nnx.state(model)
    rng = np.random.default_rng(1)
    source = [
        {
            "inputs": rng.standard_normal((3, 6, 6, 1), np.float32),
            "targets": rng.standard_normal((2, 6, 6, 1), np.float32),
            "mask": rng.random((2, 6, 6, 1)) > 0.2,
        }
        for _ in range(7)
    ]
    runs = {}
    for batch_size in (3, 1):
        predict, seen = make_predict(model, 2), []
        metrics = evaluate(
            {"model": lambda x, predict=predict: predict(state, x)},
            source,
            np.array([2.0], np.float32),
            batch_size,
            lambda batch, predictions, seen=seen: seen.append(np.asarray(predictions["model"])),
        )
        assert predict._cache_size() == 1  # 7 windows in batches of 3, 3, 1 (padded to 3)
        assert [len(p) for p in seen] == ([3, 3, 1] if batch_size == 3 else [1] * 7)
        runs[batch_size] = np.concatenate(seen), metrics["model"][0]  # one variable
    # Equal on CPU; other backends may pick other kernels for other batch sizes.
    np.testing.assert_allclose(runs[3][0], runs[1][0], rtol=1e-6, atol=1e-6)
    assert runs[3][1]["cells"] == runs[1][1]["cells"] == sum(s["mask"].sum() for s in source)
    assert runs[3][1]["rmse"] == pytest.approx(runs[1][1]["rmse"], rel=1e-6)


def test_forecasts_read_and_predict_one_batch_at_a_time():
    values = np.random.default_rng(2).standard_normal((12, 3, 4, 2)).astype(np.float32)
    values[4, 1, 1, 0] = np.nan
    times = pd.date_range("2001-01-01", periods=12, freq="D")
    dims = ("time", "lat", "lon")
    data = xr.Dataset(
        {name: (dims, values[..., c], {"units": "K"}) for c, name in enumerate("ab")},
        coords={"time": times},
    )
    normalizer = Normalizer(np.array([1.0, -1.0], np.float32), np.array([2.0, 0.5], np.float32))
    shapes = []

    def predict(inputs):  # the mean of the three input frames, twice
        shapes.append(inputs.shape)
        return np.repeat(inputs.mean(axis=1, keepdims=True), 2, axis=1)

    config = Config.from_flags(input_length=3, horizon=2, eval_batch_size=4)
    description = {"variables": ["a", "b"], "units": "K", "input_shape": [3, 3, 4, 2]}
    mask = np.ones((3, 4, 2), bool)
    forecaster = Forecaster(TrainedRun(config, description, normalizer, mask), predict)
    field = forecaster.field(data.chunk({"time": 5}))
    batches = list(forecaster.forecast_batches(field, mask))
    # 10 windows: batches of 4, 4 and 2, every one padded to 4 windows.
    assert shapes == [(4, 3, 3, 4, 2)] * 3
    assert [len(p) for p in batches] == [4, 4, 2]
    windows = np.stack([values[s : s + 3] for s in range(10)])
    inputs = np.nan_to_num(normalizer.normalize(windows), nan=0.0)
    expected = normalizer.denormalize(np.repeat(inputs.mean(axis=1, keepdims=True), 2, axis=1))
    np.testing.assert_allclose(np.concatenate(batches), expected, rtol=1e-6)
    forecast = forecaster.forecast(data)  # one variable per target
    np.testing.assert_array_equal(forecast["init_time"].values, times[2:])
    stacked = np.stack([forecast[name].values for name in ("a", "b")], axis=-1)
    np.testing.assert_allclose(stacked, expected, rtol=1e-6)


def test_eval_batch_size_is_validated_and_old_configs_load(tmp_path):
    with pytest.raises(
        ValueError, match=r"^evaluation.eval_batch_size=0 is invalid: must be an integer >= 1$"
    ):
        Config.from_flags(eval_batch_size=0)
    saved = {  # the flat config.json of an older run
        k: v for k, v in Config.from_flags(batch_size=8).flags().items() if k != "eval_batch_size"
    }
    (tmp_path / "config.json").write_text(json.dumps(saved))
    assert Config.load(tmp_path / "config.json") == Config.from_flags(
        batch_size=8, eval_batch_size=64
    )


# Outputs: moved into place whole, never over a file that appeared meanwhile,
# no temporary left on any exit Python sees, the permissions of a new file.

OUTPUTS = ["forecasts.nc", "forecasts.zarr"]  # the zarr ones need zarr


def temporary_name(output, pid=None, host=None):
    """The pattern of a temporary of ``output`` (`stconv.outputs.temporary_path`)."""
    pid = re.escape(str(pid)) if pid is not None else r"\d+"
    host = re.escape(host if host is not None else socket.gethostname())
    return rf"\.{re.escape(output)}\.{pid}\.{host}\.[0-9a-f]{{8}}\.stconv-tmp"


def writer_of(path, overwrite=False):
    if str(path).endswith(".zarr"):
        pytest.importorskip("zarr")
    predictions, mask = forecasts()
    return forecast_writer(path, GRID, mask, 2, overwrite=overwrite), predictions


@pytest.mark.parametrize("umask", [0o022, 0o027], ids=["022", "027"])
@pytest.mark.parametrize("output", OUTPUTS)
def test_outputs_get_the_permissions_of_a_new_file(tmp_path, umask, output):
    writer, predictions = writer_of(tmp_path / output)
    earlier = os.umask(umask)
    try:
        with writer:
            writer.write(predictions, TIMES["datetime64"])
        new = tmp_path / "new"
        new.mkdir() if output.endswith(".zarr") else new.write_text("")
    finally:
        os.umask(earlier)
    assert oct((tmp_path / output).stat().st_mode & 0o777) == oct(new.stat().st_mode & 0o777)


def write_while_another_appears(path, overwrite):
    """Writes forecasts to ``path`` while another program writes a file (a
    store for ``.zarr``) there; returns the other's file."""
    writer, predictions = writer_of(path, overwrite)
    with writer:
        writer.write(predictions, TIMES["datetime64"])
        if path.suffix == ".zarr":
            path.mkdir()
            path = path / "zarr.json"
        path.write_text("theirs")
    return path


@pytest.mark.parametrize("output", OUTPUTS)
def test_a_file_that_appears_meanwhile_is_left_alone(tmp_path, output):
    path = tmp_path / output
    with pytest.raises(FileExistsError) as raised:
        theirs = write_while_another_appears(path, overwrite=False)
    assert str(raised.value).startswith(f"{path} appeared while the forecasts were written")
    assert raised.value.__notes__ == ["choose another path, or pass overwrite=True to replace it"]
    assert "stconv-tmp" not in str(raised.value)
    theirs = path / "zarr.json" if output.endswith(".zarr") else path
    assert theirs.read_text() == "theirs"
    assert sorted(p.name for p in tmp_path.iterdir()) == [output]  # no temporary


@pytest.mark.parametrize("output", OUTPUTS)
def test_overwrite_replaces_a_file_that_appears_meanwhile(tmp_path, output):
    path = tmp_path / output
    write_while_another_appears(path, overwrite=True)
    with xr.open_dataset(path, engine="zarr" if output.endswith(".zarr") else None) as done:
        assert done.sizes["init_time"] == 10
    assert sorted(p.name for p in tmp_path.iterdir()) == [output]


@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt, SystemExit])
def test_no_temporary_is_left_on_any_exit(tmp_path, output, error):
    """The temporary, named after the output and its process while it is
    written, is gone after an exception, Ctrl-C or sys.exit."""
    writer, predictions = writer_of(tmp_path / output)
    with pytest.raises(error), writer:
        writer.write(predictions[:4], TIMES["datetime64"][:4])
        (temporary,) = (p.name for p in tmp_path.iterdir())
        assert re.fullmatch(temporary_name(output, os.getpid()), temporary), temporary
        raise error("interrupted")
    assert list(tmp_path.iterdir()) == []


def dead_pid() -> int:
    """The process id of a process that has ended."""
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout)


@pytest.mark.parametrize("output", OUTPUTS)
def test_a_dead_process_s_temporary_is_removed_and_nothing_else(tmp_path, capsys, output):
    folder = output.endswith(".zarr")
    dead, host = dead_pid(), socket.gethostname()
    stale = f".{output}.{dead}.{host}.0123abcd.stconv-tmp"
    kept = [
        f".{output}.{os.getpid()}.{host}.0123abcd.stconv-tmp",  # a live process's
        f".{output}.{dead}.other-host.0123abcd.stconv-tmp",  # another host's: unknown
        f".other.nc.{dead}.{host}.0123abcd.stconv-tmp",  # another output's
        f".{output}.{dead}.{host}.0123abcd.tmp",  # not stconv's
        f"{output}.{dead}.{host}.0123abcd.stconv-tmp",  # not hidden
        f".{output}.{dead}.{host}.0123abcdef.stconv-tmp",
    ]
    for name in (stale, *kept):
        (tmp_path / name).mkdir() if folder else (tmp_path / name).write_text("")
    if folder:
        (tmp_path / stale / "zarr.json").write_text("{}")
    writer, predictions = writer_of(tmp_path / output)
    with writer:
        writer.write(predictions, TIMES["datetime64"])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([output, *kept])
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        f"stconv: removed {tmp_path / stale}, the unfinished output of process {dead}, "
        "which no longer runs"
    ]


SIGTERM_SCRIPT = """
import time
import numpy as np
from stconv.cli import terminated_as_exit
from stconv.data.grid import Grid
from stconv.evaluation.netcdf import ForecastWriter

grid = Grid.from_description({grid!r})
with terminated_as_exit(), ForecastWriter({path!r}, grid, np.ones((3, 4, 2), bool), 2) as writer:
    writer.write(np.zeros((1, 2, 3, 4, 2)), np.array([0]))
    print("writing", flush=True)
    time.sleep(60)
"""


def test_sigterm_during_predict_leaves_no_temporary(tmp_path):
    """``stconv predict`` writes within `stconv.cli.terminated_as_exit`: a
    SIGTERM ends it with 143 after the writer removed its temporary."""
    grid = GRID.description()
    script = SIGTERM_SCRIPT.format(grid=grid, path=str(tmp_path / "f.nc"))
    process = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout.readline() == "writing\n"
        assert len(list(tmp_path.iterdir())) == 1  # the temporary
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 128 + signal.SIGTERM
    finally:
        process.kill()
        process.stdout.close()
    assert list(tmp_path.iterdir()) == []


def test_sigterm_handler_is_restored():
    from stconv.cli import terminated_as_exit

    earlier = signal.getsignal(signal.SIGTERM)
    with terminated_as_exit():
        assert signal.getsignal(signal.SIGTERM) is not earlier
    assert signal.getsignal(signal.SIGTERM) is earlier


def inputs_and_run(d):
    """``d/in/a.nc``, ``d/in/b.nc``, a zarr store ``d/in.zarr``, a folder
    ``d/data.zarr`` that holds none, links to them and a run ``d/run``."""
    (d / "in").mkdir()
    for name in ("a.nc", "b.nc"):
        (d / "in" / name).write_text("input")
    (d / "in.zarr").mkdir()
    (d / "in.zarr" / "zarr.json").write_text("{}")
    (d / "data.zarr").mkdir()
    (d / "link.nc").symlink_to(d / "in" / "a.nc")
    (d / "alias").symlink_to(d / "in")
    os.link(d / "in" / "a.nc", d / "hard.nc")
    (d / "run").mkdir()
    (d / "run" / RunDirectory.MARKER).write_text("{}")


@pytest.mark.parametrize(
    "output, given, fragment",
    [
        pytest.param(
            "{d}/in/b.nc",
            "{d}/in/*.nc",
            "in/b.nc' is one of the input files '{d}/in/*.nc': choose",
            id="glob-member",
        ),
        pytest.param(
            "{d}/in/a.nc",
            "{d}/in/a.nc",
            "in/a.nc' is the input file: choose another path",
            id="the-input",
        ),
        pytest.param(
            "{d}/./in/../in/a.nc", "{d}/in/a.nc", "in/a.nc' is the input file", id="other-spelling"
        ),
        pytest.param("{d}/link.nc", "{d}/in/a.nc", "link.nc' is the input file", id="link"),
        pytest.param(
            "{d}/alias/a.nc",
            "{d}/in/*.nc",
            "alias/a.nc' is one of the input files",
            id="link-to-folder",
        ),
        pytest.param("{d}/hard.nc", "{d}/in/a.nc", "hard.nc' is the input file", id="hard-link"),
        pytest.param(
            "{d}/in.zarr/x.nc",
            "{d}/in.zarr",
            "in.zarr/x.nc' is inside the input '{d}/in.zarr'",
            id="inside-zarr-input",
        ),
        pytest.param(
            "{d}/in",
            "{d}/in.zarr",
            "in' is a folder: give the path of a netCDF file to write",
            id="folder",
        ),
        pytest.param("{d}/new.nc/", "{d}/in.zarr", "new.nc' is a folder", id="trailing-slash"),
        pytest.param(".", "{d}/in.zarr", "--output '{d}' is a folder", id="dot"),
        pytest.param(
            "", "{d}/in.zarr", "--output '' is empty: give the path of a file to write", id="empty"
        ),
        pytest.param(
            "{d}/run",
            "{d}/in.zarr",
            "run' is a run: stconv writes nothing into a run",
            id="the-run",
        ),
        pytest.param(
            "{d}/data.zarr",
            "{d}/in.zarr",
            "data.zarr' is not a zarr store: stconv replaces nothing",
            id="zarr-not-a-store",
        ),
    ],
)
def test_outputs_never_touch_inputs_nor_folders(tmp_path, monkeypatch, output, given, fragment):
    """Refused even with overwrite: compared as real paths, globs expanded."""
    inputs_and_run(tmp_path)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError) as raised:
        check_new_file(
            output.format(d=tmp_path), flag="--output", overwrite=True,
            inputs=(given.format(d=tmp_path),),
        )  # fmt: skip
    assert fragment.format(d=tmp_path) in str(raised.value)
    assert str(raised.value).startswith("--output '")


def test_outputs_beside_the_inputs_and_stores_are_accepted(tmp_path):
    inputs_and_run(tmp_path)
    (tmp_path / "out.zarr").mkdir()
    (tmp_path / "out.zarr" / ".zgroup").write_text("{}")
    for output in ("new.nc", "in/c.nc", "out.zarr", "new.zarr"):
        path = tmp_path / output
        check_new_file(path, flag="--output", overwrite=True, inputs=(f"{tmp_path}/in/*.nc",))


def test_a_failed_write_is_put_down_to_a_full_disk_only_where_it_is(tmp_path, monkeypatch):
    """What the system said stands (a missing folder is no full disk); an
    error that names no cause is put down to the free space, where the file
    system has any (``/proc`` has no blocks at all, and is not full)."""
    hdf = RuntimeError("NetCDF: HDF error")
    assert outputs.disk_full(OSError(errno.ENOSPC, "No space left on device"), str(tmp_path))
    assert not outputs.disk_full(hdf, str(tmp_path))  # space is left
    usage = shutil._ntuple_diskusage
    monkeypatch.setattr(outputs.shutil, "disk_usage", lambda p: usage(10**9, 10**9, 0))
    assert outputs.disk_full(hdf, str(tmp_path))
    assert not outputs.disk_full(OSError(errno.ENOENT, "No such file or directory"), "/x")
    monkeypatch.setattr(outputs.shutil, "disk_usage", lambda p: usage(0, 0, 0))
    assert not outputs.disk_full(hdf, "/proc")


def test_a_zarr_store_is_written_without_a_warning(tmp_path):
    """zarr warns that consolidated metadata are not in its v3 specification:
    a user of `stconv predict --output forecast.zarr` saw two lines of it."""
    writer, predictions = writer_of(tmp_path / "forecasts.zarr")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with writer:
            writer.write(predictions, TIMES["datetime64"])
    with xr.open_zarr(tmp_path / "forecasts.zarr") as written:
        assert written.sizes["init_time"] == len(predictions)


@pytest.mark.parametrize("output", OUTPUTS)
def test_a_rotated_grids_coordinates_are_written_as_cf_says(tmp_path, output):
    """CORDEX's rlat and rlon are not latitudes and longitudes: grid_latitude
    and grid_longitude in degrees (``degrees_north`` would place them on the globe)."""
    if output.endswith(".zarr"):
        pytest.importorskip("zarr")
    rotated = dataclasses.replace(GRID, rotated=True, dims={"lat": "rlat", "lon": "rlon"})
    predictions, mask = forecasts()
    with forecast_writer(tmp_path / output, rotated, mask, 2) as writer:
        writer.write(predictions, TIMES["datetime64"])
    opened = xr.open_zarr if output.endswith(".zarr") else xr.open_dataset
    with opened(tmp_path / output) as written:
        assert written["rlat"].attrs["standard_name"] == "grid_latitude"
        assert written["rlon"].attrs["units"] == "degrees"
        assert "lat" not in written.variables  # no pole known: no cell is placed
    # With the pole of the input's grid mapping: each cell's latitude and
    # longitude, and the grid mapping, as CORDEX files carry them.
    placed = dataclasses.replace(rotated, pole=RotatedPole(39.25, -162.0))
    with forecast_writer(tmp_path / f"placed-{output}", placed, mask, 2) as writer:
        writer.write(predictions, TIMES["datetime64"], valid_times(TIMES["datetime64"], 1, 2))
    in_memory = forecast_dataset(
        xr.DataArray(np.zeros((10, 3, 4, 2)), {"time": TIMES["datetime64"], "lat": GRID.lat,
                     "lon": GRID.lon}, ("time", "lat", "lon", "channel")),
        placed, predictions, 1, 2,
    )  # fmt: skip
    with opened(tmp_path / f"placed-{output}", decode_coords="all") as written:
        for dataset in (written, in_memory):
            assert set(dataset["tas"].coords) >= {"lat", "lon", "valid_time", "rotated_pole"}
            np.testing.assert_allclose(dataset["lat"], placed.map_variables()["lat"].values)
            assert dataset["lon"].dims == ("rlat", "rlon")
            assert dataset["rotated_pole"].attrs["grid_north_pole_longitude"] == -162.0
            pr = dataset["pr"]  # decode_coords="all" moves the grid mapping's name to encoding
            assert {**pr.attrs, **pr.encoding}["grid_mapping"] == "rotated_pole"
    with forecast_writer(tmp_path / f"plain-{output}", GRID, mask, 2) as writer:
        writer.write(predictions, TIMES["datetime64"])
    with opened(tmp_path / f"plain-{output}") as written:
        assert written["lat"].attrs["units"] == "degrees_north"
