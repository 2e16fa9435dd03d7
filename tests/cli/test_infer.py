"""clsctl infer."""

import json
from pathlib import Path

from typer.testing import CliRunner

from clsctl.cli.main import app

from helpers import write_image_folder


def test_infer_prints_topk_rows(runner: CliRunner, trained_checkpoint: Path, tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "imgs", per_class=1)
    result = runner.invoke(app, ["infer", str(root / "red" / "0.png"), str(root / "blue"), "-c",
                                 str(trained_checkpoint), "--topk", "2"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].endswith("red/0.png")
    assert lines[1].startswith("  0: class = ") and "with probability = " in lines[1] and lines[1].endswith(" %")
    assert lines[2].startswith("  1: class = ")
    assert sum(line.startswith("  0: ") for line in lines) == 2


def test_infer_json_and_model_name(runner: CliRunner, tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "imgs", per_class=1)
    result = runner.invoke(app, ["infer", str(root / "*" / "*.png"), "--model", "test_resnet", "--json", "-k", "3"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)  # the random-weights warning goes to stderr
    assert len(data) == 3 and len(data[0]["topk"]) == 3


def test_infer_argument_errors(runner: CliRunner, trained_checkpoint: Path, tmp_path: Path) -> None:
    image = write_image_folder(tmp_path / "imgs", per_class=1) / "red" / "0.png"
    weights_alone = runner.invoke(app, ["infer", str(image), "--weights", str(tmp_path / "w.pt")])
    assert weights_alone.exit_code == 2 and "--weights needs --model NAME" in weights_alone.output
    mixed = runner.invoke(app, ["infer", str(image), "-c", str(trained_checkpoint), "--pretrained"])
    assert mixed.exit_code == 2 and "go with --model" in mixed.output
    missing = runner.invoke(app, ["infer", str(tmp_path / "nope.png"), "-m", "test_resnet"])
    assert missing.exit_code == 2 and "image not found" in missing.output
    unknown = runner.invoke(app, ["infer", str(image), "-m", "resnet5O"])
    assert unknown.exit_code == 2 and "did you mean 'resnet50'" in unknown.output
