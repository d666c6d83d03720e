"""ConvLSTM, PredRNN and MIM against the reference implementation's sizes and behaviour."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from stconv.models import ModelSpec
from stconv.models.recurrent import MIM, ConvLSTM, PredRNN
from stconv.models.recurrent.common import LAYER_NORM_EPSILON, dropout2d, layer_norm
from stconv.training.step import count_parameters, create_optimizer, make_train_step

MODELS = {"convlstm": ConvLSTM, "predrnn": PredRNN, "mim": MIM}

# Trainable parameters and output shapes (batch, time, lat, lon, channels) of
# the reference PyTorch models (MLRG-CEFET-RJ/stconvs2s, model/baselines/),
# recorded by running them with batch 2:
# model, input_length, horizon, (lat, lon), channels, num_layers, hidden_dim,
# kernel_size, parameters, output shape.
# The paper's CFSR (32x32, 3 layers, 32 filters) and CHIRPS (50x50, 2 layers,
# 8 filters) configurations come first. The reference's PredRNN and MIM fail
# when horizon < input_length and on non-square grids, so those are not here.
REFERENCE = [
    ("convlstm", 5, 5, (32, 32), 1, 3, 32, 5, 517697, (2, 5, 32, 32, 1)),
    ("convlstm", 5, 15, (32, 32), 1, 3, 32, 5, 517697, (2, 15, 32, 32, 1)),
    ("convlstm", 5, 5, (50, 50), 1, 2, 8, 5, 20145, (2, 5, 50, 50, 1)),
    ("convlstm", 5, 15, (50, 50), 1, 2, 8, 5, 20145, (2, 15, 50, 50, 1)),
    ("predrnn", 5, 5, (32, 32), 1, 3, 32, 3, 3336704, (2, 5, 32, 32, 1)),
    ("predrnn", 5, 15, (32, 32), 1, 3, 32, 3, 3336704, (2, 15, 32, 32, 1)),
    ("predrnn", 5, 5, (32, 32), 1, 3, 32, 5, 4012032, (2, 5, 32, 32, 1)),
    ("predrnn", 5, 15, (32, 32), 1, 3, 32, 5, 4012032, (2, 15, 32, 32, 1)),
    ("predrnn", 5, 5, (50, 50), 1, 2, 8, 3, 1215424, (2, 5, 50, 50, 1)),
    ("predrnn", 5, 15, (50, 50), 1, 2, 8, 3, 1215424, (2, 15, 50, 50, 1)),
    ("predrnn", 5, 5, (50, 50), 1, 2, 8, 5, 1241920, (2, 5, 50, 50, 1)),
    ("predrnn", 5, 15, (50, 50), 1, 2, 8, 5, 1241920, (2, 15, 50, 50, 1)),
    ("mim", 5, 5, (32, 32), 1, 3, 32, 5, 6309219, (2, 5, 32, 32, 1)),
    ("mim", 5, 15, (32, 32), 1, 3, 32, 5, 6309219, (2, 15, 32, 32, 1)),
    ("mim", 5, 5, (50, 50), 1, 2, 8, 5, 1736842, (2, 5, 50, 50, 1)),
    ("mim", 5, 15, (50, 50), 1, 2, 8, 5, 1736842, (2, 15, 50, 50, 1)),
    ("convlstm", 5, 3, (8, 8), 1, 2, 4, 3, 1929, (2, 3, 8, 8, 1)),
    ("convlstm", 5, 5, (8, 8), 1, 2, 4, 3, 1929, (2, 5, 8, 8, 1)),
    ("convlstm", 5, 15, (8, 8), 1, 2, 4, 3, 1929, (2, 15, 8, 8, 1)),
    ("convlstm", 5, 5, (8, 8), 2, 2, 4, 3, 2082, (2, 5, 8, 8, 2)),
    ("convlstm", 5, 7, (6, 6), 3, 1, 4, 3, 1051, (2, 7, 6, 6, 3)),
    ("convlstm", 4, 9, (8, 8), 1, 3, 4, 5, 8489, (2, 9, 8, 8, 1)),
    ("convlstm", 5, 5, (8, 10), 1, 2, 4, 3, 1929, (2, 5, 8, 10, 1)),
    ("predrnn", 5, 5, (8, 8), 1, 2, 4, 3, 19408, (2, 5, 8, 8, 1)),
    ("predrnn", 5, 15, (8, 8), 1, 2, 4, 3, 19408, (2, 15, 8, 8, 1)),
    ("predrnn", 5, 5, (8, 8), 2, 2, 4, 3, 19664, (2, 5, 8, 8, 2)),
    ("predrnn", 5, 7, (6, 6), 3, 1, 4, 3, 6480, (2, 7, 6, 6, 3)),
    ("predrnn", 4, 9, (8, 8), 1, 3, 4, 5, 40432, (2, 9, 8, 8, 1)),
    ("mim", 5, 5, (8, 8), 1, 2, 4, 3, 26710, (2, 5, 8, 8, 1)),
    ("mim", 5, 15, (8, 8), 1, 2, 4, 3, 26710, (2, 15, 8, 8, 1)),
    ("mim", 5, 5, (8, 8), 2, 2, 4, 3, 26858, (2, 5, 8, 8, 2)),
    ("mim", 5, 7, (6, 6), 3, 1, 4, 3, 5061, (2, 7, 6, 6, 3)),
    ("mim", 4, 9, (8, 8), 1, 3, 4, 5, 62095, (2, 9, 8, 8, 1)),
]


def build(name, input_length, horizon, grid, channels, num_layers, d, k, **kwargs):
    # RBG keys: XLA compiles their random draws far faster than threefry's.
    rngs = nnx.Rngs(jax.random.key(0, impl="rbg"))
    spec = ModelSpec((input_length, *grid, channels), horizon, num_layers, d, k, **kwargs)
    return MODELS[name](spec, rngs=rngs)


def abstract_output_shape(model, input_shape):
    x = jax.ShapeDtypeStruct(input_shape, jnp.float32)
    return nnx.eval_shape(lambda model, x: model(x), model, x).shape


# One jitted forward for every test: equal configurations share its compilation.
apply = nnx.jit(lambda model, x: model(x))


@pytest.mark.parametrize("row", REFERENCE, ids=lambda row: "-".join(map(str, row[:8])))
def test_matches_reference_parameters_and_output_shape(row):
    *config, parameters, output_shape = row
    model = nnx.eval_shape(lambda: build(*config))
    assert count_parameters(model) == parameters
    _, input_length, _, grid, channels, *_ = config
    model.eval()
    assert abstract_output_shape(model, (2, input_length, *grid, channels)) == output_shape


@pytest.mark.parametrize("name", MODELS)
def test_output_shapes_beyond_the_reference(name):
    """Horizons shorter than the input, which the reference's PredRNN and MIM
    cannot run, and non-square grids, on which its LayerNorms fail."""
    model = nnx.eval_shape(lambda: build(name, 5, 3, (8, 8), 1, 2, 4, 3))
    assert abstract_output_shape(model, (2, 5, 8, 8, 1)) == (2, 3, 8, 8, 1)
    model = nnx.eval_shape(lambda: build(name, 5, 15, (6, 9), 2, 2, 4, 3))
    assert abstract_output_shape(model, (3, 5, 6, 9, 2)) == (3, 15, 6, 9, 2)
    if name == "mim":
        assert model.first.x_cc.norm.scale.shape == (6, 9, 16)
        assert model.blocks[0].mims.ct_weight.shape == (9, 9, 8)


@pytest.mark.parametrize("name", MODELS)
def test_steps_within_the_input_see_only_the_past(name):
    model = build(name, 5, 7, (6, 6), 1, 2, 4, 3, dropout=0.3)
    model.eval()
    x = np.random.default_rng(0).normal(size=(2, 5, 6, 6, 1)).astype(np.float32)
    y = np.asarray(apply(model, x))
    assert y.shape == (2, 7, 6, 6, 1) and np.all(np.isfinite(y))
    for t in range(4):
        changed = x.copy()
        changed[:, t + 1 :] = 10.0
        changed = np.asarray(apply(model, changed))
        np.testing.assert_allclose(changed[:, : t + 1], y[:, : t + 1], rtol=1e-6, atol=1e-6)
        assert not np.allclose(changed[:, t + 1], y[:, t + 1])


@pytest.mark.parametrize("name", MODELS)
def test_dropout_is_on_in_train_mode_only(name):
    # The same configuration as above, so that the eval-mode forward is compiled once.
    model = build(name, 5, 7, (6, 6), 1, 2, 4, 3, dropout=0.3)
    x = np.random.default_rng(0).normal(size=(2, 5, 6, 6, 1)).astype(np.float32)
    first, second = apply(model, x), apply(model, x)
    assert not np.allclose(first, second)
    model.eval()
    evaluated = apply(model, x)
    np.testing.assert_array_equal(evaluated, apply(model, x))
    assert not np.allclose(first, evaluated)


def test_dropout2d_drops_whole_channels():
    x = jnp.ones((4, 5, 6, 32))
    y = np.asarray(dropout2d(0.5)(x, rngs=nnx.Rngs(dropout=0)))
    assert np.all((y == 0) | (y == 2))
    np.testing.assert_array_equal(y, np.broadcast_to(y[:, :1, :1], y.shape))
    assert 0 < np.sum(y[:, 0, 0] == 0) < y[:, 0, 0].size
    assert not np.allclose(y, dropout2d(0.5)(x, rngs=nnx.Rngs(dropout=1)))


@pytest.mark.parametrize("name", MODELS)
def test_compiled_size_does_not_grow_with_horizon(name):
    def equations(horizon):
        model = nnx.eval_shape(lambda: build(name, 5, horizon, (6, 6), 1, 2, 4, 3, dropout=0.3))
        graphdef, state = nnx.split(model)
        x = jax.ShapeDtypeStruct((2, 5, 6, 6, 1), jnp.float32)
        jaxpr = jax.make_jaxpr(lambda state, x: nnx.merge(graphdef, state)(x))(state, x)
        return [eqn.primitive.name for eqn in jaxpr.jaxpr.eqns]

    short, long = equations(5), equations(15)
    assert "scan" in short
    assert len(short) == len(long)


@pytest.mark.parametrize("name, num_layers", [("convlstm", 1), ("predrnn", 1), ("mim", 2)])
def test_train_step_lowers_the_loss(name, num_layers):
    model = build(name, 5, 7, (6, 6), 1, num_layers, 4, 3)
    x = np.random.default_rng(0).normal(size=(4, 5, 6, 6, 1)).astype(np.float32)
    y = 0.5 * np.concatenate([x, x[:, :2]], axis=1)
    train_step, state = make_train_step(model, create_optimizer(model))
    losses = []
    for _ in range(8):
        state, metrics = train_step(state, {"inputs": x, "targets": y})
        losses.append(float(metrics["loss"]))
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]


GOOD = dict(input_shape=(5, 8, 8, 1), horizon=5, num_layers=2, hidden_dim=4, kernel_size=3)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize(
    "changes, message",
    [
        ({"kernel_size": 0}, "kernel_size=0"),
        ({"kernel_size": 4}, "kernel_size=4 is invalid: must be odd"),
        ({"horizon": 0}, "horizon=0"),
        ({"num_layers": 0}, "num_layers=0"),
        ({"hidden_dim": 2.5}, "hidden_dim=2.5"),
        ({"dropout": 1.0}, "dropout=1.0"),
        ({"input_shape": (5, 8, 8)}, "input_shape=(5, 8, 8)"),
        ({"input_shape": (0, 8, 8, 1)}, "input_shape input_length=0"),
    ],
)
def test_rejects_bad_hyperparameters(name, changes, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        MODELS[name](ModelSpec(**{**GOOD, **changes}), rngs=nnx.Rngs(0))


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize(
    "shape, message",
    [
        ((2, 5, 8, 8), "must have rank 5"),
        ((2, 4, 8, 8, 1), "input_length=5"),
        ((2, 5, 8, 8, 2), "channels=1"),
        ((2, 5, 8, 9, 1), r"grid \(lat, lon\) = \(8, 8\)"),
    ],
)
def test_rejects_bad_input_shapes(name, shape, message):
    model = nnx.eval_shape(lambda: MODELS[name](ModelSpec(**GOOD), rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match=message):
        model(jnp.zeros(shape))


def plain_layer_norm(x, scale, bias):
    """PyTorch's LayerNorm([C, H, W]) on channels-last input, differentiated by JAX."""
    axes = (1, 2, 3)
    mean = jnp.mean(x, axis=axes, keepdims=True)
    variance = jnp.var(x, axis=axes, keepdims=True)
    return (x - mean) / jnp.sqrt(variance + LAYER_NORM_EPSILON) * scale + bias


def test_layer_norm_values_and_gradients_equal_the_plain_form():
    """`layer_norm`'s hand-written gradients of x, the scale and the bias are JAX's own."""
    keys = jax.random.split(jax.random.key(0), 4)
    x = 3.0 + 2.0 * jax.random.normal(keys[0], (3, 5, 6, 4))
    scale = 1.0 + 0.3 * jax.random.normal(keys[1], (5, 6, 4))
    bias = jax.random.normal(keys[2], (5, 6, 4))
    weights = jax.random.normal(keys[3], x.shape)  # a loss that weighs every output

    def loss(function):
        return lambda *args: jnp.sum(jnp.tanh(function(*args)) * weights)

    np.testing.assert_allclose(
        jax.jit(layer_norm)(x, scale, bias),
        jax.jit(plain_layer_norm)(x, scale, bias),
        rtol=1e-5,
        atol=1e-5,
    )
    ours = jax.jit(jax.grad(loss(layer_norm), argnums=(0, 1, 2)))(x, scale, bias)
    plain = jax.jit(jax.grad(loss(plain_layer_norm), argnums=(0, 1, 2)))(x, scale, bias)
    for name, a, b in zip(("x", "scale", "bias"), ours, plain, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5, err_msg=name)


def test_layer_norm_gradient_keeps_the_input_dtype():
    """In mixed precision the input is bfloat16 and the parameters float32."""
    x = jax.random.normal(jax.random.key(0), (2, 4, 4, 3), jnp.bfloat16)
    scale, bias = jnp.ones((4, 4, 3)), jnp.zeros((4, 4, 3))
    gradients = jax.jit(jax.grad(lambda *a: jnp.sum(layer_norm(*a) ** 2), argnums=(0, 1, 2)))
    grads = gradients(x, scale, bias)
    assert [g.dtype for g in grads] == [jnp.bfloat16, jnp.float32, jnp.float32]
