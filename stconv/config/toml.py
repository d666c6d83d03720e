"""A config as a TOML file of its sections: what the command line's ``train``
reads with its ``config`` flag and ``info`` prints with it::

    [data]
    dataset = "hadcm3-a1b"

    [model]
    name = "stconvs2s-r"
    hidden_dim = 8
    options = {channel_increase = false}

Read with `tomllib`; written here by hand (strings, numbers, booleans, arrays
and one inline table are all a config holds). TOML has no null: a field that
is unset (None) is left out, and a section's defaults fill what is left out.
"""

import dataclasses
import json
import os
import re
import tomllib

from stconv.config.run import Config
from stconv.config.sections import SECTIONS

BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def read_toml(path: str | os.PathLike) -> dict[str, dict]:
    """The sections of the TOML file ``path``, checked against `SECTIONS`.

    Raises:
      ValueError: naming the file, if it cannot be read, is not TOML or holds
        an unknown section or key.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            values = tomllib.load(f)
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"file {path!r} is not a TOML config: {error}") from None
    except FileNotFoundError:
        raise ValueError(f"file {path!r} does not exist") from None
    except OSError as error:
        raise ValueError(f"file {path!r} cannot be read: {error.strerror}") from None
    for name, section in values.items():
        if name not in SECTIONS or not isinstance(section, dict):
            raise ValueError(
                f"file {path!r} has an unknown key {name!r}: a config file holds the sections "
                f"{[f'[{s}]' for s in SECTIONS]}"
            )
        fields = [field.name for field in dataclasses.fields(SECTIONS[name])]
        for key in section:
            if key not in fields:
                raise ValueError(
                    f"file {path!r} has an unknown key {key!r} in [{name}]: choose from {fields}"
                )
    return values


def load_toml(path: str | os.PathLike) -> Config:
    """The config of the TOML file ``path`` (`read_toml`); every value checked."""
    return Config.from_dict(read_toml(path), f"file {os.fspath(path)!r}")


def to_toml(config: Config) -> str:
    """``config`` as a TOML file of its sections, every field that is set."""
    lines = []
    for name, values in config.to_dict().items():
        lines.append(f"[{name}]")
        lines += [f"{key(k)} = {value(v)}" for k, v in values.items() if v is not None]
        lines.append("")
    return "\n".join(lines)


def key(name: str) -> str:
    return name if BARE_KEY.match(name) else json.dumps(name)


def value(v: object) -> str:
    """A TOML value: a string (JSON's escapes are TOML's), boolean, number,
    array or inline table."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list | tuple):
        return f"[{', '.join(map(value, v))}]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{key(k)} = {value(x)}" for k, x in v.items()) + "}"
    raise ValueError(f"{v!r} has no TOML form: a config holds strings, numbers and booleans")
