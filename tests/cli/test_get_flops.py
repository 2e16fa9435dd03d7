"""clsctl get-flops / flops."""

from pathlib import Path

from typer.testing import CliRunner

from clsctl.cli.main import app


def test_flops_of_a_model_name(runner: CliRunner) -> None:
    result = runner.invoke(app, ["flops", "test-resnet"])
    assert result.exit_code == 0, result.output
    assert "input shape: (1, 3, 32, 32)" in result.output
    assert "flops:       4.25M (4,247,168)" in result.output
    assert "params:      78.00K (78,002)" in result.output
    assert "activations:" in result.output
    assert "one fused multiply-add = one FLOP (fvcore / model-zoo convention)" in result.output
    assert "not counted: aten::add x4" in result.output


def test_shape_spellings_give_the_same_count(runner: CliRunner) -> None:
    outputs = []
    for args in (["--shape", "64", "48"], ["--shape", "64", "--shape", "48"], ["--shape", "64x48"]):
        result = runner.invoke(app, ["get-flops", "test_resnet", *args])
        assert result.exit_code == 0, result.output
        assert "input shape: (1, 3, 64, 48)" in result.output
        outputs.append(result.output)
    assert outputs[0] == outputs[1] == outputs[2]
    square = runner.invoke(app, ["flops", "test_resnet", "--shape", "64"])
    assert "input shape: (1, 3, 64, 64)" in square.output


def test_table_and_depth(runner: CliRunner) -> None:
    result = runner.invoke(app, ["flops", "test_resnet", "--table", "--depth", "1"])
    assert result.exit_code == 0, result.output
    assert "| layer1.0 " in result.output and "layer1.0.conv1" not in result.output
    deeper = runner.invoke(app, ["flops", "test_resnet", "--table", "--depth", "2"])
    assert "layer1.0.conv1" in deeper.output


def test_recipe_and_checkpoint(runner: CliRunner, tiny_recipe: Path, trained_checkpoint: Path) -> None:
    for source in (tiny_recipe, trained_checkpoint):
        result = runner.invoke(app, ["flops", str(source)])
        assert result.exit_code == 0, result.output
        assert "model:       test_resnet" in result.output


def test_errors(runner: CliRunner) -> None:
    unknown = runner.invoke(app, ["flops", "resnet5"])
    assert unknown.exit_code == 2 and "resnet50" in unknown.output  # suggestion
    bad = runner.invoke(app, ["flops", "test_resnet", "--shape", "big"])
    assert bad.exit_code == 2
    two = runner.invoke(app, ["flops", "test_resnet", "test_vit"])
    assert two.exit_code == 2 and "give one model name" in two.output
    assert "flops" not in runner.invoke(app, ["--help"]).output.replace("get-flops", "")
