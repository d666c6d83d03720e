"""Zarr stores that cannot be read as written: chunks never written that read as
a number, values no air can take, a chunk that cannot be decoded (`stconv.data.stores`)."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr
from conftest import TINY_RUN, digest, time_series_dataset

from stconv import cli
from stconv.data import stores
from stconv.data.checks import (
    check_extremes,
    check_values,
    named_decoding_errors,
    physical_range,
)
from stconv.data.errors import DataError
from stconv.data.files import dataset_field, open_dataset, open_field
from stconv.data.synthetic import write_synthetic_netcdf

SERIES = ["--input-length", "3", "--horizon", "2"]
STEPS_PER_CHUNK = 8  # of the 40 steps of `air_temperature`: chunks 'c/0/0/0' to 'c/4/0/0'


def air_temperature(num_steps: int = 40) -> xr.Dataset:
    """`conftest.time_series_dataset` as an air temperature: 270 to 280 K, daily from 2001-01-01."""
    dataset = time_series_dataset(num_steps=num_steps)
    dataset["tas"] = 270.0 + dataset["tas"] / 400
    dataset["tas"].attrs = {"units": "K", "standard_name": "air_temperature"}
    return dataset


def write_store(path: Path, dataset: xr.Dataset, steps: int = STEPS_PER_CHUNK, **encoding) -> Path:
    """``dataset`` as a zarr (v3) store, ``steps`` time steps per chunk of its data variables."""
    encoding = {
        name: {"chunks": (steps, *variable.shape[1:]), **encoding}
        for name, variable in dataset.data_vars.items()
    }
    with pytest.warns(UserWarning, match="Consolidated metadata"):
        dataset.to_zarr(path, encoding=encoding, zarr_format=3)
    return path


def chunk_file(store: Path, variable: str, time_chunk: int) -> Path:
    return store / variable / "c" / str(time_chunk) / "0" / "0"


def half_written(path: Path) -> Path:
    """A store of `air_temperature` of fill value 0 whose last three chunks
    (from 2001-01-17, index 16) were never written."""
    write_store(path, air_temperature(), fill_value=0.0)
    for time_chunk in (2, 3, 4):
        chunk_file(path, "tas", time_chunk).unlink()
    return path


def train(tmp_path: Path, store: Path) -> list:
    argv = ["--workdir", str(tmp_path / "new"), *TINY_RUN, "--dataset", str(store), *SERIES]
    return ["train", *argv]


def refused(argv: list[str], folder: Path, capsys) -> str:
    """Runs the CLI: asserts exit 2, one line, nothing written under ``folder``; the line."""
    before = digest(folder)
    code = cli.main(argv)
    error = capsys.readouterr().err
    lines = [line for line in error.splitlines() if not line.startswith(("usage:", " "))]
    assert code == 2, error
    assert len(lines) == 1 and lines[0].startswith("stconv"), error
    assert digest(folder) == before
    return lines[0]


# Chunks never written.


def test_a_half_written_store_reads_zeros_where_nothing_was_written(tmp_path):
    """What the refusal guards against: xarray reads the missing chunks as 0 K."""
    store = half_written(tmp_path / "half.zarr")
    with xr.open_zarr(store) as dataset:
        values = dataset["tas"].values
    assert np.all(values[16:] == 0.0) and np.all(values[:16] >= 270.0)


def test_a_half_written_store_is_refused_before_training(tmp_path, capsys):
    store = half_written(tmp_path / "half.zarr")
    line = refused(train(tmp_path, store), tmp_path, capsys)
    assert f"zarr store '{store}': variable 'tas' has 3 of its 5 chunks never written" in line
    assert "the first 'c/2/0/0' at time 2001-01-17 00:00:00 (index 16)" in line
    assert "they read as its fill value 0, as if they were data" in line


def test_a_half_written_input_is_refused_by_predict(tmp_path, tiny_run, capsys):
    shutil.copytree(tiny_run, tmp_path / "run")
    write_synthetic_netcdf(tmp_path / "new.nc", 12, 16, 16, seed=3, variable="synthetic_0")
    store = tmp_path / "new.zarr"
    with xr.open_dataset(tmp_path / "new.nc") as dataset:
        write_store(store, dataset.load(), steps=4, fill_value=0.0)
    chunk_file(store, "synthetic_0", 2).unlink()  # 2000-01-09 to 2000-01-12
    argv = ["predict", "--workdir", str(tmp_path / "run"), "--input", str(store)]
    line = refused([*argv, "--output", str(tmp_path / "forecast.nc")], tmp_path, capsys)
    assert f"zarr store '{store}': variable 'synthetic_0' has 1 of its 3 chunks" in line
    assert "the first 'c/2/0/0' at time 2000-01-09 00:00:00 (index 8)" in line


def test_chunks_not_written_for_missing_values_are_accepted(tmp_path):
    """zarr writes no chunk that holds only its fill value: NaN there reads as missing."""
    dataset = air_temperature()
    dataset["tas"][8:16] = np.nan
    store = write_store(tmp_path / "gap.zarr", dataset)
    assert not chunk_file(store, "tas", 1).exists()
    with open_dataset(store) as opened:
        assert np.isnan(opened["tas"].values[8:16]).all()


def test_the_unwritten_chunks_of_an_array(tmp_path):
    """A 10 x 4 array in chunks of 3 x 2: a grid of 4 x 2 chunks, five of them written."""
    array = zarr.create_array(tmp_path / "a.zarr", shape=(10, 4), chunks=(3, 2), dtype="f4")
    array[0:3, :] = 1.0  # chunks (0, 0) and (0, 1)
    array[6:10, 2:4] = 1.0  # chunks (2, 1) and (3, 1)
    array[4, 0] = 1.0  # chunk (1, 0)
    missing = stores.unwritten_chunks(array, tmp_path / "a.zarr")
    assert [chunk.coords for chunk in missing] == [(1, 1), (2, 0), (3, 0)]
    assert [chunk.key for chunk in missing] == ["c/1/1", "c/2/0", "c/3/0"]
    assert missing[2].region == (slice(9, 10), slice(0, 2))  # the last row of chunks is short
    assert stores.earliest(missing[::-1], axis=0).coords == (1, 1)
    assert stores.earliest(missing, axis=1).coords == (2, 0)


def test_the_unwritten_chunks_of_a_zarr_2_array(tmp_path):
    path = tmp_path / "v2.zarr"
    array = zarr.create_array(path, shape=(6,), chunks=(2,), dtype="f4", zarr_format=2)
    array[4:6] = 1.0
    assert [chunk.key for chunk in stores.unwritten_chunks(array, path)] == ["0", "1"]


def test_the_unwritten_shards_of_a_sharded_array(tmp_path):
    """A shard of two chunks is one file: its key and region are the shard's."""
    path = tmp_path / "sharded.zarr"
    array = zarr.create_array(path, shape=(8,), chunks=(2,), shards=(4,), dtype="f4")
    array[0:2] = 1.0
    (missing,) = stores.unwritten_chunks(array, path)
    assert (missing.key, missing.region) == ("c/1", (slice(4, 8),))


def test_the_arrays_that_variables_read():
    names = ["z500", "t:850", "q", "lat"]
    assert stores.arrays_named(["lat", "t", "z", "zz"], names) == ["z", "t", "lat"]


def test_fill_values_that_read_as_missing():
    assert stores.reads_as_missing(np.float32("nan"), {})
    assert stores.reads_as_missing(np.int16(-32767), {"_FillValue": np.int16(-32767)})
    assert stores.reads_as_missing(-999.0, {"missing_value": [-999.0, 1e20]})
    assert not stores.reads_as_missing(0.0, {"_FillValue": np.float32("nan")})
    assert not stores.reads_as_missing(0, {"_FillValue": np.int16(-32767)})


# Values no air can take.


def test_zero_kelvin_in_a_store_is_refused(tmp_path, capsys):
    dataset = air_temperature()
    dataset["tas"][9] = 0.0
    store = write_store(tmp_path / "cold.zarr", dataset)
    line = refused(train(tmp_path, store), tmp_path, capsys)
    assert f"file '{store}': variable 'tas' reaches 0 at time 2001-01-10 00:00:00 (index 9)" in line
    assert "(in 20 of its cells): outside 100..350, the values air_temperature (K) can take" in line
    assert "data.allow_extreme_values" not in line and "--allow-extreme-values" in line


def test_the_physical_ranges_of_temperatures():
    assert physical_range("air_temperature", "kelvin") == (100.0, 350.0)
    assert physical_range("air_temperature", "degC") == pytest.approx((-173.15, 76.85))
    assert physical_range("sea_surface_temperature", "K") == (260.0, 320.0)
    assert physical_range("air_temperature", "1") is None  # units of no temperature
    assert physical_range("eastward_wind", "m s-1") is None
    assert physical_range("", "K") is None  # anomalies without a standard name pass


def test_values_beyond_the_units_are_named_before_those_beyond_the_quantity():
    dataset = air_temperature()
    dataset["tas"][3, 0, 0] = 0.0
    dataset["tas"][7, 1, 1] = 4900.0
    field = dataset_field(dataset, "tas", source="x.nc")
    with pytest.raises(DataError, match=r"reaches 4.9e\+03 at time 2001-01-08 .* -400..400, the"):
        check_extremes(field, "x.nc")
    check_extremes(field, "x.nc", allowed=True)  # data.allow_extreme_values


def test_a_cold_frame_without_a_standard_name_is_not_checked_as_a_temperature():
    dataset = air_temperature()
    dataset["tas"][3] = 0.0
    del dataset["tas"].attrs["standard_name"]
    check_extremes(dataset_field(dataset, "tas", source="x.nc"), "x.nc")


# A chunk that cannot be decoded.


def test_a_truncated_chunk_is_named(tmp_path, capsys):
    store = write_store(tmp_path / "cut.zarr", air_temperature())
    chunk = chunk_file(store, "tas", 2)
    chunk.write_bytes(chunk.read_bytes()[: chunk.stat().st_size // 2])
    line = refused(train(tmp_path, store), tmp_path, capsys)
    assert f"zarr store '{store}': variable 'tas': chunk 'c/2/0/0'" in line
    assert "time index 16 to 23, 2001-01-17 00:00:00 to 2001-01-24 00:00:00" in line
    assert "cannot be decoded" in line


def test_a_truncated_chunk_read_lazily_is_named_by_the_checks(tmp_path):
    """In dask chunks (predict's, and train's with execution.time_chunk), the
    chunk is read by the first pass over the data: `check_extremes`, or
    `check_values` where extreme values are accepted."""
    store = write_store(tmp_path / "cut.zarr", air_temperature())
    chunk = chunk_file(store, "tas", 3)
    chunk.write_bytes(chunk.read_bytes()[:10])
    field = open_field(store, "tas", chunks={"time": 8})
    expected = r"variable 'tas': chunk 'c/3/0/0' \(time index 24 to 31, 2001-01-25 00:00:00 to"
    with pytest.raises(DataError, match=expected):
        check_extremes(field, str(store))
    check_extremes(field, str(store), allowed=True)
    with pytest.raises(DataError, match=expected):
        check_values(field, np.ones((4, 5, 1), bool), str(store))


def test_the_first_undecodable_chunk_of_an_array(tmp_path):
    path = tmp_path / "a.zarr"
    array = zarr.create_array(path, shape=(9, 2), chunks=(3, 2), dtype="f8", fill_value=0.0)
    array[:] = np.arange(18.0).reshape(9, 2)
    for key in ("c/1/0", "c/2/0"):
        (path / key).write_bytes(b"not zstd")
    chunk, error = stores.undecodable_chunk(array)
    assert chunk.key == "c/1/0" and chunk.region == (slice(3, 6), slice(0, 2))
    assert "decompression" in str(error).lower()


def test_a_store_that_decodes_has_no_undecodable_chunk(tmp_path):
    store = write_store(tmp_path / "fine.zarr", air_temperature())
    assert stores.undecodable_chunk(zarr.open_array(store, path="tas")) is None


def test_errors_of_stconv_pass_through_the_store_check(tmp_path):
    store = str(write_store(tmp_path / "fine.zarr", air_temperature()))
    with pytest.raises(DataError, match="ours"), named_decoding_errors(store, ["tas"], "time"):
        raise DataError("ours")
    unexplained = pytest.raises(RuntimeError, match="not the store's")  # no chunk of it fails
    with unexplained, named_decoding_errors(store, ["tas"], "time"):
        raise RuntimeError("not the store's")
