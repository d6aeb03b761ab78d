"""Rewrite the CLI reference block of docs/cli.md from the parser (tests/unet4mri/test_cli.py checks they agree).

Run after changing any option: `.venv/bin/python scripts/sync_cli_reference.py`.
"""

import pathlib

from unet4mri import cli

reference = pathlib.Path(__file__).parents[1] / "docs" / "cli.md"
text = reference.read_text(encoding="utf-8")
begin, end = text.index(cli.REFERENCE_BEGIN), text.index(cli.REFERENCE_END) + len(cli.REFERENCE_END)
reference.write_text(text[:begin] + cli.cli_reference() + text[end:], encoding="utf-8")
