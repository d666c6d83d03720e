"""Window lengths and the chronological splits."""

from hypothesis import given, settings
from hypothesis import strategies as st

from stconv.data.errors import DataError
from stconv.data.windows import WindowSpec, paper_split, split_starts, time_segments


def test_split_starts_by_hand():
    starts = split_starts(30, WindowSpec(3, 2))
    # time segments [0, 18), [18, 24), [24, 30); windows of 5 frames stay inside.
    assert starts == {"train": range(0, 14), "validation": range(18, 20), "test": range(24, 26)}
    strided = split_starts(30, WindowSpec(3, 2, stride=4))
    assert list(strided["train"]) == [0, 4, 8, 12]


@settings(max_examples=60, deadline=None)
@given(
    num_steps=st.integers(30, 400),
    input_length=st.integers(1, 6),
    horizon=st.integers(1, 6),
    stride=st.integers(1, 4),
    train=st.floats(0.3, 0.8),
)
def test_split_invariants(num_steps, input_length, horizon, stride, train):
    fractions = (train, (1 - train) / 2, (1 - train) / 2)
    spec = WindowSpec(input_length, horizon, stride)
    try:
        starts = split_starts(num_steps, spec, fractions)
    except DataError as error:
        assert "too few" in str(error)
        return
    segments = time_segments(num_steps, fractions)
    frames = {}
    for split, (start, stop) in segments.items():
        expected = (stop - start - spec.length) // stride + 1
        assert len(starts[split]) == expected
        assert list(starts[split]) == sorted(starts[split])
        frames[split] = {f for s in starts[split] for f in range(s, s + spec.length)}
        assert all(start <= f < stop for f in frames[split])
    # No frame, and so no target frame, is seen by two splits; splits are in time order.
    assert not frames["train"] & frames["validation"]
    assert not frames["validation"] & frames["test"]
    assert not frames["train"] & frames["test"]
    assert max(frames["train"]) < min(frames["validation"]) <= max(frames["validation"])
    assert max(frames["validation"]) < min(frames["test"])


def test_paper_split_reproduces_the_reference():
    # CFSR: int(54047 * 0.8) = 43237 test start; int(43237 * 0.75) = 32427 validation start.
    cfsr = paper_split(54047)
    assert (cfsr["validation"].start, cfsr["test"].start) == (32427, 43237)
    chirps = paper_split(13960)  # int(13960 * 0.8) = 11168; int(11168 * 0.75) = 8376
    assert (chirps["validation"].start, chirps["test"].start) == (8376, 11168)
    assert chirps["test"].stop == 13960
