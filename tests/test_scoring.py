"""Scoring: a forecaster and the baselines on the same windows, by hand, and the table."""

import numpy as np
import pytest

from stconv.evaluation.baselines import baselines
from stconv.evaluation.scoring import add_skill, evaluate
from stconv.runs.reporting import format_table


def windows():
    """Three windows of 2 inputs and 2 targets on a 1x2 grid; the second cell is masked."""
    examples = []
    for start in range(3):
        values = np.arange(start, start + 4, dtype=np.float32)[:, None, None, None]
        values = np.broadcast_to(values, (4, 1, 2, 1)).copy()
        mask = np.broadcast_to(np.array([True, False])[None, None, :, None], (2, 1, 2, 1))
        examples.append({"inputs": values[:2], "targets": values[2:], "mask": mask.copy()})
    return examples


def test_persistence_climatology_and_a_model_by_hand():
    climatology = np.zeros((1, 2, 1), np.float32)
    forecasters = {
        "model": lambda inputs: inputs[:, -1:] + np.array([1.0, 2.0])[:, None, None, None]
    }
    forecasters.update(baselines(climatology, horizon=2))
    scores = evaluate(forecasters, windows(), std=np.array([2.0]), batch_size=2)
    results = {name: channels[0] for name, channels in scores.items()}  # one variable
    # Targets are last + 1 and last + 2: the model is exact, persistence is 1 and 2 off
    # (times std 2), climatology is off by the values themselves.
    assert results["model"]["rmse"] == pytest.approx(0.0, abs=1e-6)
    assert results["persistence"]["rmse_per_lead"] == pytest.approx([2.0, 4.0])
    assert results["persistence"]["mae"] == pytest.approx(3.0)
    targets = np.array([[2, 3], [3, 4], [4, 5]], float) * 2
    assert results["climatology"]["rmse_per_lead"] == pytest.approx(
        np.sqrt(np.mean(targets**2, axis=0))
    )
    # The input mean (s + 0.5) is 1.5 and 2.5 off, times std 2.
    assert results["input_mean"]["rmse_per_lead"] == pytest.approx([3.0, 5.0])
    add_skill(results)
    assert results["model"]["skill_vs_persistence"] == pytest.approx(1.0)
    assert results["model"]["best_baseline"] == "persistence"
    assert results["input_mean"]["skill_vs_persistence_per_lead"] == pytest.approx(
        [1 - 9 / 4, 1 - 25 / 16]
    )
    table = format_table(results, "K")
    assert "in K" in table and "input_mean" in table and "lead 2" in table
    assert "wRMSE = RMSE (not area-weighted)" in table
