"""The app itself: help, version, no torch at start-up, start-up time."""

import statistics
import subprocess
import sys
import time

from typer.testing import CliRunner

from clsctl import __version__
from clsctl.cli.main import app


def test_help_lists_panels_and_commands(runner: CliRunner) -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for word in ("Run", "Inspect", "train", "test", "infer", "list-models", "print-config", "recipe-schema",
                 "prepare-data"):
        assert word in result.output


def test_no_arguments_shows_help(runner: CliRunner) -> None:
    result = runner.invoke(app, [])
    assert "Usage" in result.output and "train" in result.output


def test_version(runner: CliRunner) -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"clsctl {__version__}"


def test_cli_import_does_not_import_torch() -> None:
    code = "import sys, clsctl.cli.main; print('torch' in sys.modules, 'torchvision' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_help_starts_fast() -> None:
    times = []
    for _ in range(5):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "clsctl", "--help"], capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    assert statistics.median(times) < 0.5, times
