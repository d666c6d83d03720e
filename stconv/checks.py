"""Checks of user-given values, shared by every module (no dependencies, so a
config can be checked without loading JAX)."""


def check_positive(name: str, value: object, error: type[ValueError] = ValueError) -> None:
    """Raises ``error`` (a ValueError) naming ``name`` unless ``value`` is an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise error(f"{name}={value!r} is invalid: must be an integer >= 1")
