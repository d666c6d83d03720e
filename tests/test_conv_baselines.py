"""The paper's convolutional baselines and ablations against the reference, and
every registered forecasting model through one train step."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from stconv import models
from stconv.models.conv_baselines import centre_crop, factorized_channels
from stconv.training.step import count_parameters, create_optimizer, make_train_step

# Trainable parameters of the reference PyTorch models (MLRG-CEFET-RJ/stconvs2s,
# model/baselines and model/ablation), recorded by running them: name,
# input_length (= horizon), (lat, lon), channels, num_layers, hidden_dim,
# kernel_size, parameters. Their outputs all have the input's shape.
REFERENCE = [
    ("conv3d", 5, (32, 32), 1, 3, 32, 5, 264193),
    ("conv3d", 5, (50, 50), 1, 2, 8, 5, 10033),
    ("conv3d", 5, (8, 10), 2, 2, 4, 3, 882),
    ("conv3d", 5, (9, 9), 1, 3, 4, 5, 5025),
    ("conv3d", 4, (8, 8), 1, 2, 6, 3, 1321),
    ("conv2plus1d", 5, (32, 32), 1, 3, 32, 5, 264012),
    ("conv2plus1d", 5, (50, 50), 1, 2, 8, 5, 10024),
    ("conv2plus1d", 5, (8, 10), 2, 2, 4, 3, 908),
    ("conv2plus1d", 5, (9, 9), 1, 3, 4, 5, 4946),
    ("conv2plus1d", 4, (8, 8), 1, 2, 6, 3, 1323),
    ("enc-dec3d", 5, (32, 32), 1, 3, 32, 5, 1329601),
    ("enc-dec3d", 5, (50, 50), 1, 2, 8, 5, 18209),
    ("enc-dec3d", 5, (8, 10), 2, 2, 4, 3, 1264),
    ("enc-dec3d", 5, (9, 9), 1, 3, 4, 5, 21497),
    ("enc-dec3d", 4, (8, 8), 1, 2, 6, 3, 2329),
    ("ablation-stconvs2s-nocausalconstraint", 5, (32, 32), 1, 3, 32, 5, 425057),
    ("ablation-stconvs2s-nocausalconstraint", 5, (50, 50), 1, 2, 8, 5, 8217),
    ("ablation-stconvs2s-nocausalconstraint", 5, (8, 10), 2, 2, 4, 3, 986),
    ("ablation-stconvs2s-nocausalconstraint", 5, (9, 9), 1, 3, 4, 5, 7213),
    ("ablation-stconvs2s-nocausalconstraint", 4, (8, 8), 1, 2, 6, 3, 1783),
    ("ablation-stconvs2s-notemporal", 5, (32, 32), 1, 3, 32, 5, 313249),
    ("ablation-stconvs2s-notemporal", 5, (50, 50), 1, 2, 8, 5, 4649),
    ("ablation-stconvs2s-notemporal", 5, (8, 10), 2, 2, 4, 3, 674),
    ("ablation-stconvs2s-notemporal", 5, (9, 9), 1, 3, 4, 5, 5557),
    ("ablation-stconvs2s-notemporal", 4, (8, 8), 1, 2, 6, 3, 955),
    ("ablation-stconvs2s-r-nochannelincrease", 5, (32, 32), 1, 3, 32, 5, 95937),
    ("ablation-stconvs2s-r-nochannelincrease", 5, (50, 50), 1, 2, 8, 5, 4801),
    ("ablation-stconvs2s-r-nochannelincrease", 5, (8, 10), 2, 2, 4, 3, 674),
    ("ablation-stconvs2s-r-nochannelincrease", 5, (9, 9), 1, 3, 4, 5, 2025),
    ("ablation-stconvs2s-r-nochannelincrease", 4, (8, 8), 1, 2, 6, 3, 1093),
    ("ablation-stconvs2s-c-nochannelincrease", 5, (32, 32), 1, 3, 32, 5, 91585),
    ("ablation-stconvs2s-c-nochannelincrease", 5, (50, 50), 1, 2, 8, 5, 4625),
    ("ablation-stconvs2s-c-nochannelincrease", 5, (8, 10), 2, 2, 4, 3, 610),
    ("ablation-stconvs2s-c-nochannelincrease", 5, (9, 9), 1, 3, 4, 5, 1929),
    ("ablation-stconvs2s-c-nochannelincrease", 4, (8, 8), 1, 2, 6, 3, 985),
    ("ablation-stconvs2s-r-inverted", 5, (32, 32), 1, 3, 32, 5, 414497),
    ("ablation-stconvs2s-r-inverted", 5, (50, 50), 1, 2, 8, 5, 6537),
    ("ablation-stconvs2s-r-inverted", 5, (8, 10), 2, 2, 4, 3, 1042),
    ("ablation-stconvs2s-r-inverted", 5, (9, 9), 1, 3, 4, 5, 7237),
    ("ablation-stconvs2s-r-inverted", 4, (8, 8), 1, 2, 6, 3, 1747),
    ("ablation-stconvs2s-c-inverted", 5, (32, 32), 1, 3, 32, 5, 385377),
    ("ablation-stconvs2s-c-inverted", 5, (50, 50), 1, 2, 8, 5, 5977),
    ("ablation-stconvs2s-c-inverted", 5, (8, 10), 2, 2, 4, 3, 890),
    ("ablation-stconvs2s-c-inverted", 5, (9, 9), 1, 3, 4, 5, 6733),
    ("ablation-stconvs2s-c-inverted", 4, (8, 8), 1, 2, 6, 3, 1423),
    ("ablation-stconvs2s-r-notfactorized", 5, (32, 32), 1, 3, 32, 5, 268545),
    ("ablation-stconvs2s-r-notfactorized", 5, (50, 50), 1, 2, 8, 5, 10209),
    ("ablation-stconvs2s-r-notfactorized", 5, (8, 10), 2, 2, 4, 3, 946),
    ("ablation-stconvs2s-r-notfactorized", 5, (9, 9), 1, 3, 4, 5, 5121),
    ("ablation-stconvs2s-r-notfactorized", 4, (8, 8), 1, 2, 6, 3, 1429),
    ("ablation-stconvs2s-c-notfactorized", 5, (32, 32), 1, 3, 32, 5, 264193),
    ("ablation-stconvs2s-c-notfactorized", 5, (50, 50), 1, 2, 8, 5, 10033),
    ("ablation-stconvs2s-c-notfactorized", 5, (8, 10), 2, 2, 4, 3, 882),
    ("ablation-stconvs2s-c-notfactorized", 5, (9, 9), 1, 3, 4, 5, 5025),
    ("ablation-stconvs2s-c-notfactorized", 4, (8, 8), 1, 2, 6, 3, 1321),
]


def output_shape(name, input_length, grid, channels, *args, **kwargs):
    """The model's output shape for a batch of 2, traced without computing."""
    x = jnp.zeros((2, input_length, *grid, channels))
    return jax.eval_shape(
        lambda: create(name, input_length, grid, channels, *args, **kwargs)(x)
    ).shape


def create(name, input_length, grid, channels, num_layers, d, k, horizon=None, **kwargs):
    return models.create(
        name,
        input_shape=(input_length, *grid, channels),
        horizon=horizon or input_length,
        num_layers=num_layers,
        hidden_dim=d,
        kernel_size=k,
        **kwargs,
    )


@pytest.mark.parametrize("row", REFERENCE, ids=lambda row: "-".join(map(str, row[:7])))
def test_matches_reference_parameters_and_output_shape(row):
    name, input_length, grid, channels, num_layers, d, k, parameters = row
    config = (name, input_length, grid, channels, num_layers, d, k)
    assert count_parameters(nnx.eval_shape(lambda: create(*config))) == parameters
    assert output_shape(*config) == (2, input_length, *grid, channels)


def test_reference_table_covers_every_convolutional_name():
    recurrent = {"convlstm", "predrnn", "mim"}
    convolutional = set(models.available()) - recurrent - {"stconvs2s-r", "stconvs2s-c"}
    assert {row[0] for row in REFERENCE} == convolutional
    assert len(convolutional) == 11


def test_conv3d_is_the_causal_not_factorized_ablation_without_causality():
    # Same layers and parameters; only the time padding differs, so with the
    # same weights the causal ablation's first steps ignore later inputs and
    # conv3d's do not.
    conv3d, causal = (
        create(name, 5, (6, 6), 1, 2, 4, 3)
        for name in ("conv3d", "ablation-stconvs2s-c-notfactorized")
    )
    shapes = [jax.tree.map(jnp.shape, nnx.state(m, nnx.Param)) for m in (conv3d, causal)]
    assert shapes[0] == shapes[1]
    nnx.update(conv3d, nnx.state(causal))
    x = jax.random.normal(jax.random.key(0), (1, 5, 6, 6, 1))
    changed = x.at[:, 3:].set(50.0)
    for model, sees_the_future in ((causal, False), (conv3d, True)):
        model.eval()
        before, after = model.temporal(x)[:, :3], model.temporal(changed)[:, :3]
        assert (not np.allclose(before, after, atol=1e-5)) == sees_the_future


def causal_prefix(model, x, t):
    """Whether the encoder output up to step t ignores inputs after t."""
    encode = lambda x: model.spatial(model.temporal(x))  # noqa: E731
    changed = x.at[:, t + 1 :].set(50.0)
    return np.allclose(encode(x)[:, : t + 1], encode(changed)[:, : t + 1], atol=1e-5)


def test_no_causal_constraint_sees_the_future():
    x = jax.random.normal(jax.random.key(0), (1, 5, 6, 6, 1))
    causal = create("stconvs2s-c", 5, (6, 6), 1, 2, 4, 3)
    symmetric = create("ablation-stconvs2s-nocausalconstraint", 5, (6, 6), 1, 2, 4, 3)
    for model in (causal, symmetric):
        model.eval()
    assert all(causal_prefix(causal, x, t) for t in range(4))
    assert not any(causal_prefix(symmetric, x, t) for t in range(4))


def test_ablation_layers():
    notemporal = create("ablation-stconvs2s-notemporal", 5, (8, 8), 2, 2, 4, 3)
    assert notemporal.temporal is None
    assert notemporal.spatial.layers[0].conv.kernel.shape == (1, 3, 3, 2, 8)

    inverted = create("ablation-stconvs2s-r-inverted", 5, (8, 8), 2, 2, 4, 3)
    assert inverted.spatial.layers[0].conv.kernel.shape == (1, 3, 3, 2, 8)
    assert inverted.temporal.layers[0].long.conv.kernel.shape == (3, 1, 1, 4, 8)

    flat = create("ablation-stconvs2s-c-nochannelincrease", 5, (8, 8), 1, 3, 4, 3)
    assert [layer.conv.kernel.shape[-1] for layer in flat.temporal.layers] == [4, 4, 4]

    full = create("ablation-stconvs2s-r-notfactorized", 5, (8, 8), 1, 2, 4, 3)
    assert full.spatial is None
    assert full.temporal.layers[0].long.conv.kernel.shape == (3, 3, 3, 1, 4)
    assert full.temporal.layers[0].short.conv.kernel.shape == (2, 1, 1, 1, 4)


def test_factorized_channels_by_hand():
    # floor(k^3 * in * out / (k^2 * in + k * out))
    assert factorized_channels(5, 1, 32) == 4000 // 185 == 21
    assert factorized_channels(5, 32, 32) == 128000 // 960 == 133
    assert factorized_channels(3, 1, 4) == 108 // 21 == 5


def test_encoder_decoder_crops_back_to_odd_grids():
    assert output_shape("enc-dec3d", 5, (37, 49), 1, 3, 4, 5) == (2, 5, 37, 49, 1)
    grid = jnp.arange(40 * 56).reshape(1, 1, 40, 56, 1)
    np.testing.assert_array_equal(centre_crop(grid, (37, 49)), grid[:, :, 1:38, 3:52])


@pytest.mark.parametrize(
    "name, changes, message",
    [
        ("enc-dec3d", {"kernel_size": 1}, "kernel_size=1 is invalid for enc-dec3d"),
        ("enc-dec3d", {"dropout": 0.2}, "dropout=0.2 is invalid for enc-dec3d"),
        ("conv2plus1d", {"horizon": 7}, "horizon=7 is invalid with input_length=5"),
        ("conv2plus1d", {"num_layers": 0}, "num_layers=0"),
        ("ablation-stconvs2s-r-notfactorized", {"kernel_size": 6}, "between 2 and"),
    ],
)
def test_bad_hyperparameters_raise(name, changes, message):
    good = dict(input_shape=(5, 8, 8, 1), horizon=5, num_layers=2, hidden_dim=4, kernel_size=3)
    with pytest.raises(ValueError, match=message):
        models.create(name, **{**good, **changes})


@pytest.mark.parametrize("name", models.available())
def test_every_model_forecasts_5_and_15_steps_and_trains(name):
    for horizon in (5, 15):
        assert output_shape(name, 5, (8, 8), 1, 2, 4, 3, horizon) == (2, horizon, 8, 8, 1)

    model = create(name, 5, (8, 8), 1, 1, 4, 3, horizon=5)
    x = jax.random.normal(jax.random.key(0), (4, 5, 8, 8, 1))
    batch = {"inputs": x, "targets": 0.5 * jnp.flip(x, axis=1)}
    train_step, state = make_train_step(model, create_optimizer(model))
    losses = []
    for _ in range(6):
        state, metrics = train_step(state, batch)
        losses.append(float(metrics["loss"]))
    assert np.isfinite(losses).all() and losses[-1] < losses[0]
