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


def _commands() -> list[tuple[str, object]]:
    import typer.main

    found = []
    stack = [("", typer.main.get_command(app))]
    while stack:
        prefix, group = stack.pop()
        for name, command in group.commands.items():  # type: ignore[attr-defined]
            if hasattr(command, "commands"):
                stack.append((f"{prefix}{name} ", command))
            else:
                found.append((prefix + name, command))
    return found


def test_one_flag_vocabulary() -> None:
    """-o is --out, -s is --set, old output spellings are hidden, and a recipe or model comes with --set/--device."""
    from clsctl.cli._multi_value import RENAMED_FLAGS

    commands = _commands()
    assert len(commands) > 20
    uses_recipe = {"train", "print-config", "vis-scheduler", "browse-dataset", "verify-dataset", "get-flops",
                   "flops", "benchmark", "analyze-results", "test"}
    runs_model = {"train", "test", "infer", "vis-cam", "cam", "get-flops", "flops", "benchmark"}
    for name, command in commands:
        flags = {flag for param in command.params for flag in (*param.opts, *param.secondary_opts)}
        for param in command.params:
            opts = set(param.opts)
            if "-o" in opts:
                assert "--out" in opts, (name, param.opts)
            if "-s" in opts or "--set" in opts:
                assert opts == {"-s", "--set"}, (name, param.opts)
            if "--out" in opts:
                assert "-o" in opts, (name, param.opts)
        assert not flags & set(RENAMED_FLAGS), name
        if name in uses_recipe:
            assert "--set" in flags, name
        if name in runs_model:
            assert "--device" in flags, name


def test_old_output_flag_still_works_but_is_not_shown(runner: CliRunner, tiny_recipe, tmp_path) -> None:
    result = runner.invoke(app, ["vis-scheduler", str(tiny_recipe), "-d", "8", "--save-path", str(tmp_path / "a.png")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "a.png").is_file()
    shown = runner.invoke(app, ["vis-scheduler", "--help"])
    assert "--out" in shown.output and "--save-path" not in shown.output


def test_user_errors_are_one_line_and_verbose_adds_the_traceback(runner: CliRunner, tmp_path) -> None:
    missing = tmp_path / "missing.yaml"
    plain = runner.invoke(app, ["print-config", str(missing)])
    assert plain.exit_code == 2 and plain.output.strip() == f"error: recipe file not found: {missing}"
    verbose = runner.invoke(app, ["-v", "print-config", str(missing)])
    assert verbose.exit_code == 2 and "Traceback" in verbose.output and "RecipeError" in verbose.output
    assert verbose.output.rstrip().endswith(f"error: recipe file not found: {missing}")
