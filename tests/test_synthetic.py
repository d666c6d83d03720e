"""Synthetic fields: seeded, moving, written to netCDF."""

import numpy as np

from stconv.data.files import open_field
from stconv.data.synthetic import synthetic_field, write_synthetic_netcdf


def test_synthetic_field_is_seeded_and_moves(tmp_path):
    first = synthetic_field(60, 12, 16, 2, seed=3)
    assert first.shape == (60, 12, 16, 2) and first.attrs["synthetic"] == "yes"
    np.testing.assert_array_equal(first.values, synthetic_field(60, 12, 16, 2, seed=3).values)
    assert not np.allclose(first.values, synthetic_field(60, 12, 16, 2, seed=4).values)
    anomaly = first.values[..., 0] - first.values[..., 0].mean(axis=(1, 2), keepdims=True)
    assert np.abs(anomaly[1] - anomaly[0]).mean() > 0.01  # the pattern changes every step
    path = tmp_path / "synthetic.nc"
    write_synthetic_netcdf(path, 60, 12, 16, seed=3, chunk=7)
    written = open_field(str(path))
    in_memory = synthetic_field(60, 12, 16, 1, seed=3)
    np.testing.assert_allclose(written.values, in_memory.values, rtol=1e-6)
