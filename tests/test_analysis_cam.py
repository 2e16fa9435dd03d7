"""Tests of clsctl.analysis.cam."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from analysis_helpers import assert_picture, differ
from clsctl.analysis.cam import METHOD_NAMES, class_index, list_layers, method_class, visualize_cam
from clsctl.errors import ClsctlError
from helpers import write_image_folder


@pytest.fixture(scope="module")
def red_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An image of the fixtures' "red" class."""
    root = write_image_folder(tmp_path_factory.mktemp("cam"), per_class=1)
    return root / "red" / "0.png"


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Red left half, blue right half, a green square: structure for the maps to pick out (on a uniform picture
    every token looks alike and an untrained ViT's map is flat)."""
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 90, (32, 32, 3))
    pixels[:, :16, 0] += 150
    pixels[:, 16:, 2] += 150
    pixels[8:20, 8:20, 1] += 150
    path = tmp_path_factory.mktemp("cam") / "mixed.png"
    Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def vit_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """test_vit weights with a non-zero classifier (torchvision zero-initialises it, which makes every
    gradient-based map zero)."""
    import torch

    from clsctl.models import create_model

    torch.manual_seed(0)
    model = create_model("test_vit")
    torch.nn.init.normal_(model.heads.head.weight, std=0.5)
    path = tmp_path_factory.mktemp("vit") / "vit.pt"
    torch.save(model.state_dict(), path)
    return path


def test_checkpoint_gradcam(trained_checkpoint: Path, red_image: Path, tmp_path: Path) -> None:
    image = red_image
    result = visualize_cam(image, checkpoint=trained_checkpoint, save_path=tmp_path / "cam.png")
    assert result.target_layers == ["layer4"]
    assert result.predicted_name in ("red", "green", "blue") and result.target == result.predicted
    assert result.cam.shape == (32, 32) and result.cam.max() > 0.5 and result.warning is None
    pixels = assert_picture(result.save_path, 2 * 224, 224)
    # Two 224-pixel panels side by side: the left one is the (enlarged) picture, mostly red.
    left = pixels[-224:, :224].astype(int)
    assert (left[..., 0] > left[..., 2]).mean() > 0.9
    # Explaining another class gives another map and another picture.
    other = visualize_cam(image, checkpoint=trained_checkpoint, target_category="blue", save_path=tmp_path / "b.png")
    assert other.target_name == "blue"
    assert differ(pixels, assert_picture(other.save_path))
    assert not np.allclose(result.cam, other.cam)


# ScoreCAM and AblationCAM run one forward pass per channel: slower.
@pytest.mark.parametrize("method", [pytest.param(m, marks=pytest.mark.slow) if m in ("ScoreCAM", "AblationCAM") else m
                                    for m in METHOD_NAMES])
def test_every_method_on_cnn_vit_and_swin(method: str, image: Path, vit_weights: Path, tmp_path: Path) -> None:
    maps = {}
    for name, weights in (("test_resnet", None), ("test_vit", vit_weights), ("test_swin", None)):
        result = visualize_cam(image, model=name, weights=weights, method=method.lower(),
                               save_path=tmp_path / f"{name}.png")
        assert result.cam.shape == (32, 32)
        assert np.isfinite(result.cam).all() and result.cam.max() > 0, (name, method)
        assert_picture(result.save_path, 448, 224)
        maps[name] = result.cam
    assert result.target_layers == ["norm"]  # Swin's final norm, NHWC maps


def test_smoothing_changes_the_map(image: Path, tmp_path: Path) -> None:
    plain = visualize_cam(image, model="test_resnet", method="EigenGradCAM", save_path=tmp_path / "a.png").cam
    eigen = visualize_cam(image, model="test_resnet", method="EigenGradCAM", eigen_smooth=True,
                          save_path=tmp_path / "b.png").cam
    aug = visualize_cam(image, model="test_resnet", method="GradCAM", aug_smooth=True, save_path=tmp_path / "c.png")
    assert aug.cam.shape == (32, 32)
    assert not np.allclose(plain, eigen) or not np.allclose(plain, aug.cam)


def test_target_layers_and_preview(image: Path, tmp_path: Path) -> None:
    from clsctl.models import create_model

    layers = dict(list_layers(create_model("test_resnet")))
    assert layers["layer3"] == "Sequential" and layers["layer4.0.conv1"] == "Conv2d"
    a = visualize_cam(image, model="test_resnet", target_layers=["layer3"], save_path=tmp_path / "a.png")
    b = visualize_cam(image, model="test_resnet", target_layers=["layer3", "layer4"], save_path=tmp_path / "b.png")
    assert a.target_layers == ["layer3"] and b.target_layers == ["layer3", "layer4"]
    assert not np.allclose(a.cam, b.cam)
    with pytest.raises(ClsctlError, match="did you mean layer4"):
        visualize_cam(image, model="test_resnet", target_layers=["layer44"], save_path=tmp_path / "c.png")


def test_zero_map_warns(image: Path, tmp_path: Path) -> None:
    result = visualize_cam(image, model="test_vit", save_path=tmp_path / "z.png")  # zero-initialised head
    assert_picture(result.save_path)  # still written: the overlay is the picture under a flat colour map
    assert result.warning is not None and "zero everywhere" in result.warning


def test_names_and_errors(image: Path, tmp_path: Path) -> None:
    assert method_class("gradcam++").__name__ == "GradCAMPlusPlus"
    assert method_class("GRADCAMPLUSPLUS").__name__ == "GradCAMPlusPlus"
    assert method_class("ablation-cam").__name__ == "AblationCAM"
    with pytest.raises(ClsctlError, match="unknown CAM method"):
        method_class("fancycam")
    names = ["red", "Green", "blue"]
    assert class_index("green", names) == 1 and class_index("2", names) == 2 and class_index(None, names) is None
    with pytest.raises(ClsctlError, match="out of range"):
        class_index(3, names)
    with pytest.raises(ClsctlError, match="did you mean"):
        class_index("gren", names)
    with pytest.raises(ClsctlError, match="image not found"):
        visualize_cam(tmp_path / "none.png", model="test_resnet")
    with pytest.raises(ClsctlError, match="not both"):
        visualize_cam(image, checkpoint=tmp_path / "a.pt", model="test_resnet")


def _found_layer(net: object, size: tuple[int, int]) -> tuple[str, tuple[int, ...]]:
    import torch

    from clsctl.analysis.cam import find_cam_layer, record_outputs

    with torch.no_grad():
        _, outputs, order = record_outputs(net.eval(), torch.zeros(1, 3, *size))  # type: ignore[attr-defined]
    name = find_cam_layer(order)
    return name, outputs[name].shape


@pytest.mark.parametrize("name", ["test_resnet", "test_repvgg", "test_mobileone", "resnet20_cifar",
                                  "test_vit"])
def test_found_layer_is_the_familys_cam_layer(name: str) -> None:
    """The hook-based search recomputes the families' cam_layer metadata (CNN stages, a ViT's last ln_1)."""
    from clsctl.models import create_model, model_info

    meta = model_info(name)
    assert _found_layer(create_model(name), meta.input_size)[0] == meta.layout.cam_layer


@pytest.mark.parametrize("arch, kwargs, layer, shape", [
    ("resnet10t", {}, "layer4", (1, 512, 2, 2)),
    ("convnext_atto", {}, "norm_pre", (1, 320, 2, 2)),  # the head's LayerNorm after pooling is not a feature map
    ("vit_tiny_patch16_224", {"img_size": 64, "depth": 2}, "blocks.1.norm1", (1, 17, 192)),
    ("deit_tiny_distilled_patch16_224", {"img_size": 64, "depth": 2}, "blocks.1.norm1", (1, 18, 192)),
])
def test_found_layer_of_timm_models(arch: str, kwargs: dict, layer: str, shape: tuple[int, ...]) -> None:
    timm = pytest.importorskip("timm")

    assert _found_layer(timm.create_model(arch, pretrained=False, **kwargs), (64, 64)) == (layer, shape)


def test_token_layout_and_reshape_come_from_the_shapes() -> None:
    import torch

    from clsctl.analysis.cam import reshape_for, token_layout

    assert token_layout(197, 224, 224) == (1, 14, 14)  # ViT: class token
    assert token_layout(198, 224, 224) == (2, 14, 14)  # DeiT distilled: class and distillation tokens
    assert token_layout(49, 224, 224) == (0, 7, 7)  # Swin: no extra token
    assert token_layout(1 + 8 * 12, 128, 192) == (1, 8, 12)  # the input's aspect ratio
    with pytest.raises(ClsctlError, match="do not form a patch grid"):
        token_layout(10, 32, 32, max_extra=0)
    assert reshape_for((1, 768, 7, 7), 224, 224) == ("nchw", None)
    kind, permute = reshape_for((1, 7, 7, 768), 224, 224)
    assert kind == "nhwc" and permute(torch.zeros(1, 7, 7, 768)).shape == (1, 768, 7, 7)
    kind, tokens = reshape_for((2, 17, 32), 32, 32)
    grid = tokens(torch.arange(2 * 17 * 32, dtype=torch.float32).reshape(2, 17, 32))
    assert kind == "tokens" and grid.shape == (2, 32, 4, 4)
    assert grid[0, :, 0, 0].tolist() == list(range(32, 64))  # first patch token, class token dropped
    with pytest.raises(ClsctlError, match="no feature map"):
        reshape_for((1, 10), 32, 32)


@pytest.mark.slow  # builds a timm ResNet and explains a 224x224 input: about 5 s of CPU
def test_timm_model_needs_no_target_layers(image: Path, tmp_path: Path) -> None:
    pytest.importorskip("timm")
    result = visualize_cam(image, model="timm/resnet10t", method="EigenCAM", save_path=tmp_path / "t.png")
    assert result.target_layers == ["layer4"] and result.cam.max() > 0
