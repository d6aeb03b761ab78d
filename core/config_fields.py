"""Configuration fields that describe themselves: default, help and choices in one place.

The configs (`models.config.TrainingConfig`, `pipeline.config`) declare each
option once with `option(...)`; the command line is generated from those
fields (`unet4mri.config_options`), so a new option is one field.
"""

import dataclasses
from collections.abc import Sequence
from typing import Any

OFF = "off"  # on the command line, the value that turns an optional check or feature off (None in a config)


def option(
    default: Any, help: str, choices: Sequence | None = None, aliases: Sequence[str] = (), path: bool = False, keywords: Sequence[str] = ()
) -> Any:  # noqa: A002
    """A dataclass field that is also a command-line option `--<field-name>`.

    help: one line for `--help` (the default is appended); choices: the
    allowed values; aliases: older flag spellings kept working; path: a file
    or folder, made absolute when the pipeline runs locally, except the
    `keywords` that name something else (e.g. "served"). A field typed
    `X | None` accepts `off` for None.
    """
    metadata = {
        "help": help,
        "choices": tuple(choices) if choices else None,
        "aliases": tuple(aliases),
        "path": path,
        "keywords": tuple(keywords),
    }
    return dataclasses.field(default=default, metadata=metadata)
