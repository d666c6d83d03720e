"""STConvS2S-R and -C against the reference implementation's shapes and sizes."""

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from stconv import models
from stconv.models.blocks import SpatialBlock, TemporalBlock
from stconv.training.step import count_parameters, create_optimizer, make_train_step

# Trainable parameters and output shapes (batch, time, lat, lon, channels) of
# the reference PyTorch models (MLRG-CEFET-RJ/stconvs2s), recorded by running
# them with batch 2:
# variant, input_length, horizon, (lat, lon), channels, num_layers, hidden_dim,
# kernel_size, parameters, output shape.
REFERENCE = [
    ("r", 5, 5, (32, 32), 1, 3, 32, 5, 450209, (2, 5, 32, 32, 1)),
    ("c", 5, 5, (32, 32), 1, 3, 32, 5, 425057, (2, 5, 32, 32, 1)),
    ("r", 5, 15, (32, 32), 1, 3, 32, 5, 582625, (2, 15, 32, 32, 1)),
    ("c", 5, 15, (32, 32), 1, 3, 32, 5, 557473, (2, 15, 32, 32, 1)),
    ("r", 5, 5, (50, 50), 1, 2, 8, 5, 8553, (2, 5, 50, 50, 1)),
    ("c", 5, 5, (50, 50), 1, 2, 8, 5, 8217, (2, 5, 50, 50, 1)),
    ("r", 5, 15, (50, 50), 1, 2, 8, 5, 16889, (2, 15, 50, 50, 1)),
    ("c", 5, 15, (50, 50), 1, 2, 8, 5, 16553, (2, 15, 50, 50, 1)),
    ("r", 5, 5, (8, 8), 1, 2, 4, 3, 957, (2, 5, 8, 8, 1)),
    ("c", 5, 5, (8, 8), 1, 2, 4, 3, 853, (2, 5, 8, 8, 1)),
    ("r", 5, 15, (8, 8), 1, 2, 4, 3, 1781, (2, 15, 8, 8, 1)),
    ("c", 5, 15, (8, 8), 1, 2, 4, 3, 1677, (2, 15, 8, 8, 1)),
    ("r", 5, 12, (8, 10), 2, 2, 4, 3, 1778, (2, 12, 8, 10, 2)),
    ("c", 5, 12, (8, 10), 2, 2, 4, 3, 1658, (2, 12, 8, 10, 2)),
    ("r", 5, 25, (8, 8), 1, 2, 4, 3, 2293, (2, 25, 8, 8, 1)),
    ("c", 5, 25, (8, 8), 1, 2, 4, 3, 2189, (2, 25, 8, 8, 1)),
    ("r", 5, 30, (6, 6), 3, 1, 4, 3, 2715, (2, 30, 6, 6, 3)),
    ("c", 5, 30, (6, 6), 3, 1, 4, 3, 2683, (2, 30, 6, 6, 3)),
    ("r", 5, 3, (8, 8), 1, 2, 4, 3, 957, (2, 5, 8, 8, 1)),
    ("c", 5, 3, (8, 8), 1, 2, 4, 3, 853, (2, 5, 8, 8, 1)),
    ("r", 4, 9, (7, 9), 2, 3, 4, 3, 4114, (2, 9, 7, 9, 2)),
    ("c", 4, 9, (7, 9), 2, 3, 4, 3, 3642, (2, 9, 7, 9, 2)),
    ("r", 10, 10, (8, 8), 1, 2, 4, 5, 2453, (2, 10, 8, 8, 1)),
    ("c", 10, 10, (8, 8), 1, 2, 4, 5, 2349, (2, 10, 8, 8, 1)),
    ("r", 6, 20, (8, 8), 1, 2, 8, 3, 7401, (2, 20, 8, 8, 1)),
    ("c", 6, 20, (8, 8), 1, 2, 8, 3, 7065, (2, 20, 8, 8, 1)),
    ("r", 5, 5, (8, 8), 1, 2, 4, 2, 521, (2, 4, 11, 11, 1)),
    ("c", 5, 5, (8, 8), 1, 2, 4, 2, 417, (2, 6, 11, 11, 1)),
    ("r", 5, 15, (8, 8), 1, 2, 4, 2, 945, (2, 10, 14, 14, 1)),
    ("c", 5, 15, (8, 8), 1, 2, 4, 2, 841, (2, 16, 14, 14, 1)),
    ("r", 5, 5, (8, 8), 1, 2, 4, 4, 1593, (2, 6, 11, 11, 1)),
    ("c", 5, 5, (8, 8), 1, 2, 4, 4, 1489, (2, 6, 11, 11, 1)),
    ("r", 5, 5, (8, 8), 1, 1, 4, 3, 297, (2, 5, 8, 8, 1)),
    ("c", 5, 5, (8, 8), 1, 1, 4, 3, 281, (2, 5, 8, 8, 1)),
    ("r", 5, 5, (8, 8), 1, 4, 2, 3, 3015, (2, 5, 8, 8, 1)),
    ("c", 5, 5, (8, 8), 1, 4, 2, 3, 2563, (2, 5, 8, 8, 1)),
    ("r", 5, 40, (8, 8), 1, 2, 4, 3, 5789, (2, 40, 8, 8, 1)),
    ("c", 5, 40, (8, 8), 1, 2, 4, 3, 5685, (2, 40, 8, 8, 1)),
]


def reference_parameter_count(variant, input_length, horizon, channels, num_layers, d, k):
    """Trainable parameters by the reference's definition: conv weights (no
    bias but the final conv's) and a BatchNorm (scale and bias) per conv."""
    schedule = [d * 2 ** (i + 1) for i in range(num_layers)]
    schedule[-1] = d
    total, c_in = 0, channels
    for c_out in schedule:  # temporal block; RNet adds a (2,1,1) conv and its BatchNorm
        total += k * c_in * c_out + 2 * c_out
        if variant == "r":
            total += 2 * c_in * c_out + 2 * c_out
        c_in = c_out
    c_in = d
    for c_out in schedule:  # spatial block
        total += k * k * c_in * c_out + 2 * c_out
        c_in = c_out
    if horizon > input_length:  # generator: transposed convs (4,1,1), then (1,k,k) convs
        upsampling = math.ceil((horizon - input_length) / (2 * input_length))
        schedule = [d * 2 ** (i + 1) for i in range(upsampling)]
        schedule[-1] = d
        c_in = d
        for c_out in schedule:
            total += 4 * c_in * c_out + 2 * c_out
            c_in = c_out
        for c_out in [2 * d] + [d] * (horizon // input_length - 1):
            total += k * k * c_in * c_out + 2 * c_out
            c_in = c_out
    return total + k**3 * d * channels + channels


def build(variant, input_length, horizon, grid, channels, num_layers, d, k, **kwargs):
    return models.create(
        f"stconvs2s-{variant}",
        input_shape=(input_length, *grid, channels),
        horizon=horizon,
        num_layers=num_layers,
        hidden_dim=d,
        kernel_size=k,
        **kwargs,
    )


@pytest.mark.parametrize("row", REFERENCE, ids=lambda row: "-".join(map(str, row[:8])))
def test_matches_reference_parameters_and_output_shape(row):
    *config, parameters, output_shape = row
    model = build(*config)
    assert count_parameters(model) == parameters
    variant, input_length, horizon, grid, channels, num_layers, d, k = config
    assert parameters == reference_parameter_count(
        variant, input_length, horizon, channels, num_layers, d, k
    )
    model.eval()
    x = jax.ShapeDtypeStruct((2, input_length, *grid, channels), jnp.float32)
    assert jax.eval_shape(model, x).shape == output_shape


@pytest.mark.parametrize("variant", ["r", "c"])
@pytest.mark.parametrize("horizon", [5, 15])
@pytest.mark.parametrize("grid, channels", [((8, 8), 1), ((9, 12), 2), ((16, 10), 3)])
def test_forward_shapes(variant, horizon, grid, channels):
    model = build(variant, 5, horizon, grid, channels, 2, 4, 3)
    x = jax.random.normal(jax.random.key(0), (2, 5, *grid, channels))
    y = nnx.jit(lambda model, x: model(x))(model, x)
    assert y.shape == (2, horizon, *grid, channels)
    assert bool(jnp.all(jnp.isfinite(y)))


def test_causal_block_sees_only_the_past():
    block = TemporalBlock(2, 4, num_layers=3, kernel_size=3, rngs=nnx.Rngs(0))
    spatial = SpatialBlock(4, 4, num_layers=2, kernel_size=3, rngs=nnx.Rngs(1))
    block.eval()
    spatial.eval()
    x = jax.random.normal(jax.random.key(0), (2, 8, 6, 6, 2))
    temporal_only = nnx.jit(lambda block, x: block(x))
    both = nnx.jit(lambda block, spatial, x: spatial(block(x)))
    for t in range(8):
        changed = x.at[:, t + 1 :].set(100.0)
        for encoder in (partial(temporal_only, block), partial(both, block, spatial)):
            before, after = encoder(x), encoder(changed)
            np.testing.assert_allclose(before[:, : t + 1], after[:, : t + 1], rtol=1e-5, atol=1e-5)
            if t < 7:
                assert not np.allclose(before[:, t + 1 :], after[:, t + 1 :])


def test_reversed_block_is_not_causal():
    model = build("r", 5, 5, (6, 6), 1, 2, 4, 3)
    model.eval()
    x = jax.random.normal(jax.random.key(0), (1, 5, 6, 6, 1))
    encode = nnx.jit(lambda model, x: model.spatial(model.temporal(x)))
    encoded = encode(model, x)
    # With k = 3 the first output steps are computed from the first three inputs.
    changed = encode(model, x.at[:, 2].set(50.0))
    assert not np.allclose(encoded[:, 0], changed[:, 0])


def test_jit_grad_and_train_step_lower_the_loss():
    model = build("r", 5, 5, (8, 8), 1, 2, 4, 3)
    x = jax.random.normal(jax.random.key(0), (4, 5, 8, 8, 1))
    y = 0.5 * jnp.flip(x, axis=1)

    @nnx.jit
    def loss_and_grad(model, x, y):
        return nnx.value_and_grad(lambda m: jnp.mean((m(x) - y) ** 2))(model)

    loss, grads = loss_and_grad(model, x, y)
    grad_norms = [float(jnp.linalg.norm(g)) for g in jax.tree.leaves(grads)]
    assert np.isfinite(float(loss)) and len(grad_norms) == len(
        jax.tree.leaves(nnx.state(model, nnx.Param))
    )
    assert all(np.isfinite(grad_norms)) and sum(grad_norms) > 0

    train_step, state = make_train_step(model, create_optimizer(model))
    losses = []
    for _ in range(8):
        state, metrics = train_step(state, {"inputs": x, "targets": y})
        losses.append(float(metrics["loss"]))
    assert losses[-1] < losses[0]


def test_dropout_makes_train_mode_stochastic():
    model = build("c", 5, 5, (6, 6), 1, 2, 4, 3, dropout=0.3)
    x = jax.random.normal(jax.random.key(0), (2, 5, 6, 6, 1))
    apply = nnx.jit(lambda model, x: model(x))
    assert not np.allclose(apply(model, x), apply(model, x))
    model.eval()
    np.testing.assert_allclose(apply(model, x), apply(model, x))


GOOD = dict(input_shape=(5, 8, 8, 1), horizon=5, num_layers=2, hidden_dim=4, kernel_size=3)


@pytest.mark.parametrize(
    "name, changes, message",
    [
        ("stconvs2s-r", {"kernel_size": 0}, "kernel_size=0"),
        ("stconvs2s-c", {"kernel_size": 9}, "kernel_size=9 is invalid: must be <= the grid"),
        ("stconvs2s-r", {"kernel_size": 1}, "between 2 and input_length=5"),
        ("stconvs2s-r", {"kernel_size": 6, "input_shape": (5, 9, 9, 1)}, "between 2 and"),
        ("stconvs2s-r", {"horizon": 0}, "horizon=0"),
        ("stconvs2s-c", {"horizon": 7}, "horizon=7 is invalid with input_length=5"),
        ("stconvs2s-r", {"num_layers": 0}, "num_layers=0"),
        ("stconvs2s-r", {"hidden_dim": -1}, "hidden_dim=-1"),
        ("stconvs2s-c", {"hidden_dim": 2.5}, "hidden_dim=2.5"),
        ("stconvs2s-c", {"dropout": 1.0}, "dropout=1.0"),
        ("stconvs2s-c", {"input_shape": (5, 8, 8)}, "input_shape=(5, 8, 8)"),
        ("stconvs2s-c", {"input_shape": (0, 8, 8, 1)}, "input_length=0"),
        ("stconvs2s-r", {"kernel_size": 2, "num_layers": 5}, "num_layers=5"),
        ("stconvs2s-x", {}, "model name 'stconvs2s-x' is unknown"),
    ],
)
def test_bad_hyperparameters_raise(name, changes, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        models.create(name, **{**GOOD, **changes})


@pytest.mark.parametrize(
    "shape, message",
    [
        ((2, 5, 8, 8), "must have rank 5"),
        ((2, 4, 8, 8, 1), "input_length=5"),
        ((2, 5, 8, 8, 3), "channels=1"),
        ((2, 5, 2, 8, 1), "kernel_size=3"),
    ],
)
def test_bad_input_raises_before_tracing(shape, message):
    model = models.create("stconvs2s-r", **GOOD)
    with pytest.raises(ValueError, match=message):
        jax.jit(model)(jnp.zeros(shape))


def test_registry_lists_both_variants():
    assert {"stconvs2s-r", "stconvs2s-c"} <= set(models.available())
    with pytest.raises(ValueError, match="already registered"):
        models.register("stconvs2s-r", models.STCONVS2S)


@pytest.mark.parametrize("base", ["last", "mean"])
def test_residual_is_level_invariant(base):
    from stconv.models.residual import Residual

    inner = build("r", 5, 5, (6, 6), 1, 2, 4, 3)
    model = Residual(inner, base)
    assert count_parameters(model) == count_parameters(inner)
    model.eval()
    x = jax.random.normal(jax.random.key(0), (2, 5, 6, 6, 1))
    apply = nnx.jit(lambda model, x: model(x))
    # A constant added to every input frame is added to every forecast.
    np.testing.assert_allclose(apply(model, x + 3.0), apply(model, x) + 3.0, rtol=1e-5, atol=1e-5)
    inner.eval()
    reference = x[:, -1:] if base == "last" else x.mean(axis=1, keepdims=True)
    expected = reference + apply(inner, x - reference)
    np.testing.assert_allclose(apply(model, x), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="residual_base='median' is invalid"):
        Residual(inner, "median")


class Zero(nnx.Module):
    """A network whose forecast is 0 for every lead: the residual's base shows."""

    def __init__(self, horizon: int, outputs: int):
        self.horizon, self.outputs = horizon, outputs

    def __call__(self, x):
        return jnp.zeros((len(x), self.horizon, *x.shape[2:4], self.outputs))


def test_the_anomaly_bases_are_the_seasonal_simple_forecasts():
    """On anomaly inputs, a zero network forecasts the climatology (0), the last
    anomaly persisted, or that anomaly damped by each lead's factor."""
    from stconv.models.residual import Residual

    x = jax.random.normal(jax.random.key(1), (2, 3, 4, 5, 2))  # a target and an input channel
    last = np.asarray(x[:, -1:, ..., :1])
    assert not np.asarray(Residual(Zero(2, 1), "climatology", 1)(x)).any()
    np.testing.assert_allclose(Residual(Zero(2, 1), "anomaly", 1)(x), np.repeat(last, 2, axis=1))
    damped = Residual(Zero(2, 1), "damped", 1, horizon=2)
    damped.set_damping(np.array([[0.5], [0.25]]))
    expected = np.concatenate([0.5 * last, 0.25 * last], axis=1)
    np.testing.assert_allclose(damped(x), expected, rtol=1e-6)
    assert not nnx.state(damped, nnx.Param)  # the factors are not trained
