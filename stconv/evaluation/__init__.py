"""Evaluation: windowed inference, metrics, baselines, forecast files and plots.

- `inference`: batches of windows padded, forecast and turned back into physical units;
- `metrics`: the table of scores (`METRICS`), accumulated over batches, in physical units;
- `scoring`: forecasters and the simple baselines scored on the same windows;
- `netcdf`: forecasts streamed to netCDF batch by batch;
- `plots`: learning curves, forecast maps, skill per lead time, confusion matrices.
"""
