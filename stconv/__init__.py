"""stconv: spatiotemporal forecasting with STConvS2S in JAX and Flax NNX.

The public API (imported on first use, so ``import stconv`` stays light):

- `Config` and `train_and_evaluate(config, workdir)`: train, test and write a run;
- `Forecaster`: a finished run loaded from its directory, forecasting and
  evaluating new data given as a path, an xarray Dataset or a DataArray;
- `RunDirectory`: the files of a run;
- `load_dataset`: datasets by name or path, split, normalized and masked;
- `models`: the model registry (`stconv.models.create`).
"""

import importlib

__version__ = "0.1.0"

_PUBLIC = {
    "Config": "stconv.config",
    "train_and_evaluate": "stconv.experiment",
    "Forecaster": "stconv.forecaster",
    "RunDirectory": "stconv.run",
    "load_dataset": "stconv.data.registry",
}
__all__ = [*_PUBLIC, "models"]


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    if name == "models":
        return importlib.import_module("stconv.models")
    raise AttributeError(f"module 'stconv' has no attribute {name!r}")
