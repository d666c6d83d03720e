"""Checks of user-given values, shared by every module (no dependencies, so a
config can be checked without loading JAX)."""


def check_positive(name: str, value: object, error: type[ValueError] = ValueError) -> None:
    """Raises ``error`` (a ValueError) naming ``name`` unless ``value`` is an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise error(f"{name}={value!r} is invalid: must be an integer >= 1")


def check_non_negative(name: str, value: object) -> None:
    """Raises ValueError naming ``name`` unless ``value`` is an integer >= 0 (a seed)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name}={value!r} is invalid: must be an integer >= 0")


MAX_SEED = 2**32 - 1  # JAX's and numpy's seeds fit 32 bits


def check_seed(name: str, value: object) -> None:
    """Raises ValueError naming ``name`` unless ``value`` is an integer in
    ``0 .. MAX_SEED``."""
    check_non_negative(name, value)
    if value > MAX_SEED:
        raise ValueError(f"{name}={value!r} is invalid: must be at most 2**32 - 1 = {MAX_SEED}")


def check_above_zero(name: str, value: float) -> None:
    """Raises ValueError naming ``name`` unless ``value > 0`` (a learning rate)."""
    if not value > 0:
        raise ValueError(f"{name}={value!r} is invalid: must be > 0")


def check_choice(name: str, value: object, choices, error: type[ValueError] = ValueError) -> None:
    """Raises ``error`` (a ValueError) naming ``name`` and the ``choices`` unless
    ``value`` is one."""
    if value not in choices:
        raise error(f"{name}={value!r} is invalid: choose from {list(choices)}")
