"""Models by name: ``create("stconvs2s-r", input_shape=..., horizon=...)``.

The registry is one table, `MODELS`: each name is a constructor, written
``"module:Name"`` so that listing the names (the command line's help, checking a
config) loads neither JAX nor Flax, and the keyword options that the name
fixes (the paper's ablations are options of `STConvS2S`). A new model is one
entry, or one `register` call.

Every network is built as ``Model(spec, *, rngs, **options)``: ``spec`` is a
`ModelSpec`, the hyperparameters every model takes (``input_shape=(input_length,
lat, lon, channels)``, ``horizon``, ``num_layers``, ...), declared and checked
once; `create` makes it from the keyword arguments of those names (`COMMON`)
and passes ``rngs`` (default ``nnx.Rngs(0)``). The constructor's other keyword
parameters are its own options (`options`): the config's ``model.options``
(``{"channel_increase": False}``) sets one without a new `stconv.config.Config` field.
Models fitted in closed form instead (``arima``) are listed in `FITTED`, by the
module that fits, saves and loads them.

The package: `spec` (`ModelSpec`), `conv_algorithms` (how each convolution is computed), `layers`
(Conv, BatchNorm, ConvBlock), `blocks` (STConvS2S's blocks), `stconvs2s`,
`conv_baselines` and `recurrent` (the models), `residual`, `arima`,
`reference_weights` (the reference's weights in stconv's layout) and `checks`
(hyperparameter and input checks).
"""

import dataclasses
import functools
import importlib
import inspect
import types
import typing
from collections.abc import Callable
from typing import Any

from stconv.models.spec import FIELDS, ModelSpec

# The keyword arguments of `create` that every network takes: `ModelSpec`'s
# fields (`stconv.config.Config` fields and the data's shapes) and its rngs.
COMMON = (*FIELDS, "rngs")


@dataclasses.dataclass(frozen=True)
class Entry:
    """One model of the registry.

    Attributes:
      constructor: the class or function, or ``"module:Name"`` to import it on use.
      fixed: keyword options the name sets (they are not the name's options).
    """

    constructor: str | Callable[..., Any]
    fixed: dict = dataclasses.field(default_factory=dict)


STCONVS2S = "stconv.models.stconvs2s:STConvS2S"

# The paper's ablations of STConvS2S (the reference's model/ablation), by its names.
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

MODELS: dict[str, Entry] = {
    "stconvs2s-r": Entry(STCONVS2S, dict(temporal_block="reversed")),
    "stconvs2s-c": Entry(STCONVS2S, dict(temporal_block="causal")),
    # The reference's baselines (model/baselines).
    "conv3d": Entry(STCONVS2S, dict(temporal_block="symmetric", factorized=False)),
    "conv2plus1d": Entry("stconv.models.conv_baselines:Conv2Plus1D"),
    "enc-dec3d": Entry("stconv.models.conv_baselines:EncoderDecoder3D"),
    "convlstm": Entry("stconv.models.recurrent.convlstm:ConvLSTM"),
    "predrnn": Entry("stconv.models.recurrent.predrnn:PredRNN"),
    "mim": Entry("stconv.models.recurrent.mim:MIM"),
    **{name: Entry(STCONVS2S, fixed) for name, fixed in ABLATIONS.items()},
}

# Models fitted in closed form instead of trained by gradient descent, by name:
# the module that implements ``fit_run(config, dataset, run, resume)`` and
# ``load_run(run)``, each returning the forecast function of normalized windows.
FITTED = {"arima": "stconv.models.arima"}
# The config settings (flat names, `stconv.config.FLAGS`) that only a network
# uses: given to a model of `FITTED`, they would be ignored, so they are refused.
NETWORK_SETTINGS = (
    "num_layers", "hidden_dim", "kernel_size", "dropout", "model_options", "batch_size",
    "epochs", "patience", "learning_rate", "learning_rate_schedule", "target_weights",
    "compute_dtype", "seed", "iterations",
)  # fmt: skip

# The choices of the wrappers' options, named here (no JAX) so that a config
# checks them without loading the modules that implement them.
ANOMALY_BASES = ("climatology", "anomaly", "damped")  # need anomaly inputs
RESIDUAL_BASES = ("last", "mean", *ANOMALY_BASES)  # `stconv.models.residual`
ARIMA_CENTERS = ("train", "window")  # `stconv.models.arima`


def register(name: str, constructor: str | Callable[..., Any], **fixed) -> None:
    """Makes ``constructor`` (with the keyword options ``fixed``) available to
    `create` as ``name``."""
    if name in MODELS or name in FITTED:
        raise ValueError(f"model name {name!r} is already registered")
    MODELS[name] = Entry(constructor, fixed)


def available() -> list[str]:
    """The registered network names (what `create` builds)."""
    return sorted(MODELS)


def is_fitted(name: str) -> bool:
    """Whether ``name`` is fitted in closed form (not a network of `create`)."""
    return name in FITTED


def fitted(name: str):
    """The module of the fitted model ``name`` (imported now: it may need an extra,
    e.g. ``pip install 'stconv[arima]'``)."""
    return importlib.import_module(FITTED[name])


def check_name(name: str) -> None:
    """Raises ValueError naming the valid names unless ``name`` is a network or fitted model."""
    if name not in MODELS and name not in FITTED:
        raise ValueError(
            f"model {name!r} is unknown: choose from {available()} "
            f"or {', '.join(map(repr, FITTED))}"
        )


def imported(name: str) -> Callable[..., Any]:
    """The class or function registered as ``name`` (imported now), without the
    options the name fixes."""
    if name not in MODELS:
        raise ValueError(f"model name {name!r} is unknown: choose from {available()}")
    build = MODELS[name].constructor
    if isinstance(build, str):
        module, _, attribute = build.partition(":")
        build = getattr(importlib.import_module(module), attribute)
    return build


def constructor(name: str) -> Callable[..., Any]:
    """The constructor registered as ``name``, with the options it fixes."""
    build, fixed = imported(name), MODELS[name].fixed
    return functools.partial(build, **fixed) if fixed else build


def options(name: str) -> dict[str, Any]:
    """The own keyword options of model ``name`` and their annotated types:
    its constructor's keyword-only parameters but `COMMON` (``rngs``) and those the name fixes."""
    if is_fitted(name):
        return {}
    build = imported(name)
    # A Flax module's class signature is its metaclass's (*args, **kwargs).
    parameters = inspect.signature(build.__init__ if isinstance(build, type) else build).parameters
    fixed = MODELS[name].fixed
    return {
        key: parameter.annotation
        for key, parameter in parameters.items()
        if key not in COMMON and key not in fixed and parameter.kind == parameter.KEYWORD_ONLY
    }


def parse_options(name: str, given: dict[str, Any]) -> dict[str, Any]:
    """``given`` options of model ``name`` as the values its constructor takes:
    strings from the command line (``"false"``, ``"3"``) are converted by the
    parameter's type; values already typed are checked.

    Raises:
      ValueError: one line naming the option and what is allowed, for an
        option the model does not have or a value of the wrong type.
    """
    if not given:
        return {}
    own = options(name)
    parsed = {}
    for key, value in given.items():
        if key not in own:
            allowed = f"its options are {sorted(own)}" if own else "it has no options"
            raise ValueError(
                f"model {name!r} has no option {key!r} (model.options {key}=...): {allowed}"
            )
        parsed[key] = option_value(key, value, own[key])
    return parsed


def option_value(key: str, value: Any, annotation: Any) -> Any:
    """``value`` as one of the types of ``annotation`` (``bool``, ``int``,
    ``float``, ``str``, a union of them, or ``None``)."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        kinds = typing.get_args(annotation)
    else:
        kinds = (annotation,)
    for kind in kinds:
        converted = convert(value, kind)
        if converted is not NOT_CONVERTED:
            return converted
    names = [getattr(kind, "__name__", str(kind)).replace("NoneType", "none") for kind in kinds]
    raise ValueError(f"model option {key}={value!r} is invalid: must be {' or '.join(names)}")


NOT_CONVERTED = object()


def convert(value: Any, kind: Any) -> Any:
    """``value`` as ``kind``, from a command-line string or checked as given;
    `NOT_CONVERTED` if it is not one."""
    text = value.strip().lower() if isinstance(value, str) else None
    if kind is type(None):
        return None if value is None or text == "none" else NOT_CONVERTED
    if kind is bool:
        if isinstance(value, bool):
            return value
        return {"true": True, "false": False}.get(text, NOT_CONVERTED)
    if kind in (int, float):
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value if kind is float or isinstance(value, int) else NOT_CONVERTED
        try:
            return kind(text) if text is not None else NOT_CONVERTED
        except ValueError:
            return NOT_CONVERTED
    if kind is str:
        return value if isinstance(value, str) else NOT_CONVERTED
    return NOT_CONVERTED


def create(name: str, *, rngs=None, **kwargs):
    """Builds the model registered as ``name``.

    Args:
      name: a name from `available()`, e.g. ``"stconvs2s-r"``.
      rngs: random streams for initialisation and dropout; ``nnx.Rngs(0)`` if None.
      **kwargs: the fields of `ModelSpec` (``input_shape``, ``horizon``,
        ``num_layers``, ``hidden_dim``, ``kernel_size``, ``dropout``,
        ``output_channels``) and the model's own `options`.

    Returns:
      The model, in training mode.

    Raises:
      ValueError: naming the first invalid hyperparameter or option.
    """
    build = constructor(name)
    spec = ModelSpec(**{key: kwargs.pop(key) for key in FIELDS if key in kwargs})
    if rngs is None:
        from flax import nnx

        rngs = nnx.Rngs(0)
    return build(spec, rngs=rngs, **kwargs)
