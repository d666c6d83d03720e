"""Config fields as command-line flags: a flag for every field of the config's
sections (`add_config_flags`), the flags given read back into a `Config`
(`config_from_args`), and the fields a library message names written as
their flags (`as_flags`, `parameter_flag`).

    flag_of("model", "hidden_dim")  # "--hidden-dim"
    as_flags("training.learning_rate=inf is invalid")  # "--learning-rate inf is invalid"
"""

import argparse
import dataclasses
import re
import types
import typing

from stconv.config import FLAGS, PRESETS, SECTIONS, Config, read_toml
from stconv.config.run import check_fitted_settings, flag_name, flattened
from stconv.config.sections import choices_of

# The flags of library parameters not spelled by the rule (``--`` and the name with dashes).
PARAMETER_FLAGS = {"path": "--output", "data": "--input"}
# The commands of the library's functions that its messages tell a user to call.
COMMANDS = {"train_and_evaluate": "stconv train", "evaluate_run": "stconv evaluate"}


def parameter_flag(name: str) -> str:
    """The flag of a parameter a `stconv.checks.ParameterError` names
    (``members``), or the command of a function it names (``evaluate_run``)."""
    return COMMANDS.get(name) or PARAMETER_FLAGS.get(name) or "--" + name.replace("_", "-")


def field_type(section: type, field: dataclasses.Field) -> type:
    """The flag's type: ``str | None`` -> str."""
    hint = typing.get_type_hints(section)[field.name]
    if isinstance(hint, types.UnionType):
        return next(t for t in typing.get_args(hint) if t is not type(None))
    return hint


def flag_of(section: str, field: str) -> str:
    """The flag of a config field, by the rule that makes the flags: ``--``
    and its flat name (`stconv.config.FLAGS`) with dashes; the one field of
    several options is given one option at a time (``--model-option``)."""
    flat = next(flat for flat, place in FLAGS.items() if place == (section, field))
    kind = field_type(SECTIONS[section], SECTIONS[section].__dataclass_fields__[field])
    return "--" + (flat.removesuffix("s") if kind is dict else flat).replace("_", "-")


FIELD_NAME = re.compile(
    rf"\b({'|'.join(SECTIONS)})\.([a-z_]+)\b(?:=(True|False)\b|(=)(\([^()]*\))?)?"
)


def as_flags(message: str) -> str:
    """A library's message with each config field it names written as its flag:
    ``training.learning_rate=inf`` as ``--learning-rate inf``,
    ``data.time_features=False`` as ``--no-time-features``, and a list as the
    flag takes it: ``data.bbox=(10.0, 20.0)`` as ``--bbox 10.0,20.0``."""

    def flag(match: re.Match) -> str:
        section, field, boolean, equals, values = match.groups()
        if field not in SECTIONS[section].__dataclass_fields__:
            return match.group(0)
        spelled = flag_of(section, field)
        if boolean == "False":
            return spelled.replace("--", "--no-", 1)
        if boolean == "True":
            return spelled
        items = (item.strip().strip("'\"") for item in (values or "()")[1:-1].split(","))
        return spelled + (f" {','.join(filter(None, items))}" if equals else "")

    return FIELD_NAME.sub(flag, message)


def flag_help(field: dataclasses.Field, flag: str) -> str:
    """A flag's help: the field's sentence, its choices and its default (where set)."""
    text = as_flags(field.metadata["help"])  # the fields it names, as flags
    if field.metadata.get("signed"):  # argparse would take a value "-10,..." for a flag
        text += f" (write {flag}=-10,... where the first value is negative)"
    if callable(field.metadata.get("choices")):  # many (the models): in words
        text += f"; choose from {', '.join(choices_of(field))}"
    default = field.default
    if isinstance(default, tuple):  # as the flag takes it: 1,3,5
        text += f" (default {','.join(map(str, default))})"
    elif (
        default is not None and default is not dataclasses.MISSING and not isinstance(default, bool)
    ):
        text += f" (default {default})"
    elif isinstance(default, bool):
        text += f" (default --{'' if default else 'no-'}{flag_name(field).replace('_', '-')})"
    return text.replace("%", "%%")


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """Adds ``--preset``, ``--config`` and a flag for every field of the config's
    sections (`stconv.config.FLAGS`: ``--hidden-dim``, ``--no-residual`` for
    booleans, ``--model-option KEY=VALUE`` for the model's own options);
    `config_from_args` applies the flags given over the config file's values,
    over the preset's, over the defaults."""
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        help="start from these settings (main: the README's main job; paper-cfsr, "
        "paper-chirps: the paper's; weather: t2m from winds, orography and calendar on the "
        "weather dataset); --config and the flags given override them",
    )
    parser.add_argument(
        "--config",
        metavar="FILE.toml",
        help="a TOML file of the config's sections ([data], [model], [training], [evaluation], "
        "[execution]; `stconv info --config RUN` prints a run's): it overrides the preset, "
        "the flags given override it",
    )
    add_section_flags(parser, SECTIONS.values())


def add_section_flags(parser: argparse.ArgumentParser, sections, names=None) -> None:
    """A flag for every field of ``sections`` (`add_config_flags`), or for
    those of them whose flat names are in ``names``."""
    for section in sections:
        for field in dataclasses.fields(section):
            flat, kind = flag_name(field), field_type(section, field)
            if names is not None and flat not in names:
                continue
            flag = flag_of(section.NAME, field.name)
            # Flags not given stay out of the namespace, so a preset's values stand.
            if kind is dict:  # the model's options: KEY=VALUE, one at a time
                parser.add_argument(
                    flag, dest=flat, action="append", metavar="KEY=VALUE",
                    default=argparse.SUPPRESS, help=flag_help(field, flag),
                )  # fmt: skip
                continue
            if typing.get_origin(kind) is tuple:  # several values: comma-separated
                kind = comma_list(typing.get_args(kind)[0])
            if kind is bool:
                parser.add_argument(
                    flag, dest=flat, action=argparse.BooleanOptionalAction,
                    default=argparse.SUPPRESS, help=flag_help(field, flag),
                )  # fmt: skip
            else:
                choices = field.metadata.get("choices")  # few: in the metavar
                metavar = f"{{{','.join(choices)}}}" if isinstance(choices, tuple) else None
                parser.add_argument(
                    flag, dest=flat, type=kind, default=argparse.SUPPRESS, metavar=metavar,
                    help=flag_help(field, flag),
                )  # fmt: skip


def comma_list(kind: type):
    """The flag type of a list of ``kind`` written ``a,b,c``."""

    def parse(text: str) -> tuple:
        return tuple(kind(part.strip()) for part in text.split(","))

    parse.__name__ = f"comma-separated {kind.__name__}"  # argparse's error names it
    return parse


def config_from_args(args: argparse.Namespace) -> Config:
    """The preset (``--preset``, or the defaults), then the TOML file
    (``--config``), then the flags given.

    Raises:
      ValueError: naming the file, for an invalid config file; for a
        ``--model-option`` that is not ``KEY=VALUE``; and naming the field for
        every invalid value (`stconv.config.Config`).
    """
    given = {flat: getattr(args, flat) for flat in FLAGS if hasattr(args, flat)}
    if "model_options" in given:
        given["model_options"] = dict(map(model_option, given["model_options"]))
    preset = getattr(args, "preset", None)
    values = dict(PRESETS[preset]) if preset is not None else {}
    if getattr(args, "config", None) is not None:
        sections = read_toml(args.config)
        Config.from_dict(sections, f"file {args.config!r}")  # alone first: errors name the file
        given = {**flattened(sections), **given}
    config = Config.from_flags(**{**values, **given})
    check_fitted_settings(config, given)
    return config


def model_option(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` of ``--model-option`` as ``(key, value)``."""
    key, equals, value = text.partition("=")
    if not equals or not key.strip():
        raise ValueError(f"--model-option {text!r} is invalid: write KEY=VALUE")
    return key.strip(), value.strip()
