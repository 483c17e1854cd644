"""A command line generated from a settings dataclass, so the dataclass is the one list of a
tool's settings: its flags, a config file and the code that builds one in Python cannot drift.

Each field becomes `--name-with-dashes`, typed from its annotation, with its default and the
`help` of its metadata (`option()` writes that metadata); `choices` restricts it. A bool becomes
a pair, `--name` and `--no-name` (`negative` names the second where a tool spelled it otherwise).
A field without a default is a required flag unless the config file gives it.

`--config FILE` reads a TOML (.toml) or JSON file of field names and values; flags given beside
it win: defaults < file < flags.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import types
import typing
from collections.abc import Sequence
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 (JetPack 6)
    import tomli as tomllib

from gaitcontract.errors import ConfigError

T = typing.TypeVar("T")
Settings = typing.TypeVar("Settings")


def option(
    default: T, help: str, *, choices: Sequence[object] = (), negative: str | None = None
) -> T:
    """A settings field with its command-line help (and choices, or the spelling of a bool's
    `--no-...` flag)."""
    metadata = {"help": help, "choices": tuple(choices), "negative": negative}
    return dataclasses.field(default=default, metadata=metadata)  # type: ignore[no-any-return]


def required(help: str) -> str:
    """A settings field without a default: a required flag (or config-file entry)."""
    return dataclasses.field(metadata={"help": help, "choices": (), "negative": None})  # type: ignore[no-any-return]


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def negative_flag(field: dataclasses.Field) -> str:
    return field.metadata.get("negative") or "--no-" + field.name.replace("_", "-")


def _kind(hint: object) -> tuple[type, bool]:
    """(the value type, whether None is allowed) of an annotation: int, float, str, bool, tuple
    (of floats), dict, each optionally `| None`."""
    optional = False
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = len(args) < len(typing.get_args(hint))
        (hint,) = args
    origin = typing.get_origin(hint) or hint
    if origin not in (int, float, str, bool, tuple, dict):
        raise TypeError(f"a settings field of type {hint} has no command-line form")
    return typing.cast(type, origin), optional


def fields_of(cls: type) -> list[tuple[dataclasses.Field, type, bool]]:
    """Every field with its value type and whether None is allowed."""
    hints = typing.get_type_hints(cls)
    return [(f, *_kind(hints[f.name])) for f in dataclasses.fields(cls)]


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object")
    return value


def add_fields(
    parser: argparse.ArgumentParser, cls: type, given: dict[str, object] | None = None
) -> None:
    """One flag per field of `cls`; `given` (a config file's values) replaces the defaults."""
    given = given or {}
    for field, kind, _ in fields_of(cls):
        help_text = field.metadata.get("help")
        if not help_text:
            raise TypeError(f"{cls.__name__}.{field.name} has no help text")
        if field.name in given:
            default = given[field.name]
        elif field.default is not dataclasses.MISSING:
            default = field.default
        else:
            default = dataclasses.MISSING
        if kind is bool:
            parser.add_argument(
                flag(field.name),
                dest=field.name,
                action="store_true",
                default=default,
                help=help_text,
            )
            parser.add_argument(
                negative_flag(field),
                dest=field.name,
                action="store_false",
                default=argparse.SUPPRESS,  # the first of the pair sets the default
                help=f"turn {flag(field.name)} off",
            )
            continue
        extra: dict = {}
        if kind is tuple:
            extra = {"nargs": "+", "type": float}
        elif kind is dict:
            extra = {"type": _json_object, "metavar": "JSON"}
        else:
            extra = {"type": kind}
        if field.metadata.get("choices"):
            extra["choices"] = list(field.metadata["choices"])
        if default is dataclasses.MISSING:
            extra["required"] = True
        else:
            extra["default"] = default
        parser.add_argument(flag(field.name), dest=field.name, help=help_text, **extra)


def _checked(field: dataclasses.Field, kind: type, optional: bool, value: object, where: str):
    """A config file's value as the field's type; ConfigError saying what is wrong otherwise."""
    wrong = ConfigError(
        f"{where}: {field.name} = {value!r} is not a{'n' if kind is int else ''} {kind.__name__}"
        + (" or null" if optional else "")
    )
    if value is None:
        if optional:
            return None
        raise wrong
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind is tuple:
        if not isinstance(value, list) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in value
        ):
            raise wrong
        return tuple(float(v) for v in value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise wrong
    choices = field.metadata.get("choices")
    if choices and value not in choices:
        raise ConfigError(f"{where}: {field.name} = {value!r} is not one of {', '.join(choices)}")
    return value


def read_config_file(path: Path, cls: type) -> dict[str, object]:
    """The field values a TOML (.toml) or JSON file gives, checked against `cls`'s fields."""
    try:
        text = path.read_text(encoding="utf-8")
        raw = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"config file {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path}: expected a table of settings")
    known = {f.name: (f, kind, optional) for f, kind, optional in fields_of(cls)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ConfigError(
            f"config file {path}: unknown settings {unknown}; use field names with underscores: "
            + ", ".join(known)
        )
    return {
        name: _checked(*known[name], value, f"config file {path}") for name, value in raw.items()
    }


def write_config_file(settings: object, path: Path) -> None:
    """`settings` (a dataclass) as JSON that `--config` reads back to the same values."""
    path.write_text(json.dumps(dataclasses.asdict(settings), indent=1) + "\n", encoding="utf-8")  # type: ignore[call-overload]


def parse(cls: type[Settings], parser: argparse.ArgumentParser, argv: list[str] | None) -> Settings:
    """`--config FILE` and one flag per field of `cls` on `parser`, parsed into a `cls`."""
    pre = type(parser)(add_help=False)
    pre.add_argument("--config", type=Path)
    config_path = pre.parse_known_args(argv)[0].config
    given: dict[str, object] = {}
    if config_path is not None:
        try:
            given = read_config_file(config_path, cls)
        except ConfigError as exc:
            parser.error(str(exc))
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="FILE",
        help="TOML or JSON file of settings (field names with underscores); flags override it",
    )
    add_fields(parser, cls, given)
    args = parser.parse_args(argv)
    values = {}
    for field, kind, _ in fields_of(cls):
        value = getattr(args, field.name)
        values[field.name] = tuple(value) if kind is tuple and value is not None else value
    return cls(**values)


def to_argv(settings: object, names: Sequence[str]) -> list[str]:
    """The flags that set the fields `names` of `settings` (a dataclass) to their values: the
    command line a person can rerun. A None value is left out (the flag's default)."""
    found = {f.name: (f, kind) for f, kind, _ in fields_of(type(settings))}
    argv: list[str] = []
    for name in names:
        field, kind = found[name]
        value = getattr(settings, name)
        if kind is bool:
            argv.append(flag(name) if value else negative_flag(field))
        elif value is None:
            continue
        elif kind is tuple:
            argv += [flag(name), *(str(v) for v in value)]
        elif kind is dict:
            argv += [flag(name), json.dumps(value)]
        else:
            argv += [flag(name), str(value)]
    return argv
