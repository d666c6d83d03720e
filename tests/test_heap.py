"""The heap trimmed after every XLA compile (`stconv.training.heap`)."""

import time

import jax
import numpy as np
import pytest

from stconv.models import create
from stconv.training import heap
from stconv.training.step import create_optimizer, make_train_step


@pytest.fixture
def trims(monkeypatch):
    """The calls of ``malloc_trim``, recorded instead of made."""
    calls = []
    monkeypatch.setattr(heap, "_malloc_trim", calls.append)
    return calls


def new_program():
    """A function no compilation cache holds (its constant is the time now)."""
    constant = float(time.time_ns() % 10**9)
    return jax.jit(lambda x: x * constant + 1.0)


def test_every_compile_trims_the_heap_once(trims, monkeypatch):
    monkeypatch.setattr(heap, "MIN_COMPILE_SECONDS", 0.0)  # these compiles are short
    assert heap.trim_after_compiles() and heap.trim_after_compiles()  # a second call adds nothing
    x = np.ones(3, np.float32)  # host data: no program to build it
    new_program().lower(x).compile()
    assert trims == [0]
    new_program()(x)  # a compile through jit's own call
    assert trims == [0, 0]


def test_making_a_train_step_turns_trimming_on(trims, monkeypatch):
    registered = []
    monkeypatch.setattr(heap, "_listening", False)
    monkeypatch.setattr(jax.monitoring, "register_event_duration_secs_listener", registered.append)
    model = create(
        "conv3d", input_shape=(2, 4, 4, 1), horizon=2, num_layers=1, hidden_dim=2, kernel_size=3
    )
    make_train_step(model, create_optimizer(model))
    assert registered == [heap.trim]


def test_without_malloc_trim_nothing_is_registered(monkeypatch):
    monkeypatch.setattr(heap, "_malloc_trim", None)
    monkeypatch.setattr(heap, "_listening", False)
    assert heap.trim_after_compiles() is False


def test_only_long_compiles_trim(trims):
    heap.trim("/jax/compilation_cache/cache_retrieval_time_sec", 2.0)
    heap.trim(heap.COMPILE_EVENT, 2.0, fun_name="train_step")
    heap.trim(heap.COMPILE_EVENT, 0.1, fun_name="convert_element_type")
    assert trims == [0]
