"""Optimizer and the jit-compiled train step.

The train step is a pure function of the split model-and-optimizer state, as
in Flax's performance guide: `nnx.split` once, jit a function that merges,
steps and returns the new state with its input buffers donated, and
`nnx.update` the Python objects only when they are needed again.

Given a `stconv.training.distributed.data_mesh`, the step is compiled once for the
mesh: the state stays replicated (or FSDP-split) across the devices and every
batch is split over them; forward passes split their inputs likewise.

Making either one has the heap trimmed after every compile from then on
(`stconv.training.heap`), so that the compiler's freed memory does not sit
under the step's buffers.
"""

from collections.abc import Callable
from typing import Any

import jax
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh

from stconv.checks import NamesParameters
from stconv.data.pipeline import epoch_batches, num_batches
from stconv.outputs import progress_bar
from stconv.training import distributed, heap
from stconv.training.losses import rmse_loss
from stconv.training.precision import in_dtype, mixed_precision_loss, policy_dtype

Batch = dict[str, jax.Array]


def paper_optimizer(
    learning_rate: float = 1e-3, decay_steps: int | None = None
) -> optax.GradientTransformation:
    """PyTorch's RMSprop as the paper used it: alpha 0.9, eps 1e-6 outside the root.

    Args:
      learning_rate: the step size (the paper's: constant).
      decay_steps: if given, the step size falls from ``learning_rate`` to zero
        along a half cosine over this many steps (not the paper's).
    """
    if decay_steps is not None:
        learning_rate = optax.cosine_decay_schedule(learning_rate, decay_steps)
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
    mesh: Mesh | None = None,
) -> Callable[[nnx.State, jax.Array], jax.Array]:
    """A jitted ``fn(model_state, inputs) = apply(model, inputs)`` in eval mode.

    ``model_state`` is ``nnx.state(model)`` or the model part (``state[0]``)
    of `make_train_step`'s state: train and eval mode share one state layout.
    With ``compute_dtype`` bfloat16 the model computes in bfloat16 and returns
    float32 (`stconv.training.precision`); None or float32 computes in float32.
    With a ``mesh``, the inputs (the same on every process) are split over its
    devices, padded to a multiple of their number, and the outputs come back
    whole to every process.
    """
    heap.trim_after_compiles()
    dtype = policy_dtype(compute_dtype)
    model.eval()
    graphdef = nnx.graphdef(model)
    model.train()

    def fn(model_state: nnx.State, inputs: jax.Array) -> jax.Array:
        model = nnx.merge(graphdef, model_state)
        return apply(model if dtype is None else in_dtype(model, dtype), inputs)

    if mesh is None:
        return jax.jit(fn)
    jitted = jax.jit(fn, out_shardings=distributed.replicated(mesh))

    def split_fn(model_state: nnx.State, inputs: jax.Array) -> jax.Array:
        outputs = jitted(model_state, distributed.split_rows(inputs, mesh))
        return outputs if len(outputs) == len(inputs) else outputs[: len(inputs)]

    return split_fn


def make_predict(
    model: nnx.Module, horizon: int, compute_dtype: Any = None, mesh: Mesh | None = None
) -> Callable[[nnx.State, jax.Array], jax.Array]:
    """A jitted ``predict(model_state, inputs)``: the eval-mode forecast, computed
    in ``compute_dtype``, split over ``mesh`` if given (see `make_apply`)."""
    return make_apply(
        model, lambda model, inputs: forecast(model, inputs, horizon), compute_dtype, mesh
    )


def forecast_loss(
    model: nnx.Module, batch: Batch, weights: tuple[float, ...] | None = None
) -> jax.Array:
    """The paper's RMSE of the model's forecast of ``batch["targets"]`` (masked),
    the target variables' errors weighted by ``weights`` (`rmse_loss`)."""
    predictions = forecast(model, batch["inputs"], batch["targets"].shape[1])
    return rmse_loss(predictions, batch["targets"], batch.get("mask"), weights)


def make_train_step(
    model: nnx.Module,
    optimizer: nnx.Optimizer,
    loss_fn: Callable[[nnx.Module, Batch], jax.Array] = forecast_loss,
    compute_dtype: Any = None,
    mesh: Mesh | None = None,
    fsdp: bool = False,
) -> tuple[Callable[[nnx.State, Batch], tuple[nnx.State, dict]], nnx.State]:
    """Splits ``(model, optimizer)`` once and returns a jitted step and the state.

    ``loss_fn(model, batch)`` is the loss to minimise; the default is `forecast_loss`.
    ``compute_dtype`` bfloat16 computes the model in bfloat16 (mixed precision,
    `stconv.training.precision`): parameters, BatchNorm statistics, optimizer state,
    gradients and the loss stay float32. None or float32 computes in float32.

    With a ``mesh`` (`stconv.training.distributed.data_mesh`), the state is placed on
    it, replicated or, with ``fsdp``, split (`stconv.training.distributed.state_shardings`),
    and the step returns it placed the same way, so it compiles once for the
    mesh; batches must be on the mesh (`stconv.training.distributed.global_batch`, as
    `train_epoch` does). The loss comes back replicated.

    Returns:
      ``(train_step, state)``: ``train_step(state, batch)``, with ``batch`` a
      dict of ``inputs``, ``targets`` and optionally ``mask``, returns
      ``(new_state, {"loss": ...})``; ``state`` is donated and must not be
      reused. Call ``nnx.update((model, optimizer), state)`` to write the
      state back into the objects.
    """
    heap.trim_after_compiles()
    dtype = policy_dtype(compute_dtype)
    if dtype is not None:
        loss_fn = mixed_precision_loss(loss_fn, dtype)
    graphdef, state = nnx.split((model, optimizer))

    def train_step(state: nnx.State, batch: Batch) -> tuple[nnx.State, dict]:
        model, optimizer = nnx.merge(graphdef, state)
        loss, grads = nnx.value_and_grad(loss_fn)(model, batch)
        optimizer.update(model, grads)
        return nnx.state((model, optimizer)), {"loss": loss}

    if mesh is None:
        return jax.jit(train_step, donate_argnums=0), state
    shardings = distributed.state_shardings(state, mesh, fsdp)
    metrics = {"loss": distributed.replicated(mesh)}
    step = jax.jit(train_step, donate_argnums=0, out_shardings=(shardings, metrics))
    return step, distributed.place_state(state, mesh, fsdp)


class TrainingError(NamesParameters, RuntimeError):
    """Training cannot go on (a NaN or infinite loss); the message may name
    the call that tests what was kept (`stconv.checks.NamesParameters`)."""


def train_epoch(
    train_step: Callable,
    state: nnx.State,
    source,
    batch_size: int,
    *,
    seed: int,
    epoch: int,
    description: str,
    mesh: Mesh | None = None,
):
    """One epoch of ``train_step`` over ``source`` in the ``(seed, epoch)`` order,
    with a progress bar showing the running loss (on a terminal: `progress_bar`).

    With a ``mesh`` (`make_train_step`'s), every batch is split over its
    devices; with several processes, each reads only its rows of every full
    batch, and the last, smaller batch of the epoch whole, so that any number
    of processes trains on the same batches.

    Returns:
      ``(state, mean_loss, batches)``; ``batches.get_state()`` is the data
      iterator's position.

    Raises:
      TrainingError: on a NaN or infinite loss, naming the epoch and step.
    """
    index, count = (jax.process_index(), jax.process_count()) if mesh is not None else (0, 1)
    batches = epoch_batches(
        source, batch_size, seed=seed, epoch=epoch, process_index=index, process_count=count
    )
    total, full = num_batches(source, batch_size), len(source) // batch_size
    bar = progress_bar(batches, total=total, desc=description)
    losses = []
    for step, batch in enumerate(bar, 1):
        if mesh is not None:
            batch = distributed.global_batch(batch, mesh, whole=count > 1 and step > full)
        state, metrics = train_step(state, batch)
        loss = float(metrics["loss"])
        if not np.isfinite(loss):
            raise TrainingError(
                f"loss is {loss} at epoch {epoch}, step {step}: the data were checked finite "
                "when loaded, so the model diverged (try a lower training.learning_rate)"
            )
        losses.append(loss)
        bar.set_postfix(loss=f"{np.mean(losses):.4f}")
    return state, float(np.mean(losses)), batches


def count_parameters(model: nnx.Module) -> int:
    """Trainable parameters: conv kernels, biases, BatchNorm scales and biases."""
    return sum(leaf.size for leaf in jax.tree.leaves(nnx.state(model, nnx.Param)))
