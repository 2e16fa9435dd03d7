"""torchvision-format state dicts load into the matching clsctl models and reproduce torchvision's outputs."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torchvision
from torch import nn

from clsctl.models import create_model, model_info


def randomize_bn(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 1.5)


CASES = [  # (clsctl name, torchvision constructor, constructor kwargs, input size)
    ("resnet50", "resnet50", {}, 64),
    ("resnext50_32x4d", "resnext50_32x4d", {}, 64),
    ("mobilenet_v3_small", "mobilenet_v3_small", {}, 64),
    ("efficientnet_b0", "efficientnet_b0", {}, 64),
    ("convnext_tiny", "convnext_tiny", {}, 64),
    ("vit_b_16", "vit_b_16", {"image_size": 32}, 32),  # a 2x2 patch grid keeps it fast
    ("swin_tiny", "swin_t", {}, 64),
    ("regnet_y_400mf", "regnet_y_400mf", {}, 64),
]


@pytest.mark.parametrize(("name", "constructor", "kwargs", "size"), CASES)
def test_torchvision_state_dict_reproduces_outputs(name: str, constructor: str, kwargs: dict[str, Any],
                                                  size: int) -> None:
    torch.manual_seed(0)
    reference = getattr(torchvision.models, constructor)(weights=None, **kwargs).eval()
    randomize_bn(reference)
    ours = create_model(name, **kwargs).eval()
    ours.load_state_dict(reference.state_dict())  # strict: every key and shape must match
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        assert torch.equal(ours(x), reference(x))
    if not kwargs:
        assert sum(p.numel() for p in ours.parameters()) == model_info(name).num_params


def test_deit_base_is_vit_b_16_with_deit_naming() -> None:
    with torch.device("meta"):
        deit = create_model("deit_base")
        vit = torchvision.models.vit_b_16()
    assert {k: v.shape for k, v in deit.state_dict().items()} == {k: v.shape for k, v in vit.state_dict().items()}
    assert model_info("deit_tiny").layout.cam_layer == "encoder.layers.encoder_layer_11.ln_1"


def test_inception_v3_returns_only_logits_when_training() -> None:
    model = create_model("inception_v3", num_classes=5).train()
    out = model(torch.randn(2, 3, 299, 299))  # the auxiliary head needs the full size
    assert isinstance(out, torch.Tensor) and out.shape == (2, 5)
    assert model.transform_input and model.AuxLogits is not None


def test_tiny_transformers_run_at_32x32() -> None:
    x = torch.randn(2, 3, 32, 32)
    for name in ("test_vit", "test_swin"):
        model = create_model(name, num_classes=4).eval()
        assert model(x).shape == (2, 4)
    assert create_model("test_vit").encoder.layers.encoder_layer_1.ln_1.normalized_shape == (32,)


def test_resnet_v1d_stem_and_shortcut() -> None:
    model = create_model("resnetv1d50").eval()
    assert [m.out_channels for m in model.conv1 if isinstance(m, nn.Conv2d)] == [32, 32, 64]
    assert isinstance(model.layer2[0].downsample[0], nn.AvgPool2d)
    assert model.layer2[0].downsample[1].stride == (1, 1)
    assert isinstance(create_model("resnetv1c50").layer2[0].downsample[0], nn.Conv2d)
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 1000)


def test_own_families_run() -> None:
    assert create_model("lenet5", in_channels=1)(torch.randn(2, 1, 32, 32)).shape == (2, 10)
    assert create_model("shufflenet_v1_1_0x", num_classes=3).eval()(torch.randn(1, 3, 64, 64)).shape == (1, 3)
    se = create_model("se_resnet50", num_classes=3).eval()
    assert se(torch.randn(1, 3, 64, 64)).shape == (1, 3) and se.layer1[0].se.conv1.out_channels == 16
    res2net = create_model("res2net50", num_classes=3).eval()
    assert res2net(torch.randn(1, 3, 64, 64)).shape == (1, 3)
    assert [c.in_channels for c in res2net.layer2[1].convs] == [52, 52, 52]  # 26w at 128 planes: 52 per group
