"""The app itself: help, version, no torch at start-up, start-up time."""

import statistics
import subprocess
import sys
import time

import pytest
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
    """Median start-up of `clsctl --help` under 0.5 s. Measured as the child's CPU time (user + system), which
    equals wall time on an idle machine but, unlike wall time, does not grow when the other test worker is busy."""
    import resource

    cpu_times, wall_times = [], []
    for _ in range(5):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "clsctl", "--help"], capture_output=True, check=True)
        wall_times.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu_times.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    if statistics.median(cpu_times) >= 0.5:  # say how slow this machine is: Python's own start-up, for scale
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run([sys.executable, "-c", "import typer.rich_utils"], capture_output=True, check=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        floor = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
        pytest.fail(f"clsctl --help CPU times {cpu_times}; importing Typer's help renderer alone: {floor:.3f} s")
    assert statistics.median(wall_times) < 3.0, wall_times  # sanity bound for a loaded CI machine
