"""Rewrite the README's CLI reference block from the parser (the test checks they agree)."""

import pathlib

from unet4mri import cli

readme = pathlib.Path(__file__).parents[1] / "README.md"
text = readme.read_text()
begin, end = text.index(cli.REFERENCE_BEGIN), text.index(cli.REFERENCE_END) + len(cli.REFERENCE_END)
readme.write_text(text[:begin] + cli.cli_reference() + text[end:])
