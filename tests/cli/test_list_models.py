"""clsctl list-models."""

from typer.testing import CliRunner

from clsctl.cli.main import app


def test_list_models_table(runner: CliRunner) -> None:
    result = runner.invoke(app, ["list-models", "resnet*"])
    assert result.exit_code == 0, result.output
    assert "resnet50" in result.output and "25.56M" in result.output and "224x224" in result.output
    assert "test_resnet" not in result.output
    assert result.output.index("resnet18") < result.output.index("resnet101")


def test_list_models_filters(runner: CliRunner) -> None:
    result = runner.invoke(app, ["list-models", "--pretrained"])
    assert result.exit_code == 0 and "resnet50" in result.output and "test_resnet" not in result.output
    empty = runner.invoke(app, ["list-models", "no-such-model-family"])
    assert empty.exit_code == 0 and "0 models" in empty.output
