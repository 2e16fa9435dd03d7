"""Shared rendering: error messages, metric tables, logging set-up. No torch here."""

import functools
import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from clsctl.errors import ClsctlError

console = Console(soft_wrap=True)  # long paths stay on one line (pipes, logs, tests)
err_console = Console(stderr=True, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., Any])


def print_error(error: ClsctlError) -> None:
    """Print a user error: its message and one line per detail, in red, on stderr."""
    err_console.print(f"[bold red]error:[/] {error.message}", markup=True, highlight=False, soft_wrap=True)
    for line in error.details:
        err_console.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)


def handle_errors(fn: F) -> F:
    """Render :class:`ClsctlError` without a traceback (with one under ``-v``) and exit with its code; let bugs
    raise."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ClsctlError as error:
            if logging.getLogger("clsctl").isEnabledFor(logging.DEBUG):
                import traceback

                err_console.print(traceback.format_exc().rstrip(), markup=False, highlight=False)
            print_error(error)
            raise typer.Exit(error.exit_code) from None

    return wrapper  # type: ignore[return-value]


def setup_logging(verbose: bool = False, quiet: bool = False) -> None:
    """Route the ``clsctl`` logger to stderr: through rich on a terminal, plain lines otherwise (no wrapping)."""
    import sys

    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logger = logging.getLogger("clsctl")
    logger.handlers.clear()
    handler: logging.Handler
    if err_console.is_terminal:
        from rich.logging import RichHandler

        handler = RichHandler(console=err_console, show_time=False, show_path=False, markup=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


def metrics_table(metrics: Mapping[str, float], title: str = "metrics") -> Table:
    """Two-column table of named numbers."""
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in metrics.items():
        table.add_row(name, f"{value:.4f}" if isinstance(value, float) else str(value))
    return table


def per_class_table(class_names: list[str], per_class: Mapping[str, Any]) -> Table:
    """Precision/recall/F1/support per class."""
    table = Table(title="per class")
    for column in ("class", "precision", "recall", "f1", "support"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for index, name in enumerate(class_names):
        table.add_row(name, f"{per_class['precision'][index]:.2f}", f"{per_class['recall'][index]:.2f}",
                      f"{per_class['f1'][index]:.2f}", str(per_class["support"][index]))
    return table


def human_count(value: float | None, unit: str = "") -> str:
    """``25557032`` -> ``25.56M``."""
    if value is None:
        return "-"
    for threshold, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= threshold:
            return f"{value / threshold:.2f}{suffix}{unit}"
    return f"{value:.0f}{unit}"
