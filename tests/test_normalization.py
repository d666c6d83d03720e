"""Normalization: fitted on the training split only, inverted exactly."""

import numpy as np
import pytest

from stconv.data.errors import DataError
from stconv.data.normalization import Normalizer
from stconv.data.registry import load_dataset


def test_normalization_is_fitted_on_train_only_and_inverts(series_file, tmp_path):
    dataset = load_dataset(series_file, input_length=3, horizon=2)
    # Train frames 0..17: mean of 100 t + 10 i + j over t < 18, i < 4, j < 5.
    expected_mean = 100 * 8.5 + 10 * 1.5 + 2
    np.testing.assert_allclose(dataset.normalizer.mean, [expected_mean], rtol=1e-6)
    x = np.random.default_rng(0).normal(900, 50, (2, 3, 4, 5, 1)).astype(np.float32)
    normalizer = dataset.normalizer
    np.testing.assert_allclose(normalizer.denormalize(normalizer.normalize(x)), x, rtol=1e-5)
    normalizer.save(tmp_path / "stats.json")
    loaded = Normalizer.load(tmp_path / "stats.json")
    np.testing.assert_array_equal(loaded.mean, normalizer.mean)
    np.testing.assert_array_equal(loaded.std, normalizer.std)
    assert float(normalizer.scale(1.0)[0]) == pytest.approx(float(normalizer.std[0]))
    raw = load_dataset(series_file, input_length=3, horizon=2, normalization="none")
    assert raw.normalizer.mean.tolist() == [0.0] and raw.normalizer.std.tolist() == [1.0]


def test_per_cell_normalization(series_file):
    dataset = load_dataset(series_file, input_length=3, horizon=2, normalization="cell")
    normalizer = dataset.normalizer
    # Cell (i, j) over train frames t < 18: mean 100 * 8.5 + 10 i + j; anomalies 100 (t - 8.5).
    assert normalizer.mean.shape == (4, 5, 1)
    np.testing.assert_allclose(normalizer.mean[2, 3, 0], 850 + 23, rtol=1e-6)
    np.testing.assert_allclose(normalizer.std, [100 * np.std(np.arange(18))], rtol=1e-5)
    # The climatology (each cell's mean: 18 days, less than a year) is 0 as anomalies.
    assert dataset.climatology.kind == "annual"
    normalized = normalizer.normalize(dataset.climatology.values[0])
    np.testing.assert_allclose(normalized, 0.0, atol=1e-5)
    example = dataset.splits["train"][0]  # frames 0, 1, 2: anomalies -8.5, -7.5, -6.5 (x 100)
    expected = (np.arange(3) - 8.5) / np.std(np.arange(18))
    np.testing.assert_allclose(example["inputs"][:, 1, 4, 0], expected, rtol=1e-5)
    x = np.random.default_rng(0).normal(900, 50, (2, 3, 4, 5, 1)).astype(np.float32)
    np.testing.assert_allclose(normalizer.denormalize(normalizer.normalize(x)), x, rtol=1e-5)
    with pytest.raises(DataError, match=r"normalization='zscore' is invalid: choose from"):
        load_dataset(series_file, normalization="zscore")
