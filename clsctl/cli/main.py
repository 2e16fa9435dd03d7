"""The ``clsctl`` Typer app. Command modules import torch only inside their functions."""

from typing import Annotated, Optional

import typer

from clsctl import __version__
from clsctl.cli import infer, list_models, prepare, recipes, test, train
from clsctl.cli import eval_metric
from clsctl.cli import benchmark, export, reparameterize
from clsctl.cli import analyze_logs, analyze_results, browse_dataset, confusion_matrix, get_flops  # inspection
from clsctl.cli import verify_dataset, vis_cam, vis_scheduler  # inspection
from clsctl.cli import dataset_doctor, report  # inspection
from clsctl.cli._multi_value import ClsctlCommand, MultiValueCommand
from clsctl.cli._render import setup_logging

RUN, INSPECT, DATA, CONVERT = "Run", "Inspect", "Data and recipes", "Convert"

app = typer.Typer(
    name="clsctl",
    help="Train, evaluate and inspect image classifiers in PyTorch.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"clsctl {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        Optional[bool], typer.Option("--version", "-V", callback=_version, is_eager=True, help="Print the version.")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug messages.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Warnings and errors only.")] = False,
) -> None:
    """Train, evaluate and inspect image classifiers in PyTorch."""
    setup_logging(verbose=verbose, quiet=quiet)


app.command("train", cls=ClsctlCommand, rich_help_panel=RUN)(train.train_command)
app.command("test", cls=ClsctlCommand, rich_help_panel=RUN)(test.test_command)
app.command("eval-metric", cls=ClsctlCommand, rich_help_panel=RUN)(eval_metric.eval_metric_command)
app.command("infer", cls=ClsctlCommand, rich_help_panel=RUN)(infer.infer_command)
app.command("list-models", cls=ClsctlCommand, rich_help_panel=INSPECT)(list_models.list_models_command)
app.command("browse-dataset", cls=ClsctlCommand, rich_help_panel=INSPECT)(browse_dataset.browse_dataset_command)
app.command("vis-scheduler", cls=ClsctlCommand, rich_help_panel=INSPECT)(vis_scheduler.vis_scheduler_command)
app.command("vis-cam", cls=MultiValueCommand, rich_help_panel=INSPECT)(vis_cam.vis_cam_command)
app.command("cam", cls=MultiValueCommand, hidden=True)(vis_cam.vis_cam_command)
app.add_typer(analyze_logs.analyze_app, name="analyze-logs", rich_help_panel=INSPECT)
app.command("get-flops", cls=MultiValueCommand, rich_help_panel=INSPECT)(get_flops.get_flops_command)
app.command("flops", cls=MultiValueCommand, hidden=True)(get_flops.get_flops_command)
app.command("verify-dataset", cls=ClsctlCommand, rich_help_panel=INSPECT)(verify_dataset.verify_dataset_command)
app.command("report", cls=ClsctlCommand, rich_help_panel=INSPECT)(report.report_command)
app.command("dataset-doctor", cls=MultiValueCommand, rich_help_panel=INSPECT)(dataset_doctor.dataset_doctor_command)
app.command("analyze-results", cls=ClsctlCommand, rich_help_panel=INSPECT)(analyze_results.analyze_results_command)
app.command("confusion-matrix", cls=MultiValueCommand,
            rich_help_panel=INSPECT)(confusion_matrix.confusion_matrix_command)
app.command("prepare-data", cls=ClsctlCommand, rich_help_panel=DATA)(prepare.prepare_data_command)
app.command("print-config", cls=ClsctlCommand, rich_help_panel=DATA)(recipes.print_config_command)
app.command("recipe-schema", cls=ClsctlCommand, rich_help_panel=DATA)(recipes.recipe_schema_command)
app.command("reparameterize", cls=ClsctlCommand, rich_help_panel=CONVERT)(reparameterize.reparameterize_command)
app.command("export", cls=ClsctlCommand, rich_help_panel=CONVERT)(export.export_command)
app.command("benchmark", cls=MultiValueCommand, rich_help_panel=CONVERT)(benchmark.benchmark_command)


def run() -> None:
    """Console-script entry point."""
    app()
