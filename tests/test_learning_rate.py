"""The learning-rate schedule: the paper's constant RMSprop step, or a cosine
decay to zero over the run's epochs."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from stconv.config import Config
from stconv.runs.assembly import build
from stconv.training.step import paper_optimizer


def step_sizes(tx: optax.GradientTransformation, steps: int) -> list[float]:
    """The size of each update of a one-parameter problem with gradient 1:
    RMSprop's normalized step times the learning rate of that step."""
    params = jnp.zeros(())
    state = tx.init(params)
    sizes = []
    for _ in range(steps):
        updates, state = tx.update(jnp.ones(()), state, params)
        sizes.append(float(-updates))
    return sizes


def test_constant_is_the_papers_rmsprop():
    sizes = step_sizes(paper_optimizer(1e-3), 3)
    # RMSprop with gradient 1: v_t = 1 - 0.9^t, step lr / (sqrt(v_t) + 1e-6)
    expected = [1e-3 / (np.sqrt(1 - 0.9**t) + 1e-6) for t in (1, 2, 3)]
    np.testing.assert_allclose(sizes, expected, rtol=1e-6)


def test_cosine_falls_from_the_rate_to_zero_over_the_decay_steps():
    constant = step_sizes(paper_optimizer(1e-3), 6)
    cosine = step_sizes(paper_optimizer(1e-3, decay_steps=4), 6)
    factors = np.array(cosine) / np.array(constant)
    # step t uses the rate of count t - 1: 0.5 * (1 + cos(pi * (t - 1) / 4))
    expected = 0.5 * (1 + np.cos(np.pi * np.minimum(np.arange(6), 4) / 4))
    np.testing.assert_allclose(factors, expected, atol=1e-6)


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_build_decays_over_the_configs_epochs(schedule):
    config = Config.from_flags(
        num_layers=1, hidden_dim=2, kernel_size=3, epochs=2, learning_rate_schedule=schedule
    )
    _, optimizer = build(config, (5, 4, 4, 1), steps_per_epoch=3)
    sizes = step_sizes(optimizer.tx, 7)  # 2 epochs of 3 steps, then one more
    np.testing.assert_allclose(sizes[:1], step_sizes(paper_optimizer(1e-3), 1), rtol=1e-6)
    assert sizes[5] > 0.0  # the last step of the last epoch still moves
    assert (sizes[6] == 0.0) == (schedule == "cosine")
