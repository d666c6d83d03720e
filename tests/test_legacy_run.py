"""A run directory recorded before issue 40's redesign still loads, evaluates and
predicts as it did.

``tests/data/legacy-run-20bbac7/run`` was trained by stconv at commit 20bbac7
(flat ``config.json``) with ``stconv train --dataset synthetic --num-layers 1
--hidden-dim 2 --kernel-size 3 --batch-size 16 --forecast-samples 0 --epochs 1``
(its plots, TensorBoard log and test forecasts left out); ``forecast.nc`` beside it
is what that code's ``stconv predict`` wrote for ``write_synthetic_netcdf(new.nc,
12, 16, 16, seed=3, variable="synthetic_0")``.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from stconv import cli
from stconv.data.synthetic import write_synthetic_netcdf
from stconv.runs.forecaster import Forecaster

LEGACY = Path(__file__).parent / "data" / "legacy-run-20bbac7"


@pytest.fixture(scope="module")
def legacy_run(tmp_path_factory) -> Path:
    """A copy of the recorded run: evaluating and predicting append to its records."""
    run = tmp_path_factory.mktemp("legacy") / "run"
    shutil.copytree(LEGACY / "run", run)
    return run


def test_a_flat_config_json_loads_as_the_run_was_configured(legacy_run):
    flat = json.loads((LEGACY / "run" / "config.json").read_text())
    forecaster = Forecaster.load(legacy_run)
    assert forecaster.input_length == flat["input_length"] == 5
    assert forecaster.horizon == flat["horizon"] == 5
    assert forecaster.variables == forecaster.targets == ["synthetic_0"]


def test_evaluate_gives_the_scores_recorded_at_training(legacy_run):
    recorded = json.loads((LEGACY / "run" / "results.json").read_text())
    assert cli.main(["evaluate", "--workdir", str(legacy_run)]) == 0
    evaluated = flat_numbers(json.loads((legacy_run / "results.json").read_text()))
    old = flat_numbers(recorded)
    assert {path: evaluated[path] for path in old} == pytest.approx(old, rel=1e-6, abs=1e-6)
    added = {path.split("/")[3] for path in set(evaluated) - set(old)}  # scores added since
    assert added == {
        "interval", "interval_per_lead", "versus", "bootstrap", "rmse_reference",
        "rmse_reference_per_lead",
    }  # fmt: skip


def test_predict_writes_the_forecasts_the_old_code_wrote(legacy_run, tmp_path):
    write_synthetic_netcdf(tmp_path / "new.nc", 12, 16, 16, seed=3, variable="synthetic_0")
    output = tmp_path / "forecast.nc"
    argv = ["predict", "--workdir", str(legacy_run), "--input", str(tmp_path / "new.nc")]
    assert cli.main([*argv, "--output", str(output)]) == 0
    with xr.open_dataset(output) as new, xr.open_dataset(LEGACY / "forecast.nc") as old:
        assert list(new.data_vars) == list(old.data_vars)
        for name in old.data_vars:
            assert new[name].dims == old[name].dims
            np.testing.assert_allclose(new[name].values, old[name].values, rtol=1e-6, atol=1e-6)
            np.testing.assert_array_equal(new[name].valid_time.values, old[name].valid_time.values)


def flat_numbers(results) -> dict[str, float]:
    """Every number of a results record, keyed by its path."""
    numbers = {}

    def walk(value, path):
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{path}/{key}")
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, f"{path}/{index}")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            numbers[path] = float(value)

    walk(results, "")
    return numbers
