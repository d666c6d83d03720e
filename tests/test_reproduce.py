"""experiments/reproduce.py end to end on small files in the paper's schema (synthetic values)."""

import csv
import hashlib
import importlib.util
import os

import jax
import numpy as np
import pytest
from conftest import paper_format_dataset

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def reproduce():
    spec = importlib.util.spec_from_file_location(
        "reproduce", os.path.join(ROOT, "experiments", "reproduce.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def data_dir(tmp_path):
    path = tmp_path / "data"
    path.mkdir()
    dataset = paper_format_dataset(num_samples=40, input_steps=5, target_steps=5, lat=6, lon=6)
    dataset.to_netcdf(path / "dataset-ucar-1979-2015-seq5-ystep5.nc")
    return path


def quick(data_dir, workdir, *args):
    return [
        "--datasets", "cfsr", "--horizons", "5", "--epochs", "1", "--num-layers", "1",
        "--hidden-dim", "2", "--data-dir", str(data_dir), "--workdir", str(workdir), *args,
    ]  # fmt: skip


def test_table_with_published_numbers_and_skips_finished_cells(
    reproduce, data_dir, tmp_path, capsys
):
    workdir = tmp_path / "runs"
    args = quick(data_dir, workdir, "--models", "stconvs2s-c", "--iterations", "2")
    rows = reproduce.main(args)
    assert [(r["model"], r["runs"]) for r in rows] == [("stconvs2s-c", 2)]
    assert rows[0]["rmse_std"] > 0 and rows[0]["seconds_per_epoch"] > 0
    assert rows[0]["best_epoch"] == 1
    table = (workdir / "results.md").read_text()
    assert "| stconvs2s-c | cfsr | 5 | 2 |" in table and "1.3699 / 0.9434" in table
    assert "whole test set" in table
    sha = hashlib.sha256((data_dir / "dataset-ucar-1979-2015-seq5-ystep5.nc").read_bytes())
    assert rows[0]["data_sha256"] == sha.hexdigest() and f"| {sha.hexdigest()[:12]}... |" in table
    assert f"jax {jax.__version__}" in rows[0]["software"] and "1. stconv 0.1.0" in table
    with open(workdir / "results.csv") as f:
        written = list(csv.DictReader(f))
    assert float(written[0]["rmse_mean"]) == pytest.approx(rows[0]["rmse_mean"])
    assert written[0]["published_rmse"] == "1.3699"
    # the reference's score, computed in the same pass, stands beside the published one
    assert rows[0]["rmse_reference_mean"] > 0 and "RMSE as the reference" in table
    assert rows[0]["rmse_low"] < rows[0]["rmse_mean"] < rows[0]["rmse_high"]
    capsys.readouterr()

    cell = workdir / "cfsr-step5" / "stconvs2s-c" / "cell.json"
    modified = os.path.getmtime(cell)
    again = reproduce.main(args)
    assert again == rows and os.path.getmtime(cell) == modified
    assert "finished, skipped" in capsys.readouterr().out


def test_ablation_table(reproduce, data_dir, tmp_path):
    name = "ablation-stconvs2s-notemporal"
    args = quick(data_dir, tmp_path / "runs", "--table", "ablation", "--models", name)
    rows = reproduce.main([*args, "--iterations", "1", "--output", str(tmp_path / "out" / "abl")])
    assert rows[0]["model"] == name and rows[0]["runs"] == 1
    assert "1.6780 / 1.1828" in (tmp_path / "out" / "abl.md").read_text()


def test_missing_file_and_unknown_model(reproduce, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"dataset-ucar-1979-2015-seq5-ystep5\.nc.*Zenodo"):
        reproduce.main(quick(tmp_path, tmp_path / "runs", "--models", "stconvs2s-r"))
    with pytest.raises(SystemExit, match="not in the main table"):
        reproduce.main(quick(tmp_path, tmp_path / "runs", "--models", "unet"))


def test_chirps_15_steps_with_the_land_mask(reproduce, tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    dataset = paper_format_dataset(num_samples=40, input_steps=15, target_steps=15, lat=6, lon=6)
    dataset.to_netcdf(data_dir / "dataset-chirps-1981-2019-seq5-ystep15.nc")
    land = np.ones((6, 6))
    land[:, :2] = 0
    np.save(data_dir / "chirps_mask_land.npy", land)
    args = quick(data_dir, tmp_path / "runs", "--models", "stconvs2s-c", "--iterations", "1")
    args[args.index("cfsr")] = "chirps"
    args[args.index("--horizons") + 1] = "15"
    (row,) = reproduce.main(args)
    assert (row["dataset"], row["horizon"]) == ("chirps", 15)
    mask = np.load(tmp_path / "runs" / "chirps-step15" / "stconvs2s-c" / "mask.npy")
    assert mask.shape == (6, 6, 1) and not mask[:, :2].any() and mask[:, 2:].all()
    assert "6.2962 / 2.8452" in (tmp_path / "runs" / "results.md").read_text()


def test_cells_from_different_data_files_are_refused_in_one_table(reproduce, tmp_path):
    cell = {"dataset": "cfsr", "horizon": 5, "data_sha256": "a" * 64, "model": "stconvs2s-r"}
    other = {**cell, "model": "convlstm", "data_sha256": "b" * 64}
    elsewhere = {**other, "horizon": 15}  # another file is expected for another horizon
    reproduce.check_one_data_per_cell([cell, elsewhere])
    with pytest.raises(SystemExit, match=r"cfsr 5-step cells were made from different data"):
        reproduce.check_one_data_per_cell([cell, other])
