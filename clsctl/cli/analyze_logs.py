"""``clsctl analyze-logs plot-curve | cal-train-time``."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from clsctl.cli._multi_value import ClsctlCommand, MultiValueCommand
from clsctl.cli._render import console, handle_errors

analyze_app = typer.Typer(help="Curves and training-time statistics from metrics.jsonl files.", no_args_is_help=True)

LogsArg = Annotated[list[Path], typer.Argument(help="metrics.jsonl files (or run folders).", show_default=False)]


def _split(values: list[str] | None) -> list[str] | None:
    return [part for value in values for part in value.split(",") if part] if values else None


@analyze_app.command("plot-curve", cls=MultiValueCommand)
@handle_errors
def plot_curve_command(
    logs: LogsArg,
    keys: Annotated[Optional[list[str]], typer.Option(
        "--keys", help="Keys to plot, one or more (default: loss).", show_default=False)] = None,
    legend: Annotated[Optional[list[str]], typer.Option(
        "--legend", help="One label per log and key, in that order.", show_default=False)] = None,
    title: Annotated[Optional[str], typer.Option("--title", help="Figure title.")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG to write.")] = Path("curve.png"),
    style: Annotated[Optional[str], typer.Option("--style", help="Matplotlib style, e.g. ggplot.")] = None,
    window_size: Annotated[str, typer.Option("--window-size", help="Figure size WxH in inches.")] = "12x7",
) -> None:
    """Plot metrics (loss, lr, accuracy/top1, ...) of one or more runs against the iteration."""
    from clsctl.analysis.logs import parse_window_size, plot_curves

    path = plot_curves(logs, out, keys=_split(keys) or ["loss"], legend=legend, title=title, style=style,
                       window_size=parse_window_size(window_size))
    console.print(f"saved {path}", highlight=False)


@analyze_app.command("cal-train-time", cls=ClsctlCommand)
@handle_errors
def cal_train_time_command(
    logs: LogsArg,
    include_outliers: Annotated[bool, typer.Option(
        "--include-outliers", help="Keep the first record of each epoch (data-loader start-up).")] = False,
) -> None:
    """Slowest and fastest epoch, std over epochs and average iteration time of each run."""
    from clsctl.analysis.logs import train_time

    for log in logs:
        stats = train_time(log, include_outliers=include_outliers)
        slow = stats.epochs.index(stats.slowest_epoch)
        fast = stats.epochs.index(stats.fastest_epoch)
        console.print(f"[bold]{log}[/]", highlight=False)
        console.print(f"  slowest epoch {stats.slowest_epoch}, average time {stats.epoch_iter_time[slow]:.4f} s/iter",
                      highlight=False)
        console.print(f"  fastest epoch {stats.fastest_epoch}, average time {stats.epoch_iter_time[fast]:.4f} s/iter",
                      highlight=False)
        console.print(f"  time std over epochs: {stats.std_over_epochs:.4f} s/iter", highlight=False)
        console.print(f"  average iteration time: {stats.average_iter_time:.4f} s/iter "
                      f"({stats.iterations} iterations; "
                      + ("first record of each epoch kept)" if include_outliers else
                         f"{stats.excluded_records} first-of-epoch records excluded)"), highlight=False)
        console.print(f"  training time per epoch: {', '.join(f'{t:.1f}s' for t in stats.epoch_time)}",
                      highlight=False)
