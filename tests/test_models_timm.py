"""``timm/<name>`` models, against a fake ``timm`` module (timm itself is an optional extra)."""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from clsctl.errors import ClsctlError, UnknownNameError
from clsctl.models import create_model, model_info


@dataclass
class FakeCfg:
    input_size: tuple[int, int, int] = (3, 160, 160)
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.25, 0.25, 0.25)
    num_classes: int = 1000
    hf_hub_id: str = "timm/tiny_net.fake_in1k"
    url: str = ""
    classifier: str = "head"
    calls: list = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "calls"}


class TinyNet(nn.Module):
    def __init__(self, num_classes: int, drop_rate: float = 0.0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.head = nn.Linear(4, num_classes)
        self.drop_rate = drop_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x).mean((2, 3)))


@pytest.fixture
def fake_timm(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    module = types.ModuleType("timm")
    module.calls = []

    def create(name: str, pretrained: bool = False, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
        module.calls.append((name, pretrained, num_classes, dict(kwargs)))
        if pretrained and module.offline:
            raise OSError("cannot reach huggingface.co")
        kwargs.pop("pretrained_cfg_overlay", None)  # where timm would load the weights from
        return TinyNet(num_classes, **kwargs)

    module.offline = False
    module.create_model = create
    module.is_model = lambda name: name.split(".")[0] == "tiny_net"
    module.list_models = lambda pattern="*": ["tiny_net", "other_net"]
    module.get_pretrained_cfg = lambda name: FakeCfg()
    monkeypatch.setitem(sys.modules, "timm", module)
    return module


def test_missing_timm_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "timm", None)  # makes "import timm" raise ImportError
    with pytest.raises(ClsctlError, match=r"pip install clsctl\[timm\]"):
        create_model("timm/resnet50")
    with pytest.raises(ClsctlError, match=r"pip install clsctl\[timm\]"):
        model_info("timm/resnet50")


def test_meta_comes_from_pretrained_cfg(fake_timm: types.ModuleType) -> None:
    meta = model_info("timm/tiny_net.fake_in1k")
    assert meta.name == "timm/tiny_net.fake_in1k" and meta.family == "timm"
    assert meta.input_size == (160, 160) and meta.mean == (0.5, 0.5, 0.5) and meta.std == (0.25, 0.25, 0.25)
    assert meta.pretrained_url == "https://huggingface.co/timm/tiny_net.fake_in1k" and meta.has_pretrained
    assert meta.layout.classifier == "head" and meta.class_names == "imagenet-1k"


def test_create_passes_options_and_counts_parameters(fake_timm: types.ModuleType, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from hub_helpers import offline_cache, put_in_cache

    model = create_model("timm/tiny_net", num_classes=3, drop_rate=0.2)
    assert fake_timm.calls == [("tiny_net", False, 3, {"drop_rate": 0.2})]
    assert model.drop_rate == 0.2 and model(torch.randn(1, 3, 8, 8)).shape == (1, 3)
    assert model.model_meta.num_classes == 3 and model.model_meta.num_params == 3 * 4 * 9 + 4 + 4 * 3 + 3
    # Pretrained weights of an hf_hub_id come through huggingface_hub's cache; timm gets the file.
    snapshot = put_in_cache(offline_cache(tmp_path, monkeypatch), "timm/tiny_net.fake_in1k",
                            {"model.safetensors": b"weights"})
    create_model("timm/tiny_net", pretrained=True)
    assert fake_timm.calls[-1] == ("tiny_net", True, 1000,
                                   {"pretrained_cfg_overlay": {"file": str(snapshot / "model.safetensors")}})


def test_weights_file_loads_into_timm_model(fake_timm: types.ModuleType, tmp_path: Path) -> None:
    source = TinyNet(5)
    torch.save(source.state_dict(), tmp_path / "w.pth")
    model = create_model("timm/tiny_net", num_classes=5, weights=tmp_path / "w.pth")
    assert torch.equal(model.conv.weight, source.conv.weight)


def test_unknown_timm_name_and_offline_pretrained(fake_timm: types.ModuleType, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from hub_helpers import offline_cache

    with pytest.raises(UnknownNameError, match="unknown timm model 'tiny_nett'; did you mean 'tiny_net'"):
        create_model("timm/tiny_nett")
    cache = offline_cache(tmp_path, monkeypatch)
    with pytest.raises(ClsctlError, match=f"repo 'timm/tiny_net.fake_in1k' is not in the cache {cache}"):
        create_model("timm/tiny_net", pretrained=True)
    # Weights only at a URL: timm fetches them itself, and its failure becomes the same kind of one line.
    fake_timm.get_pretrained_cfg = lambda name: FakeCfg(hf_hub_id="", url="https://example.invalid/w.pth")
    fake_timm.offline = True
    with pytest.raises(ClsctlError, match="could not fetch timm's pretrained weights for 'tiny_net'"):
        create_model("timm/tiny_net", pretrained=True)
    create_model("timm/tiny_net")  # without pretrained weights nothing is fetched
