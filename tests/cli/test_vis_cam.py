"""clsctl vis-cam / cam."""

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from analysis_helpers import assert_picture, differ
from clsctl.cli.main import app
from helpers import write_image_folder


@pytest.fixture()
def image(tmp_path: Path) -> Path:
    return write_image_folder(tmp_path / "imgs", per_class=1) / "red" / "0.png"


def test_checkpoint_with_every_flag(runner: CliRunner, trained_checkpoint: Path, image: Path, tmp_path: Path) -> None:
    out = tmp_path / "cam.png"
    result = runner.invoke(app, ["cam", str(image), "--checkpoint", str(trained_checkpoint), "--method", "gradcam++",
                                 "--target-layers", "layer3", "layer4", "--target-category", "green", "--aug-smooth",
                                 "--eigen-smooth", "-o", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "GradCAM++ of green at layer3, layer4" in result.output
    first = assert_picture(out, 448, 224)
    default = runner.invoke(app, ["vis-cam", str(image), "-c", str(trained_checkpoint), "--save-path",
                                  str(tmp_path / "d.png")])
    assert default.exit_code == 0, default.output
    assert "GradCAM of" in default.output and "at layer4" in default.output
    assert differ(first, assert_picture(tmp_path / "d.png"))


@pytest.mark.parametrize("model", ["test_resnet", "test_vit", "test_swin"])
def test_models_need_only_the_method(runner: CliRunner, model: str, image: Path, tmp_path: Path) -> None:
    import torch

    from clsctl.models import create_model

    torch.manual_seed(0)
    net = create_model(model)
    for module in net.modules():  # give the zero-initialised ViT head some weight
        if isinstance(module, torch.nn.Linear) and not module.weight.any():
            torch.nn.init.normal_(module.weight, std=0.5)
    torch.save(net.state_dict(), tmp_path / "w.pt")
    result = runner.invoke(app, ["cam", str(image), "--model", model, "--weights", str(tmp_path / "w.pt"),
                                 "--method", "EigenCAM", "-o", str(tmp_path / "c.png")])
    assert result.exit_code == 0, result.output
    pixels = assert_picture(tmp_path / "c.png", 448, 224)
    assert np.ptp(pixels[-224:, -224:].astype(int)) > 50  # the overlay has a colour map on it


def test_preview_model_lists_layers(runner: CliRunner) -> None:
    result = runner.invoke(app, ["cam", "--preview-model", "--model", "test_vit"])
    assert result.exit_code == 0, result.output
    assert "encoder.layers.encoder_layer_1.ln_1" in result.output and "LayerNorm" in result.output


def test_errors(runner: CliRunner, image: Path, trained_checkpoint: Path) -> None:
    both = runner.invoke(app, ["cam", str(image), "-c", str(trained_checkpoint), "-m", "test_resnet"])
    assert both.exit_code == 2 and "give --checkpoint or --model, not both" in both.output
    no_image = runner.invoke(app, ["cam", "--model", "test_resnet"])
    assert no_image.exit_code == 2 and "give an image" in no_image.output
    method = runner.invoke(app, ["cam", str(image), "--model", "test_resnet", "--method", "cam3000"])
    assert method.exit_code == 2 and "Invalid value" in method.output and "'cam3000'" in method.output
    layer = runner.invoke(app, ["cam", str(image), "-c", str(trained_checkpoint), "--target-layers", "layer9"])
    assert layer.exit_code == 2 and "no layer 'layer9'" in layer.output
    mixed = runner.invoke(app, ["cam", str(image), "-c", str(trained_checkpoint), "--pretrained"])
    assert mixed.exit_code == 2


def test_without_checkpoint_or_model_imagenet_weights_from_the_hub_cache(
        runner: CliRunner, image: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from clsctl.data.imagenet_classes import imagenet_class_names
    from torch_hub_helpers import stand_in_default_model

    cached = stand_in_default_model(monkeypatch, tmp_path)
    result = runner.invoke(app, ["cam", str(image), "--method", "EigenCAM", "-o", str(tmp_path / "c.png")])
    assert result.exit_code == 0, result.output
    assert "using shufflenet_v2_x0_5 with its ImageNet weights" in result.output and str(cached) in result.output
    predicted = result.stdout.split("predicted ", 1)[1].split(" (")[0]
    assert predicted in imagenet_class_names()
    assert "at conv5" in result.output and "random weights" not in result.output
    assert_picture(tmp_path / "c.png", 448, 224)


def test_default_model_offline_without_the_cached_file(runner: CliRunner, image: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from clsctl.models import model_info
    from torch_hub_helpers import stand_in_default_model

    cached = stand_in_default_model(monkeypatch, tmp_path)
    cached.unlink()
    result = runner.invoke(app, ["cam", str(image)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    error = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and result.output.rstrip().endswith(error[0])
    assert model_info("shufflenet_v2_x0_5").pretrained_url in error[0] and str(cached) in error[0]


def test_model_without_weights_warns(runner: CliRunner, image: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["cam", str(image), "-m", "test_resnet", "-o", str(tmp_path / "c.png")])
    assert result.exit_code == 0, result.output
    assert "test_resnet has random weights" in result.output and "no published weights" in result.output
