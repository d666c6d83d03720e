"""Random-access windows of a field: the right frames, read lazily."""

import numpy as np

from stconv.data.registry import load_dataset


def test_field_windows_read_the_right_frames(series_file):
    dataset = load_dataset(series_file, input_length=3, horizon=2, normalization="none")
    example = dataset.splits["validation"][1]  # the window starting at frame 19
    np.testing.assert_array_equal(example["inputs"][:, 0, 0, 0], [1900, 2000, 2100])
    np.testing.assert_array_equal(example["targets"][:, 2, 3, 0], [2223, 2323])
    assert example["mask"].all()
    assert dataset.splits["test"].init_times()[0] == np.datetime64("2001-01-27")


def test_lazy_field_streams_the_same_windows(series_file):
    eager = load_dataset(series_file, input_length=3, horizon=2)
    lazy = load_dataset(series_file, input_length=3, horizon=2, chunks={"time": 4})
    assert lazy.splits["train"].field.chunks is not None
    for index in (0, 7, 13):
        for key in ("inputs", "targets", "mask"):
            np.testing.assert_array_equal(
                lazy.splits["train"][index][key], eager.splits["train"][index][key]
            )
