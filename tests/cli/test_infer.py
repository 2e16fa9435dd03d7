"""clsctl infer."""

import json
from pathlib import Path

import pytest
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


def test_without_checkpoint_or_model_imagenet_weights_from_the_hub_cache(
        runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from clsctl.data.imagenet_classes import imagenet_class_names
    from torch_hub_helpers import stand_in_default_model

    cached = stand_in_default_model(monkeypatch, tmp_path)
    image = write_image_folder(tmp_path / "imgs", per_class=1) / "red" / "0.png"
    result = runner.invoke(app, ["infer", str(image), "--json", "-k", "2"])
    assert result.exit_code == 0, result.output
    assert "using shufflenet_v2_x0_5 with its ImageNet weights" in result.output and str(cached) in result.output
    top = json.loads(result.stdout)[0]["topk"]
    assert len(top) == 2 and all(entry["name"] in imagenet_class_names() for entry in top)


def test_the_real_default_is_torchvisions_resnet50_in_the_hub_cache(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from torchvision.models import ResNet50_Weights

    from clsctl.engine.loading import DEFAULT_MODEL
    from clsctl.models import model_info
    from clsctl.models.weights import hub_cache_path
    from torch_hub_helpers import empty_hub_cache

    hub = empty_hub_cache(monkeypatch, tmp_path)
    url = model_info(DEFAULT_MODEL).pretrained_url
    assert DEFAULT_MODEL == "resnet50" and url == ResNet50_Weights.IMAGENET1K_V1.url
    assert hub_cache_path(url) == hub / "checkpoints" / "resnet50-0676ba61.pth"


@pytest.mark.parametrize("model, hint", [("test_resnet", "no published weights"),
                                         ("shufflenet_v2_x0_5", "add --pretrained")])
def test_model_without_weights_warns(runner: CliRunner, tmp_path: Path, model: str, hint: str) -> None:
    image = write_image_folder(tmp_path / "imgs", per_class=1) / "red" / "0.png"
    result = runner.invoke(app, ["infer", str(image), "-m", model])
    assert result.exit_code == 0, result.output
    assert f"{model} has random weights" in result.output and hint in result.output
    import torch

    from clsctl.models import create_model

    torch_file = tmp_path / "w.pt"
    torch.save(create_model(model).state_dict(), torch_file)
    quiet = runner.invoke(app, ["infer", str(image), "-m", model, "--weights", str(torch_file)])
    assert quiet.exit_code == 0 and "random weights" not in quiet.output
