"""The quickstart demo on the embedded dataset."""

import numpy as np
import pytest

from stconv import demo


def test_embedded_dataset_has_its_real_shape():
    temperature = demo.load_embedded_temperature()
    assert temperature.dims == ("time", "latitude", "longitude")
    assert temperature.shape == (240, 37, 49)
    assert temperature.attrs["units"] == "K"
    assert 200 < float(temperature.min()) < float(temperature.max()) < 330


def test_first_windows_by_hand():
    field = np.arange(12.0)[:, None, None] * np.ones((1, 2, 3))
    inputs, targets = demo.first_windows(field, batch_size=3, input_length=2, horizon=3)
    assert inputs.shape == (3, 2, 2, 3, 1) and targets.shape == (3, 3, 2, 3, 1)
    np.testing.assert_array_equal(inputs[:, :, 0, 0, 0], [[0, 1], [1, 2], [2, 3]])
    np.testing.assert_array_equal(targets[:, :, 0, 0, 0], [[2, 3, 4], [3, 4, 5], [4, 5, 6]])
    with pytest.raises(ValueError, match="batch_size=9 is invalid"):
        demo.first_windows(field, batch_size=9, input_length=2, horizon=3)


def test_demo_runs(capsys):
    demo.main(["--steps", "2", "--batch-size", "2", "--num-layers", "1", "--hidden-dim", "2"])
    out = capsys.readouterr().out
    assert "air_temperature" in out and "forward: (2, 5, 37, 49, 1) -> (2, 5, 37, 49, 1)" in out
    assert "train step   2: loss" in out
