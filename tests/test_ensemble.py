"""Ensemble scores: the fair CRPS and its parts, spread, spread-skill ratio and
rank histogram, against hand-computed examples and scoringrules."""

import jax
import numpy as np
import pytest
import scoringrules

from stconv.evaluation.ensemble import (
    EnsembleAccumulator,
    crps_parts,
    ensemble_sums,
    sorted_members,
    truth_ranks,
)


def one_cell(values, truth):
    """Members ``(M, 1, 1, 1, 1, 1)`` and truth ``(1, 1, 1, 1, 1)`` of one cell."""
    members = np.asarray(values, np.float32).reshape(-1, 1, 1, 1, 1, 1)
    return members, np.full((1, 1, 1, 1, 1), truth, np.float32)


def scores_of(members, targets, mask=None, std=1.0, weights=None):
    accumulator = EnsembleAccumulator(weights)
    mask = np.ones(targets.shape, bool) if mask is None else mask
    accumulator.add(members, targets, mask, np.float32(std))
    return accumulator.result()[0]


def test_three_members_by_hand():
    # members 1, 2, 4 and truth 3: E|X - y| = (2 + 1 + 1) / 3; the pairs
    # |1-2| + |1-4| + |2-4| = 6, so 1/2 E|X - X'| = 2 * 6 / (2 * 3 * 2) = 1.
    result = scores_of(*one_cell([1.0, 2.0, 4.0], 3.0))
    assert result["members"] == 3
    assert result["crps_skill"] == pytest.approx(4 / 3)
    assert result["crps_spread"] == pytest.approx(1.0)
    assert result["crps"] == pytest.approx(1 / 3)
    # mean 7/3: unbiased variance (16 + 1 + 25) / 9 / 2 = 7/3; the mean's error 2/3
    assert result["spread"] == pytest.approx(np.sqrt(7 / 3))
    assert result["ensemble_mean_rmse"] == pytest.approx(2 / 3)
    ratio = np.sqrt(4 / 3) * np.sqrt(7 / 3) / (2 / 3)
    assert result["spread_skill_ratio"] == pytest.approx(ratio)
    assert result["rank_histogram"] == [[0, 0, 1, 0]]  # two members below the truth


def test_std_turns_normalized_values_into_units():
    members, truth = one_cell([1.0, 2.0, 4.0], 3.0)
    assert scores_of(members, truth, std=2.5)["crps"] == pytest.approx(2.5 / 3)


def test_one_member_crps_is_the_absolute_error():
    result = scores_of(*one_cell([1.5], 3.0))
    assert result["crps"] == pytest.approx(1.5)
    assert result["crps_spread"] == 0.0 and result["spread"] == 0.0
    assert result["rank_histogram"] == [[0, 1]]  # the member is below the truth


@pytest.mark.parametrize("members", [2, 3, 10, 50])
def test_crps_matches_scoringrules_fair_estimator(members):
    rng = np.random.default_rng(members)
    forecasts = rng.normal(size=(members, 200)).astype(np.float32)
    truth = rng.normal(size=200).astype(np.float32)
    skill, spread = crps_parts(forecasts, truth)
    expected = scoringrules.crps_ensemble(
        truth.astype(np.float64), forecasts.T.astype(np.float64), estimator="fair"
    )
    np.testing.assert_allclose(np.asarray(skill - spread), expected, atol=1e-6)


def test_rank_histogram_and_spread_match_numpy_on_random_ensembles():
    rng = np.random.default_rng(0)
    members = rng.normal(size=(4, 6, 2, 3, 5, 1)).astype(np.float32)
    targets = rng.normal(size=(6, 2, 3, 5, 1)).astype(np.float32)
    result = scores_of(members, targets)
    ranks = (members < targets).sum(axis=0)  # (6, 2, 3, 5, 1)
    for lead in range(2):
        counts = np.bincount(ranks[:, lead].ravel(), minlength=5)
        assert result["rank_histogram"][lead] == counts.tolist()
    spread = np.sqrt(members.astype(np.float64).var(axis=0, ddof=1).mean(axis=(0, 2, 3, 4)))
    np.testing.assert_allclose(result["spread_per_lead"], spread, rtol=1e-5)
    np.testing.assert_array_equal(truth_ranks(members, targets), ranks)


def test_area_weights_and_mask():
    # two rows: weight 3 on an error-free row, weight 1 on a row with CRPS 1/3;
    # a third, masked row holds NaN and counts nowhere.
    members = np.zeros((3, 1, 1, 3, 1, 1), np.float32)
    members[:, 0, 0, 1, 0, 0] = [1.0, 2.0, 4.0]
    targets = np.zeros((1, 1, 3, 1, 1), np.float32)
    targets[0, 0, 1] = 3.0
    targets[0, 0, 2] = np.nan
    mask = np.ones(targets.shape, bool)
    mask[0, 0, 2] = False
    weights = np.array([3.0, 1.0, 5.0], np.float32)
    result = scores_of(members, targets, mask, weights=weights)
    assert result["crps"] == pytest.approx((1 / 3) / 4)
    assert sum(result["rank_histogram"][0]) == 2


def test_batches_add_up_to_the_whole_set():
    rng = np.random.default_rng(1)
    members = rng.normal(size=(3, 8, 2, 4, 4, 2)).astype(np.float32)
    targets = rng.normal(size=(8, 2, 4, 4, 2)).astype(np.float32)
    mask = np.ones(targets.shape, bool)
    whole, parts = EnsembleAccumulator(), EnsembleAccumulator()
    whole.add(members, targets, mask, np.ones(2, np.float32))
    for rows in (slice(0, 5), slice(5, 8)):
        parts.add(members[:, rows], targets[rows], mask[rows], np.ones(2, np.float32))
    for a, b in zip(whole.result(), parts.result(), strict=True):
        assert a["rank_histogram"] == b["rank_histogram"]
        for name in ("crps", "spread", "spread_skill_ratio", "ensemble_mean_rmse"):
            np.testing.assert_allclose(a[f"{name}_per_lead"], b[f"{name}_per_lead"], rtol=1e-5)


def test_a_batch_of_another_size_of_ensemble_is_refused():
    accumulator = EnsembleAccumulator()
    accumulator.add(*one_cell([1.0, 2.0], 0.0), np.ones((1, 1, 1, 1, 1), bool), np.float32(1))
    with pytest.raises(ValueError, match="an ensemble of 2 members got a batch of 3"):
        accumulator.add(*one_cell([1.0, 2.0, 3.0], 0.0), np.ones((1, 1, 1, 1, 1), bool), 1.0)


def test_sums_are_per_lead_and_channel():
    members = np.zeros((3, 2, 4, 2, 2, 5), np.float32)
    sums = ensemble_sums(members, members[0], np.ones(members.shape[1:], bool), 1.0, np.ones(2))
    assert sums["crps_skill"].shape == (4, 5) and sums["ranks"].shape == (4, 5, 4)


@pytest.mark.parametrize("on_host", [True, False], ids=["numpy", "xla"])
def test_members_sorted_on_the_host_or_by_xla(on_host):
    members = np.random.default_rng(1).normal(size=(7, 3, 4, 2)).astype(np.float32)
    sort = jax.jit(lambda m: sorted_members(m, on_host))
    np.testing.assert_array_equal(np.asarray(sort(members)), np.sort(members, axis=0))
