"""Masked RMSE and MAE in physical units, and the training loss, by hand."""

import numpy as np
import pytest

from stconv.evaluation.metrics import ErrorAccumulator
from stconv.training.losses import rmse_loss


def test_masked_metrics_by_hand():
    predictions = np.array([[[[1.0, 2.0]], [[3.0, 4.0]]]])[..., None]  # (1, 2 leads, 1, 2, 1)
    targets = np.zeros_like(predictions)
    mask = np.array([[[[True, False]], [[True, True]]]])[..., None]
    accumulator = ErrorAccumulator()
    accumulator.add(predictions, targets, mask, np.array([2.0]))
    accumulator.add(
        predictions[:, :, :, :1], targets[:, :, :, :1], mask[:, :, :, :1], np.array([2.0])
    )
    result = accumulator.result()
    # Physical errors (std 2): lead 1: 2 (2 masked), 2; lead 2: 6, 8, 6.
    assert result["rmse_per_lead"] == pytest.approx([2.0, np.sqrt((36 + 64 + 36) / 3)])
    assert result["mae_per_lead"] == pytest.approx([2.0, 20 / 3])
    assert result["rmse"] == pytest.approx(np.sqrt((4 + 4 + 36 + 64 + 36) / 5))
    assert result["mae"] == pytest.approx((2 + 2 + 6 + 8 + 6) / 5)
    loss = rmse_loss(predictions[0], targets[0], mask[0])
    assert float(loss) == pytest.approx(np.sqrt((1 + 9 + 16) / 3 + 1e-6))


def test_nothing_to_score_is_an_error_not_zero():
    accumulator = ErrorAccumulator()
    predictions = np.ones((1, 2, 1, 2, 1))
    accumulator.add(predictions, predictions * 0, np.zeros_like(predictions, bool), np.ones(1))
    with pytest.raises(ValueError, match="no valid target to score"):
        accumulator.result()
