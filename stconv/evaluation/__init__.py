"""Evaluation: windowed inference, metrics, baselines, forecast files and plots.

- `inference`: batches of windows padded, forecast and turned back into physical units;
- `predictors`: the predictor interface and its wrappers (ensembles, perturbed
  members, normalization);
- `metrics`: the table of scores (`METRICS`, their mathematics), accumulated over
  batches, in physical units;
- `scoring`: forecasters and the simple baselines scored on the same windows;
- `scores`: the scores as an xarray Dataset, the skill, ``results.json`` and the summary;
- `netcdf`: forecasts streamed to netCDF batch by batch;
- `plots`: learning curves, forecast maps, skill per lead time, confusion matrices.
"""
