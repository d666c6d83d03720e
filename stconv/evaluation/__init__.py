"""Evaluation: metrics, baselines, forecast files and plots.

- `metrics`: masked RMSE and MAE sums in physical units;
- `scoring`: a model and the simple baselines scored on the same windows;
- `netcdf`: forecasts streamed to netCDF batch by batch;
- `plots`: learning curves, forecast maps, confusion matrices.
"""
