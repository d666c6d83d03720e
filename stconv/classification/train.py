"""The 2D baseline experiment: a CNN and an MLP classify handwritten digits.

Both models train through the forecasting models' infrastructure: the jitted
train step, an `nnx.Optimizer`, the grain pipeline, orbax checkpoints, a
metrics log and a progress bar. The workdir gets, per model, ``metrics.jsonl``,
``checkpoints/latest``, ``confusion_matrix.png``, and ``results.json`` for all.
"""

import json
import os
import time

import jax
import numpy as np
import optax
from flax import nnx

from stconv.checks import check_above_zero, check_positive, check_seed
from stconv.classification.data import image_file, image_splits
from stconv.classification.models import CLASSIFIERS
from stconv.config.sections import TrainingConfig
from stconv.data.pipeline import epoch_batches
from stconv.evaluation import plots
from stconv.runs.directory import RunDirectory
from stconv.runs.provenance import PhaseClock, Session, describe_inputs, new_record
from stconv.training.loop import fit
from stconv.training.step import count_parameters, create_optimizer, make_apply, make_train_step


def cross_entropy(model: nnx.Module, batch: dict) -> jax.Array:
    logits = model(batch["images"])
    return optax.softmax_cross_entropy_with_integer_labels(logits, batch["labels"]).mean()


def predict_labels(apply, state, split, batch_size: int) -> np.ndarray:
    batches = epoch_batches(split, batch_size, shuffle=False)
    return np.concatenate([np.asarray(apply(state, b["images"])).argmax(-1) for b in batches])


def train_classifier(
    name: str,
    splits: dict,
    workdir: str,
    training: TrainingConfig,
    clock: PhaseClock | None = None,
) -> dict:
    """Trains one classifier with Adam for ``training.epochs`` epochs (no
    validation: no early stopping) from ``training.seed``; returns its test
    accuracy, parameters and training time. ``clock`` gets the seconds of its
    compile, training and evaluation."""
    clock = clock or PhaseClock()
    image_shape = splits["train"].images.shape[1:]
    model = CLASSIFIERS[name](image_shape, rngs=nnx.Rngs(training.seed))
    optimizer = create_optimizer(model, optax.adam(training.learning_rate))
    train_step, state = make_train_step(model, optimizer, cross_entropy)
    logits = make_apply(model, lambda model, images: model(images))
    run = RunDirectory(workdir)
    start = time.perf_counter()
    with open(run.file(run.METRICS), "w") as log, clock.phase(f"{name} training"):
        state, _ = fit(
            clock.first_call(train_step, f"{name} compile"), state, splits["train"],
            run.checkpoints(), lambda row, _: log.write(json.dumps(row) + "\n"), training,
            saved={"model": name}, description=f"{name} epoch",
        )  # fmt: skip
    seconds = time.perf_counter() - start
    with clock.phase(f"{name} evaluation"):
        predicted = predict_labels(logits, state[0], splits["test"], 256)
    labels = splits["test"].labels
    plots.confusion_matrix(labels, predicted, run.file(run.CONFUSION_MATRIX), title=name.upper())
    return {
        "accuracy": float(np.mean(predicted == labels)),
        "parameters": count_parameters(model),
        "train_seconds": seconds,
        "epochs": training.epochs,
    }


def classify(
    dataset: str,
    workdir: str,
    *,
    models: tuple[str, ...] = ("cnn", "mlp"),
    epochs: int = 15,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    seed: int = 0,
) -> dict:
    """Trains each model on the stratified split of ``dataset`` and prints the comparison."""
    for name in models:
        if name not in CLASSIFIERS:
            raise ValueError(f"models={name} is unknown: choose from {sorted(CLASSIFIERS)}")
    check_positive("epochs", epochs)
    check_positive("batch_size", batch_size)
    check_above_zero("learning_rate", learning_rate)
    check_seed("seed", seed)
    # The trainer's section: classify's options, the others unused (Adam, no validation).
    training = TrainingConfig(
        epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, seed=seed
    )
    run = RunDirectory(workdir)
    if run.has(run.CONFIG) or run.has(run.SUMMARY) or run.member_runs():
        raise ValueError(
            f"workdir {workdir!r} holds a forecasting run (finished or not): classify into a "
            "new workdir"
        )
    if run.has(run.RESULTS):
        raise ValueError(f"workdir {workdir!r} already holds a run: choose a new workdir")
    run.check_writable()
    with Session("classify") as session:
        with session.clock.phase("data_loading"):
            splits = image_splits(dataset, seed=seed)
        settings = dict(
            dataset=dataset, models=list(models), epochs=epochs, batch_size=batch_size,
            learning_rate=learning_rate, seed=seed,
        )  # fmt: skip
        origin = new_record(settings, [seed], describe_inputs([image_file(dataset)]), None)
        print(
            f"{dataset}: {len(splits['train'])} train and {len(splits['test'])} test images "
            f"of {splits['train'].images.shape[1:]}"
        )
        run.mark()
        session.attach(run, origin)
        results = {}
        for name in models:
            model_dir = run.model(name)
            os.makedirs(model_dir, exist_ok=True)
            results[name] = train_classifier(name, splits, model_dir, training, session.clock)
            r = results[name]
            print(
                f"{name}: test accuracy {r['accuracy']:.2%}, {r['parameters']:,} parameters, "
                f"trained in {r['train_seconds']:.0f} s"
            )
        run.write_json(run.RESULTS, {"dataset": dataset, **results})
    return results
