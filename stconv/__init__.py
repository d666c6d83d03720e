"""stconv: spatiotemporal forecasting with STConvS2S in JAX and Flax NNX.

The public API (imported on first use, so ``import stconv`` stays light):

- `Config` and `train_and_evaluate(config, workdir)`: train, test and write a run;
- `Forecaster`: a finished run loaded from its directory, forecasting,
  writing and evaluating new data given as a path, an xarray Dataset or a
  DataArray;
- `RunDirectory`: the files of a run;
- `load_dataset`: datasets by name or path, split, normalized and masked;
- `models`: the model registry (`stconv.models.create`).

The layers, each importing only from those before it in this list:
`checks`, the model registry (`stconv.models`, names only), `config` (the
sections, presets and TOML files; none of them loads JAX); `data`, the models, `training`,
`evaluation`; then the application layer `stconv.runs` (`directory` and
`provenance`; `assembly`, a run from its config; `forecaster`; `reporting`;
`experiment`, training); `cli` (the flags).
"""

import importlib

__version__ = "0.1.0"

_PUBLIC = {
    "Config": "stconv.config",
    "train_and_evaluate": "stconv.runs.experiment",
    "Forecaster": "stconv.runs.forecaster",
    "RunDirectory": "stconv.runs.directory",
    "load_dataset": "stconv.data.registry",
}
__all__ = [*_PUBLIC, "models"]


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    if name == "models":
        return importlib.import_module("stconv.models")
    raise AttributeError(f"module 'stconv' has no attribute {name!r}")
