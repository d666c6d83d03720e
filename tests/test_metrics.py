"""The scores (RMSE, MAE, weighted, bias, ACC, skill) and the training loss, by hand."""

import numpy as np
import pytest

from stconv.data.errors import DataError
from stconv.evaluation.metrics import ErrorAccumulator, area_weights, reference_rmse, skill
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
    (result,) = accumulator.result()
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


def test_weighted_scores_bias_and_acc_by_hand():
    """Two windows on a 2x1 grid at latitudes 0 and 60 (weights 4/3 and 2/3), and a
    third that is all padding."""
    predictions = np.array([[1.0, 2.0], [3.0, 0.0], [9.0, 9.0]])[:, None, :, None, None]
    targets = np.zeros_like(predictions)
    mask = np.ones_like(predictions, bool)
    mask[2] = False
    climatology = np.ones((2, 1, 1))
    weights = area_weights(np.array([0.0, 60.0]))
    np.testing.assert_allclose(weights, [4 / 3, 2 / 3], rtol=1e-6)
    accumulator = ErrorAccumulator(climatology, weights)
    accumulator.add(predictions, targets, mask, np.array([1.0]))
    (result,) = accumulator.result()
    # Errors 1, 2, 3, 0 at weights 4/3, 2/3, 4/3, 2/3.
    assert result["rmse"] == pytest.approx(np.sqrt(14 / 4))
    assert result["weighted_rmse"] == pytest.approx(np.sqrt(16 / 4))
    assert result["weighted_mae"] == pytest.approx((20 / 3) / 4)
    assert result["bias"] == pytest.approx(1.5) and result["bias_per_lead"] == [pytest.approx(1.5)]
    # Anomalies f' = (0, 1) and (2, -1), o' = (-1, -1): ACC -(2/3)/sqrt(4/3) and -2/sqrt(12).
    assert result["acc"] == pytest.approx(-1 / np.sqrt(3), rel=1e-5)
    assert result["area_weighted"] is True and result["cells"] == 4
    # The climatology itself has no anomaly: ACC 0. Unweighted: the weighted scores are plain.
    plain = ErrorAccumulator(climatology)
    plain.add(np.ones_like(predictions), targets, mask, np.array([1.0]))
    (plain_result,) = plain.result()
    assert plain_result["acc"] == 0.0 and plain_result["area_weighted"] is False
    assert plain_result["weighted_rmse"] == plain_result["rmse"]


def test_acc_is_left_out_without_a_climatology():
    accumulator = ErrorAccumulator()
    shape = (1, 1, 2, 1, 1)
    accumulator.add(np.ones(shape), np.zeros(shape), np.ones(shape, bool), np.ones(1))
    (result,) = accumulator.result()
    assert "acc" not in result and "acc_per_lead" not in result


def test_area_weights_and_their_errors():
    weights = area_weights(np.linspace(-60, 60, 5))
    assert weights.mean() == pytest.approx(1.0) and weights[2] == weights.max()
    assert area_weights(np.array([45.0])) is None  # one row: nothing to weight
    # Each row's band of the sphere: on a regular grid without the poles, cos(latitude)
    # (bit for bit in float32 here); WeatherBench 2's 1.5 degree grid holds the poles'
    # rows, whose bands reach 0.75 degrees from the pole: 121 / 2 * (1 - cos 0.75).
    regional = np.arange(50, 40, -0.25)
    cosines = np.cos(np.deg2rad(regional))
    np.testing.assert_array_equal(area_weights(regional), np.float32(cosines / cosines.mean()))
    global_grid = area_weights(np.linspace(90, -90, 121))
    sliver, band = 1 - np.cos(np.deg2rad(0.75)), 2 * np.sin(np.deg2rad(0.75))
    np.testing.assert_allclose(global_grid[[0, 60, 120]], 60.5 * np.array([sliver, band, sliver]))
    with pytest.raises(DataError, match=r"'x.nc': latitudes -100..0 are outside \[-90, 90\]"):
        area_weights(np.array([-100.0, 0.0]), "'x.nc'")
    with pytest.raises(DataError, match="latitudes are not monotonic"):
        area_weights(np.array([0.0, 10.0, 5.0]))


def test_skill_against_a_reference():
    assert skill(1.0, 4.0) == pytest.approx(0.75)
    np.testing.assert_allclose(skill(np.array([4.0, 1.0]), np.array([4.0, 2.0])), [0.0, 0.5])


def test_the_loss_weighs_each_target_variable():
    """Two targets (channels): errors 1 and 3, one cell each, the first masked in
    one of two windows. Weights 3 and 1 make the MSE (3 * 1 + 1 * 9 * 2) / (3 + 2)."""
    predictions = np.array([[[1.0, 3.0]], [[1.0, 3.0]]])[:, None, :, :]  # (2, 1, 1, 2)
    targets = np.zeros_like(predictions)
    mask = np.ones_like(predictions, bool)
    mask[1, ..., 0] = False
    weighted = rmse_loss(predictions, targets, mask, weights=(3.0, 1.0))
    assert float(weighted) == pytest.approx(np.sqrt((3 * 1 + 9 * 2) / 5 + 1e-6))
    plain = rmse_loss(predictions, targets, mask)  # equal weights: the MSE of every cell
    assert float(plain) == pytest.approx(np.sqrt((1 + 9 * 2) / 3 + 1e-6))
    assert float(rmse_loss(predictions, targets, mask, (1.0, 1.0))) == pytest.approx(float(plain))


def test_every_variable_is_scored_apart():
    """Two channels in different units: each gets its own scores (std 2 and 100)."""
    predictions = np.array([[1.0, 1.0], [3.0, 2.0]])[None, :, None, None, :]  # (1, 2 leads, ...)
    targets = np.zeros_like(predictions)
    accumulator = ErrorAccumulator()
    accumulator.add(predictions, targets, np.ones_like(predictions, bool), np.array([2.0, 100.0]))
    first, second = accumulator.result()
    assert first["rmse_per_lead"] == pytest.approx([2.0, 6.0])
    assert second["rmse_per_lead"] == pytest.approx([100.0, 200.0])
    assert second["mae"] == pytest.approx(150.0) and first["cells"] == second["cells"] == 2


def test_the_reference_score_is_the_mean_of_batch_rmses_over_every_cell():
    """Three windows of one lead on a 1x2 grid in batches of 2, as the reference
    scores its test split: errors (1, masked) (3, 3) (2, 2); the masked cell
    counts as an error of 0 and still divides the MSE."""
    predictions = np.array([[1.0, 9.0], [3.0, 3.0], [2.0, 2.0]])[:, None, None, :, None]
    targets = np.zeros_like(predictions)
    mask = np.ones_like(predictions, bool)
    mask[0, ..., 1, :] = False
    accumulator = ErrorAccumulator()
    accumulator.add(predictions, targets, mask, np.array([1.0]))
    squared = accumulator.window_sums()["squared"]
    np.testing.assert_allclose(squared[:, 0, 0], [1.0, 18.0, 8.0])
    scores = reference_rmse(squared, cells_per_frame=2, batch_size=2)
    batches = [np.sqrt((1 + 18) / 4 + 1e-6), np.sqrt(8 / 2 + 1e-6)]
    assert scores["overall"][0] == pytest.approx(np.mean(batches))
    assert scores["per_lead"][0, 0] == pytest.approx(np.mean(batches))
    (result,) = accumulator.result()  # at the reference's batch of 15: one batch
    assert result["rmse_reference"] == pytest.approx(np.sqrt(27 / 6 + 1e-6))
    assert result["rmse"] == pytest.approx(np.sqrt(27 / 5))  # ours: the valid cells only


def test_padding_rows_are_not_windows():
    predictions = np.ones((3, 1, 1, 1, 1))
    accumulator = ErrorAccumulator()
    accumulator.add(predictions, np.zeros_like(predictions), np.ones_like(predictions, bool),
                    np.ones(1), rows=2)  # fmt: skip
    assert accumulator.window_sums()["squared"].shape == (2, 1, 1)
