"""Checks of user-given values, shared by every module (no dependencies, so a
config can be checked without loading JAX)."""

import math


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


def check_finite(name: str, value: object) -> None:
    """Raises ValueError naming ``name`` if ``value`` (a number, or a tuple of
    them) holds inf or nan: no setting is infinite, and the run's JSON files
    could not hold it."""
    values = value if isinstance(value, tuple) else (value,)
    if any(isinstance(v, float) and not math.isfinite(v) for v in values):
        what = "finite numbers" if isinstance(value, tuple) else "a finite number"
        raise ValueError(f"{name}={value!r} is invalid: must be {what}")


def check_above_zero(name: str, value: float) -> None:
    """Raises ValueError naming ``name`` unless ``value`` is a finite number > 0
    (a learning rate)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise ValueError(f"{name}={value!r} is invalid: must be a finite number > 0")


def check_choice(name: str, value: object, choices, error: type[ValueError] = ValueError) -> None:
    """Raises ``error`` (a ValueError) naming ``name`` and the ``choices`` unless
    ``value`` is one."""
    if value not in choices:
        raise error(f"{name}={value!r} is invalid: choose from {list(choices)}")


def spelled(message: str, given: dict, flag_of, python: bool = False) -> str:
    """``message`` with each parameter of ``given`` written ``{name}`` spelled
    as Python does (``python``: ``name=value``, just ``name`` where its value is
    None) or as another interface does with ``flag_of`` (the command line's
    flags, `stconv.cli.parameter_flag`: the flag and its value, the flag alone
    for True or None). A value that is a dict is a call of the function
    ``name`` with those parameters: ``name(key=value)`` in Python, else
    ``flag_of(name)`` and the parameters spelled so.

    Args:
      flag_of: a parameter's (or function's) name to its spelling.
      python: write values as Python keywords (``name=value``).
    """

    def spell(name: str, value: object) -> str:
        if isinstance(value, dict):
            if python:
                keywords = ", ".join(f"{key}={given!r}" for key, given in value.items())
                return f"{name}({keywords})"
            return " ".join([flag_of(name), *(spell(k, v) for k, v in value.items())])
        if value is None or (value is True and not python):
            return flag_of(name)
        return f"{flag_of(name)}={value!r}" if python else f"{flag_of(name)} {value}"

    for name, value in given.items():
        message = message.replace("{" + name + "}", spell(name, value))
    return message


class NamesParameters:
    """An error whose message names the parameters (and functions) a caller
    gives as ``{name}``, ``given`` their values: its text spells them as
    Python does, and `spelled` as another interface does (`spelled`)::

        ParameterError("{members} is invalid: an ensemble needs 2 or more", members=1)
        # "members=1 is invalid: ..."; spelled(flag_of) names the flag instead
        TrainingError("... `{evaluate_run}` tests it", evaluate_run={"unfinished": True})
        # "... `evaluate_run(unfinished=True)` tests it"
    """

    def __init__(self, message: str, **given: object):
        self.message, self.given = message, given
        super().__init__(spelled(message, given, lambda name: name, python=True))

    def spelled(self, flag_of, python: bool = False) -> str:
        """The message with every parameter spelled by ``flag_of`` (`spelled`)."""
        return spelled(self.message, self.given, flag_of, python)


class ParameterError(NamesParameters, ValueError):
    """A ValueError about values a caller gave, naming them by their parameter
    (`NamesParameters`)."""


class ParameterNote(str):
    """A note (`BaseException.add_note`) that names parameters as
    `NamesParameters` does; as a string, as Python spells them."""

    def __new__(cls, message: str, **given: object) -> "ParameterNote":
        note = super().__new__(cls, spelled(message, given, lambda name: name, python=True))
        note.message, note.given = message, given
        return note

    def spelled(self, flag_of) -> str:
        """The note with every parameter spelled by ``flag_of`` (`spelled`)."""
        return spelled(self.message, self.given, flag_of)
