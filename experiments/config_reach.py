"""Which of stconv's modules the training configuration reaches, traced as it runs.

Runs ``stconv train`` in this process on a tiny synthetic run and records every
call into a module of the package that receives the configuration: the
command line's ``argparse.Namespace``, a ``Config`` or one of its sections (an
instance of a class defined in ``stconv.config``), as an argument or as an
attribute of an argument, up to three deep (``forecaster.run.config``). Plain
values read from the configuration (a path, a learning rate) and what is
computed from them (the data, the model, the scores) are not followed: they
are what any library takes, and a module that receives only them does not
know the configuration.

It traces two training commands, one for each branch of training: a network
(one epoch of the tests' tiny run) and ARIMA (fitted per cell).

Usage:
  python experiments/config_reach.py

It prints each module reached, with the first function that received the
configuration there, and their count.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import io
import pathlib
import sys
import tempfile
import types
from collections.abc import Callable

# One epoch of a one-layer STConvS2S-R on the synthetic dataset, as the tests'
# shared tiny run (`tests/conftest.py`, TINY_RUN; `tests/test_config_reach.py` keeps them equal).
TINY_FLAGS = (
    "--dataset", "synthetic", "--num-layers", "1", "--hidden-dim", "2", "--kernel-size", "3",
    "--batch-size", "16", "--forecast-samples", "0", "--epochs", "1", "--eval-batch-size", "8",
    "--no-maps",
)  # fmt: skip


def is_configuration(value: object) -> bool:
    """Whether ``value`` is the command line's namespace, or an instance of a
    class defined in the ``stconv.config`` package (the configuration)."""
    if isinstance(value, argparse.Namespace):
        return True
    module = type(value).__module__
    return module == "stconv.config" or module.startswith("stconv.config.")


def carries_configuration(value: object, depth: int = 3) -> bool:
    """Whether ``value`` is the configuration, or holds it as an attribute
    (``self.config``), or an attribute of its attributes, ``depth`` deep."""
    if is_configuration(value):
        return True
    if depth == 0 or isinstance(value, type | types.ModuleType | types.FunctionType):
        return False
    try:
        attributes = list(vars(value).values())
    except TypeError:
        return False
    return any(carries_configuration(attribute, depth - 1) for attribute in attributes)


def arguments(frame: types.FrameType) -> list[object]:
    """The values of the arguments that a call's frame received."""
    code = frame.f_code
    count = code.co_argcount + code.co_kwonlyargcount
    count += bool(code.co_flags & inspect.CO_VARARGS) + bool(code.co_flags & inspect.CO_VARKEYWORDS)
    values = [frame.f_locals.get(name) for name in code.co_varnames[:count]]
    spread = []
    for value in values:
        if isinstance(value, tuple | list):
            spread.extend(value)
        elif isinstance(value, dict):
            spread.extend(value.values())
        else:
            spread.append(value)
    return spread


def trace_reach(run: Callable[[], object], root: pathlib.Path) -> dict[str, str]:
    """Runs ``run()`` and returns, for each module file under ``root`` whose
    code received the configuration, the first function that received it.

    Args:
      run: the work to trace.
      root: the package folder; modules are named relative to it.

    Returns:
      Module path (relative to ``root``'s parent) -> qualified function name.
    """
    root = root.resolve()
    reached: dict[str, str] = {}

    def profile(frame: types.FrameType, event: str, _: object) -> None:
        if event != "call":
            return
        path = pathlib.Path(frame.f_code.co_filename)
        if not path.is_relative_to(root):
            return
        module = str(path.relative_to(root.parent))
        if module in reached:
            return
        if any(carries_configuration(value) for value in arguments(frame)):
            reached[module] = frame.f_code.co_qualname

    sys.setprofile(profile)
    try:
        run()
    finally:
        sys.setprofile(None)
    return reached


def report(reached: dict[str, str]) -> str:
    """One line per module reached (its first function given the configuration),
    then their count."""
    width = max(len(module) for module in reached)
    lines = [f"{module:<{width}}  {reached[module]}" for module in sorted(reached)]
    lines.append(f"{len(reached)} modules reached by the training configuration")
    return "\n".join(lines)


def traced_commands(scratch: pathlib.Path) -> list[list[str]]:
    """The training commands traced: the tiny network run, and ARIMA (fitted
    per cell, by the other branch of training) on a 2 x 3 synthetic file."""
    from stconv.data.synthetic import write_synthetic_netcdf

    small = scratch / "small.nc"
    write_synthetic_netcdf(small, 120, 2, 3, seed=4, variable="synthetic_0")
    return [
        ["train", "--workdir", str(scratch / "network"), *TINY_FLAGS],
        ["train", "--workdir", str(scratch / "arima"), "--model", "arima", "--dataset", str(small)],
    ]


def trace_command(command: list[str], root: pathlib.Path) -> dict[str, str]:
    """`trace_reach` of ``stconv COMMAND`` (its printed output discarded)."""
    from stconv import cli

    print(f"tracing stconv {' '.join(command)}", file=sys.stderr)
    status: list[int] = []
    with contextlib.redirect_stdout(io.StringIO()):
        reached = trace_reach(lambda: status.append(cli.main(command)), root)
    if status != [0]:
        raise SystemExit(f"stconv {' '.join(command)} exited with {status}")
    return reached


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    import stconv

    root = pathlib.Path(stconv.__file__).parent
    reached: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for command in traced_commands(pathlib.Path(scratch)):
            for module, function in trace_command(command, root).items():
                reached.setdefault(module, function)
    print(report(reached))
    return 0


if __name__ == "__main__":
    sys.exit(main())
