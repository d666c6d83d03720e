"""Data: gridded fields from files to batches of normalized, masked windows.

- `files`: opening netCDF/zarr files (or a Dataset in memory) as one
  ``(time, lat, lon, channel)`` field;
- `windows`: window lengths and the chronological train/validation/test split;
- `sources`: random-access sources of windows (fields, the paper's files);
- `normalization`, `masks`: training statistics and valid cells;
- `synthetic`: seeded synthetic fields for tests and benchmarks;
- `registry`: the table of datasets by name, or a path (`load_dataset`);
- `pipeline`: grain batches in a fixed order per seed and epoch;
- `checks`: checks of data against what the computation needs;
- `field_checks`: new data read for a trained run and checked against it;
- `errors`: `DataError`, raised on bad input data.
"""
