"""Optimizer and the jit-compiled train step.

The train step is a pure function of the split model-and-optimizer state, as
in Flax's performance guide: `nnx.split` once, jit a function that merges,
steps and returns the new state with its input buffers donated, and
`nnx.update` the Python objects only when they are needed again.
"""

from collections.abc import Callable
from typing import Any

import jax
import numpy as np
import optax
from flax import nnx
from tqdm import tqdm

from stconv.losses import rmse_loss
from stconv.pipeline import epoch_batches, num_batches
from stconv.precision import in_dtype, mixed_precision_loss, policy_dtype

Batch = dict[str, jax.Array]


def paper_optimizer(learning_rate: float = 1e-3) -> optax.GradientTransformation:
    """PyTorch's RMSprop as the paper used it: alpha 0.9, eps 1e-6 outside the root."""
    return optax.rmsprop(learning_rate, decay=0.9, eps=1e-6, eps_in_sqrt=False)


def create_optimizer(
    model: nnx.Module, tx: optax.GradientTransformation | None = None
) -> nnx.Optimizer:
    """An `nnx.Optimizer` over the model's parameters (default: `paper_optimizer`)."""
    return nnx.Optimizer(model, tx if tx is not None else paper_optimizer(), wrt=nnx.Param)


def forecast(model: nnx.Module, inputs: jax.Array, horizon: int) -> jax.Array:
    """The model's first ``horizon`` output steps (STConvS2S keeps the input
    length when ``horizon`` is shorter)."""
    return model(inputs)[:, :horizon]


def make_apply(
    model: nnx.Module,
    apply: Callable[[nnx.Module, jax.Array], jax.Array],
    compute_dtype: Any = None,
) -> Callable[[nnx.State, jax.Array], jax.Array]:
    """A jitted ``fn(model_state, inputs) = apply(model, inputs)`` in eval mode.

    ``model_state`` is ``nnx.state(model)`` or the model part (``state[0]``)
    of `make_train_step`'s state: train and eval mode share one state layout.
    With ``compute_dtype`` bfloat16 the model computes in bfloat16 and returns
    float32 (`stconv.precision`); None or float32 computes in float32.
    """
    dtype = policy_dtype(compute_dtype)
    model.eval()
    graphdef = nnx.graphdef(model)
    model.train()

    @jax.jit
    def fn(model_state: nnx.State, inputs: jax.Array) -> jax.Array:
        model = nnx.merge(graphdef, model_state)
        return apply(model if dtype is None else in_dtype(model, dtype), inputs)

    return fn


def make_predict(
    model: nnx.Module, horizon: int, compute_dtype: Any = None
) -> Callable[[nnx.State, jax.Array], jax.Array]:
    """A jitted ``predict(model_state, inputs)``: the eval-mode forecast, computed
    in ``compute_dtype`` (see `make_apply`)."""
    return make_apply(model, lambda model, inputs: forecast(model, inputs, horizon), compute_dtype)


def forecast_loss(model: nnx.Module, batch: Batch) -> jax.Array:
    """The paper's RMSE of the model's forecast of ``batch["targets"]`` (masked)."""
    predictions = forecast(model, batch["inputs"], batch["targets"].shape[1])
    return rmse_loss(predictions, batch["targets"], batch.get("mask"))


def make_train_step(
    model: nnx.Module,
    optimizer: nnx.Optimizer,
    loss_fn: Callable[[nnx.Module, Batch], jax.Array] = forecast_loss,
    compute_dtype: Any = None,
) -> tuple[Callable[[nnx.State, Batch], tuple[nnx.State, dict]], nnx.State]:
    """Splits ``(model, optimizer)`` once and returns a jitted step and the state.

    ``loss_fn(model, batch)`` is the loss to minimise; the default is `forecast_loss`.
    ``compute_dtype`` bfloat16 computes the model in bfloat16 (mixed precision,
    `stconv.precision`): parameters, BatchNorm statistics, optimizer state,
    gradients and the loss stay float32. None or float32 computes in float32.

    Returns:
      ``(train_step, state)``: ``train_step(state, batch)``, with ``batch`` a
      dict of ``inputs``, ``targets`` and optionally ``mask``, returns
      ``(new_state, {"loss": ...})``; ``state`` is donated and must not be
      reused. Call ``nnx.update((model, optimizer), state)`` to write the
      state back into the objects.
    """
    dtype = policy_dtype(compute_dtype)
    if dtype is not None:
        loss_fn = mixed_precision_loss(loss_fn, dtype)
    graphdef, state = nnx.split((model, optimizer))

    def train_step(state: nnx.State, batch: Batch) -> tuple[nnx.State, dict]:
        model, optimizer = nnx.merge(graphdef, state)
        loss, grads = nnx.value_and_grad(loss_fn)(model, batch)
        optimizer.update(model, grads)
        return nnx.state((model, optimizer)), {"loss": loss}

    return jax.jit(train_step, donate_argnums=0), state


class TrainingError(RuntimeError):
    """Training cannot go on (a NaN or infinite loss)."""


def train_epoch(
    train_step: Callable,
    state: nnx.State,
    source,
    batch_size: int,
    *,
    seed: int,
    epoch: int,
    description: str,
):
    """One epoch of ``train_step`` over ``source`` in the ``(seed, epoch)`` order,
    with a progress bar showing the running loss.

    Returns:
      ``(state, mean_loss, batches)``; ``batches.get_state()`` is the data
      iterator's position.

    Raises:
      TrainingError: on a NaN or infinite loss, naming the epoch and step.
    """
    batches = epoch_batches(source, batch_size, seed=seed, epoch=epoch)
    bar = tqdm(batches, total=num_batches(source, batch_size), desc=description, leave=False)
    losses = []
    for step, batch in enumerate(bar, 1):
        state, metrics = train_step(state, batch)
        loss = float(metrics["loss"])
        if not np.isfinite(loss):
            raise TrainingError(f"loss is {loss} at epoch {epoch}, step {step}")
        losses.append(loss)
        bar.set_postfix(loss=f"{np.mean(losses):.4f}")
    return state, float(np.mean(losses)), batches


def count_parameters(model: nnx.Module) -> int:
    """Trainable parameters: conv kernels, biases, BatchNorm scales and biases."""
    return sum(leaf.size for leaf in jax.tree.leaves(nnx.state(model, nnx.Param)))
