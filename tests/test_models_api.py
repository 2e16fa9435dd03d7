"""The model API: lookup, suggestions, duplicates, list_models filters, pretrained weights offline."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from urllib.error import URLError

import pytest
import torch
import torchvision

from clsctl.errors import ClsctlError, UnknownNameError
from clsctl.models import create_model, list_models, model_info, register_model


def test_names_ignore_case_and_separators() -> None:
    assert model_info("ConvNeXt-Tiny").name == "convnext_tiny"
    assert model_info("mobileone-s0").name == "mobileone_s0"
    assert model_info("regnet_x_1.6gf").num_params == 9_190_136
    assert model_info("regnet-x-16gf").num_params == 54_278_536  # not confused with 1.6GF


def test_unknown_names_raise_with_suggestions() -> None:
    with pytest.raises(UnknownNameError, match="did you mean 'repvgg_b1g4'"):
        model_info("repvgg_b1g5")
    with pytest.raises(UnknownNameError, match="unknown model 'efficentnet_b0'; did you mean 'efficientnet_b0'"):
        create_model("efficentnet_b0")


def test_duplicate_registration_raises() -> None:
    with pytest.raises(ValueError, match="already registered"):
        @register_model(family="x", name="Swin-Tiny")
        def _again(*, num_classes: int = 1000) -> torch.nn.Module:
            return torch.nn.Identity()


def test_list_models_patterns_and_filters() -> None:
    assert list_models("repvgg_b1*") == ["repvgg_b1", "repvgg_b1g2", "repvgg_b1g4"]
    assert list_models("swin") == ["swin_base", "swin_small", "swin_tiny", "swin_v2_base", "swin_v2_small",
                                   "swin_v2_tiny", "test_swin"]
    assert list_models("efficientnet_b?") == [f"efficientnet_b{i}" for i in range(8)]
    assert list_models("vgg*") == ["vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19",
                                   "vgg19_bn"]
    reparam = list_models(reparameterizable=True)
    assert "repvgg_a0" in reparam and "mobileone_s4" in reparam and "resnet50" not in reparam
    pretrained = list_models(pretrained=True)
    assert "vit_b_16" in pretrained and "deit_tiny" not in pretrained and "repvgg_a0" not in pretrained
    assert list_models("mobileone*", pretrained=True) == []


def _tv_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # torch.hub's cache: <TORCH_HOME>/hub/checkpoints
    return tmp_path / "torch" / "hub" / "checkpoints"


def test_pretrained_loads_from_torch_home_without_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = _tv_cache(tmp_path, monkeypatch)
    cache.mkdir(parents=True)
    reference = torchvision.models.mobilenet_v3_small().eval()
    url = model_info("mobilenet_v3_small").pretrained_url
    torch.save(reference.state_dict(), cache / url.rsplit("/", 1)[1])
    model = create_model("mobilenet-v3-small", pretrained=True).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), reference(x))
    other = create_model("mobilenet_v3_small", pretrained=True, num_classes=3)  # head re-initialised
    assert torch.equal(other.features[0][0].weight, reference.features[0][0].weight)
    assert other.classifier[3].out_features == 3


def test_offline_pretrained_error_says_what_to_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = _tv_cache(tmp_path, monkeypatch)

    def offline(*args: object, **kwargs: object) -> None:
        raise URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(ClsctlError) as info:
        create_model("convnext_tiny", pretrained=True)
    message = str(info.value)
    assert "https://download.pytorch.org/models/convnext_tiny-983f1562.pth" in message
    assert str(cache / "convnext_tiny-983f1562.pth") in message


def test_no_published_weights_is_a_clear_error() -> None:
    with pytest.raises(ClsctlError, match="no published pretrained weights"):
        create_model("test_mobileone", pretrained=True)


def test_registration_does_not_import_torchvision() -> None:
    code = "import sys, clsctl.models as m; assert len(m.MODELS) > 100; assert 'torchvision' not in sys.modules"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_name_prefixes_route_create_and_info(monkeypatch: pytest.MonkeyPatch) -> None:
    from clsctl.models import _factory

    assert {"timm/", "hf-hub:"} <= set(_factory.PREFIXES)  # registered by importing clsctl.models
    built = []

    def create(name: str, pretrained: bool, num_classes: int | None, **kwargs: object) -> torch.nn.Module:
        built.append((name, pretrained, num_classes, kwargs))
        return torch.nn.Linear(2, num_classes or 1)

    meta = model_info("test_resnet")
    monkeypatch.setitem(_factory.PREFIXES, "fake:", _factory.NamePrefix("fake:", create, lambda name: meta))
    model = create_model(" Fake:net", pretrained=True, num_classes=3, drop_rate=0.1)
    assert model.out_features == 3 and built == [(" Fake:net", True, 3, {"weights": None, "drop_rate": 0.1})]
    assert model_info("FAKE:net") is meta
    with pytest.raises(UnknownNameError):
        model_info("fakenet")  # not the prefix
