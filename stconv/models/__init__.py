"""Models by name: ``create("stconvs2s-r", input_shape=..., horizon=...)``.

Every model takes ``input_shape=(input_length, lat, lon, channels)`` and
``horizon``, its own hyperparameters as keywords, and ``rngs`` (default
``nnx.Rngs(0)``).
"""

import functools
from collections.abc import Callable

from flax import nnx

from stconv.models.stconvs2s import STConvS2S

_REGISTRY: dict[str, Callable[..., nnx.Module]] = {}


def register(name: str, constructor: Callable[..., nnx.Module]) -> None:
    """Makes ``constructor`` available to `create` as ``name``."""
    if name in _REGISTRY:
        raise ValueError(f"model name {name!r} is already registered")
    _REGISTRY[name] = constructor


def available() -> list[str]:
    """The registered model names."""
    return sorted(_REGISTRY)


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
