"""``python -m clsctl``."""

from clsctl.cli.main import run

run()
