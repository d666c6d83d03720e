"""Models by name: ``create("stconvs2s-r", input_shape=..., horizon=...)``.

Every network takes ``input_shape=(input_length, lat, lon, channels)`` and
``horizon``, its own hyperparameters as keywords, and ``rngs`` (default
``nnx.Rngs(0)``). Models fitted in closed form instead (``arima``) are listed
in `FITTED`, by the module that fits, saves and loads them.

The package: `convolution` (the convolution algorithms), `layers` (Conv,
BatchNorm, ConvBlock), `blocks` (STConvS2S's blocks), `stconvs2s`,
`convolutional` and `recurrent` (the models), `residual`, `arima`,
`reference_weights` (the reference's weights in stconv's layout) and
`validation` (hyperparameter and input checks).
"""

import functools
import importlib
from collections.abc import Callable

from flax import nnx

from stconv.models.convolutional import Conv2Plus1D, EncoderDecoder3D
from stconv.models.recurrent import MIM, ConvLSTM, PredRNN
from stconv.models.stconvs2s import STConvS2S

_REGISTRY: dict[str, Callable[..., nnx.Module]] = {}


def register(name: str, constructor: Callable[..., nnx.Module]) -> None:
    """Makes ``constructor`` available to `create` as ``name``."""
    if name in _REGISTRY:
        raise ValueError(f"model name {name!r} is already registered")
    _REGISTRY[name] = constructor


def available() -> list[str]:
    """The registered network names (what `create` builds)."""
    return sorted(_REGISTRY)


# Models fitted in closed form instead of trained by gradient descent, by name:
# the module that implements ``fit_run(config, dataset, run, resume)`` and
# ``load_run(run)``, each returning the forecast function of normalized windows.
FITTED = {"arima": "stconv.models.arima"}


def is_fitted(name: str) -> bool:
    """Whether ``name`` is fitted in closed form (not a network of `create`)."""
    return name in FITTED


def fitted(name: str):
    """The module of the fitted model ``name`` (imported now: it may need an extra,
    e.g. ``pip install 'stconv[arima]'``)."""
    return importlib.import_module(FITTED[name])


def create(name: str, *, rngs: nnx.Rngs | None = None, **kwargs) -> nnx.Module:
    """Builds the model registered as ``name``.

    Args:
      name: a name from `available()`, e.g. ``"stconvs2s-r"``.
      rngs: random streams for initialisation and dropout; ``nnx.Rngs(0)`` if None.
      **kwargs: the model's keyword arguments, e.g. ``input_shape``, ``horizon``,
        ``num_layers``, ``hidden_dim``, ``kernel_size``, ``dropout``.

    Returns:
      The model, in training mode.
    """
    if name not in _REGISTRY:
        raise ValueError(f"model name {name!r} is unknown: choose from {available()}")
    return _REGISTRY[name](rngs=rngs if rngs is not None else nnx.Rngs(0), **kwargs)


register("stconvs2s-r", functools.partial(STConvS2S, temporal_block="reversed"))
register("stconvs2s-c", functools.partial(STConvS2S, temporal_block="causal"))

# The reference's baselines (model/baselines).
register("conv3d", functools.partial(STConvS2S, temporal_block="symmetric", factorized=False))
register("conv2plus1d", Conv2Plus1D)
register("enc-dec3d", EncoderDecoder3D)
register("convlstm", ConvLSTM)
register("predrnn", PredRNN)
register("mim", MIM)

# The paper's ablations of STConvS2S (model/ablation), by the reference's names.
ABLATIONS = {
    "ablation-stconvs2s-nocausalconstraint": dict(temporal_block="symmetric"),
    "ablation-stconvs2s-notemporal": dict(temporal_block=None),
    "ablation-stconvs2s-r-nochannelincrease": dict(
        temporal_block="reversed", channel_increase=False
    ),
    "ablation-stconvs2s-c-nochannelincrease": dict(temporal_block="causal", channel_increase=False),
    "ablation-stconvs2s-r-inverted": dict(temporal_block="reversed", spatial_first=True),
    "ablation-stconvs2s-c-inverted": dict(temporal_block="causal", spatial_first=True),
    "ablation-stconvs2s-r-notfactorized": dict(temporal_block="reversed", factorized=False),
    "ablation-stconvs2s-c-notfactorized": dict(temporal_block="causal", factorized=False),
}
for _name, _options in ABLATIONS.items():
    register(_name, functools.partial(STConvS2S, **_options))
