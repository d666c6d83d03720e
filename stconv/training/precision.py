"""Mixed precision: compute in bfloat16, keep parameters and optimizer state in float32.

`stconv.training.step.make_train_step` and `make_predict` take a ``compute_dtype``.
With bfloat16, each call works on a bfloat16 copy of the model (`in_dtype`):
its floating parameters and inputs are cast to bfloat16, BatchNorm normalises
in bfloat16 while its running statistics stay float32, and its floating
outputs come back as float32, so the loss is computed in float32. In the train
step the cast happens inside the differentiated function: the gradients arrive
in float32, for the float32 parameters that the optimizer updates and the
checkpoints store. float32 (the default) runs the model unchanged.

`Residual` keeps its residual in float32 and runs only the network
inside it in bfloat16: the network sees and predicts changes from the last
frame, which bfloat16's 8 significant bits resolve even on raw fields
(bfloat16 rounds 280 K to 2 K steps).

bfloat16 is for GPUs and TPUs; XLA's CPU backend emulates bfloat16
convolutions and runs them slower than float32.
"""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from stconv.config import COMPUTE_DTYPES


def policy_dtype(compute_dtype: Any) -> jnp.dtype | None:
    """The dtype to compute in, or None for float32 (no cast at all).

    Args:
      compute_dtype: None, or a name or dtype in `COMPUTE_DTYPES`.

    Raises:
      ValueError: for any other dtype.
    """
    if compute_dtype is None:
        return None
    try:
        dtype = jnp.dtype(compute_dtype)
    except TypeError:
        dtype = None
    if dtype is None or dtype.name not in COMPUTE_DTYPES:
        raise ValueError(
            f"compute_dtype={compute_dtype!r} is invalid: choose from {list(COMPUTE_DTYPES)}"
        )
    return None if dtype == jnp.float32 else dtype


def cast_floating(tree: Any, dtype: jnp.dtype) -> Any:
    """``tree`` with its floating arrays cast to ``dtype`` (others unchanged)."""

    def cast(x):
        if hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.floating):
            return x.astype(dtype)
        return x

    return jax.tree.map(cast, tree)


class Computed(nnx.Module):
    """Calls ``model`` on its floating arguments cast to ``dtype``; floating outputs as float32."""

    def __init__(self, model: nnx.Module, dtype: jnp.dtype):
        self.model = model
        self.dtype = dtype

    def __call__(self, *args, **kwargs):
        args, kwargs = cast_floating((args, kwargs), self.dtype)
        return cast_floating(self.model(*args, **kwargs), jnp.float32)


def compute_copy(model: nnx.Module, dtype: jnp.dtype) -> nnx.Module:
    """A copy of ``model`` with its floating `nnx.Param`s cast to ``dtype``.

    Its BatchNorms normalise in ``dtype`` and update their float32 running
    statistics in float32 (Flax computes batch statistics in float32). Updates
    of its non-parameter state (statistics, random streams) stay in the copy:
    see `mixed_precision_loss`.
    """
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    copy = nnx.merge(graphdef, cast_floating(params, dtype), rest)
    for _, module in nnx.iter_modules(copy):
        if isinstance(module, nnx.BatchNorm):
            module.dtype = dtype
    return copy


def wrap(copy: nnx.Module, dtype: jnp.dtype) -> nnx.Module:
    """`compute_copy`'s ``copy`` called through `Computed`: float32 in and out;
    a model with a ``wrap_network`` method (`stconv.models.residual.Residual`)
    has only its network computed in ``dtype``."""
    if hasattr(copy, "wrap_network"):
        return copy.wrap_network(lambda network: Computed(network, dtype))
    return Computed(copy, dtype)


def in_dtype(model: nnx.Module, dtype: jnp.dtype) -> nnx.Module:
    """``model`` computing in ``dtype``, float32 in and out (see `wrap`)."""
    return wrap(compute_copy(model, dtype), dtype)


def mixed_precision_loss(
    loss_fn: Callable[[nnx.Module, Any], jax.Array], dtype: jnp.dtype
) -> Callable[[nnx.Module, Any], jax.Array]:
    """``loss_fn`` evaluated on `in_dtype(model, dtype)`; for `nnx.value_and_grad`.

    The parameters are cast inside the returned function, so the gradients
    are float32; the copy's updated BatchNorm statistics and random streams
    are written back into ``model``.
    """

    def loss(model: nnx.Module, batch: Any) -> jax.Array:
        copy = compute_copy(model, dtype)
        value = loss_fn(wrap(copy, dtype), batch)
        nnx.update(model, nnx.state(copy, nnx.Not(nnx.Param)))
        return value

    return loss
