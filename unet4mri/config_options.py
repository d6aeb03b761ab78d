"""Command-line options generated from the config dataclasses' fields.

Every field declared with `core.config_fields.option(...)` becomes
`--<field-name>` (underscores as hyphens) with its default, help and choices;
a dataclass-typed field (`PipelineConfig.ingestion`, `.training`) becomes an
argument group of its own. Conventions:

- bool: `--name` turns a False default on, `--no-name` turns a True default off
  (for a True default, the help describes the `--no-` switch);
- `X | None`: `off` (core.config_fields.OFF) gives None;
- tuples: as many values as the default has (`--split-hash-buckets 14 3 3`);
- `path=True`: made absolute for a local run, unless it is a URL (`gs://`) or a keyword.
"""

import argparse
import dataclasses
import os
import types
import typing

from core.config_fields import OFF


def _is_optional(hint) -> tuple[bool, type]:
    """(hint admits None, the type other than None)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        others = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return len(others) < len(typing.get_args(hint)), others[0]
    return False, hint


def _option_fields(config_class) -> list[tuple[dataclasses.Field, object]]:
    hints = typing.get_type_hints(config_class)
    return [(field, hints[field.name]) for field in dataclasses.fields(config_class) if field.metadata.get("help")]


def _section_fields(config_class) -> list[dataclasses.Field]:
    return [field for field in dataclasses.fields(config_class) if dataclasses.is_dataclass(field.default)]


def _converter(base: type, optional: bool, choices):
    def convert(text: str):
        if optional and text == OFF:
            return None
        value = base(text)
        if choices and value not in choices:
            raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(map(str, choices))}")
        return value

    convert.__name__ = base.__name__  # argparse names the type in its error messages
    return convert


def _add_field(group, field: dataclasses.Field, hint) -> None:
    name = "--" + field.name.replace("_", "-")
    help_text, choices, aliases = field.metadata["help"], field.metadata["choices"], field.metadata["aliases"]
    optional, base = _is_optional(hint)
    if base is bool:
        if field.default:
            group.add_argument("--no-" + name[2:], dest=field.name, action="store_false", default=True, help=help_text)
        else:
            group.add_argument(name, *aliases, dest=field.name, action="store_true", default=False, help=help_text)
        return
    if typing.get_origin(base) is tuple:
        item = typing.get_args(base)[0]
        group.add_argument(
            name,
            *aliases,
            dest=field.name,
            type=item,
            nargs=len(field.default),
            default=field.default,
            metavar=item.__name__.upper(),
            help=f"{help_text} (default: {' '.join(map(str, field.default))})",
        )
        return
    shown = OFF if field.default is None else field.default
    metavar = "{" + ",".join(map(str, [*choices, *([OFF] if optional else [])])) + "}" if choices else None
    off = f"; {OFF} turns it off" if optional and field.default is not None else ""
    group.add_argument(
        name,
        *aliases,
        dest=field.name,
        type=_converter(base, optional, choices),
        default=field.default,
        metavar=metavar,
        help=f"{help_text} (default: {shown}{off})",
    )


def add_options(parser: argparse.ArgumentParser, config_class, title: str | None = None) -> None:
    """Add the options of `config_class` (and of its sections, one group each) to `parser`."""
    group = parser.add_argument_group(title) if title else parser
    for field, hint in _option_fields(config_class):
        _add_field(group, field, hint)
    for section in _section_fields(config_class):
        add_options(parser, type(section.default), section.name)


def _absolute(value, field: dataclasses.Field):
    keywords = field.metadata.get("keywords", ())
    if not field.metadata.get("path") or value is None or value in keywords or "://" in str(value):
        return value
    return os.path.abspath(value)


def config_from_args(config_class, args: argparse.Namespace, **values):
    """An instance of `config_class` from parsed options (and its sections from theirs); `values` fill the rest."""
    for field, _ in _option_fields(config_class):
        value = getattr(args, field.name)
        values[field.name] = tuple(value) if isinstance(value, list) else _absolute(value, field)
    for section in _section_fields(config_class):
        values[section.name] = config_from_args(type(section.default), args)
    return config_class(**values)
