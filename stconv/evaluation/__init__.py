"""Evaluation: windowed inference, metrics, baselines, forecast files and plots.

- `inference`: batches of windows padded, forecast and turned back into physical units;
- `predictors`: the predictor interface and its wrappers (ensembles, perturbed
  members, normalization);
- `baselines`: the simple forecasts every model is scored beside;
- `metrics`: the table of scores (`METRICS`, their mathematics), accumulated per
  window over batches, in physical units; the reference's batch RMSE;
- `significance`: the circular block bootstrap of the windows, intervals and
  paired tests; `confidence`: their place in the Dataset of scores;
- `events`, `event_scoring`: categorical scores, the fractions skill score and
  the Brier score at thresholds;
- `cells`, `regions`, `spectra`, `field_scoring`: per-cell and regional scores
  and power spectra; `maps`: their figures;
- `scoring`: forecasters and the simple baselines scored on the same windows;
- `scores`: the scores as an xarray Dataset, the skill, ``results.json`` and the summary;
- `netcdf`: forecasts streamed to netCDF batch by batch;
- `plots`: learning curves, forecast maps, skill per lead time, confusion matrices.
"""
