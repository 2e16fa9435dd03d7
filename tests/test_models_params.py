"""Every registered variant builds, and its parameter count equals the recorded (published) one."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from clsctl.models import create_model, list_models, model_info

ALL = list_models()


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def rounds_to(exact: int, published: str) -> bool:
    """Whether ``exact`` parameters, in millions, round to ``published`` at its precision ("9.11", "2.1")."""
    decimals = len(published.partition(".")[2])
    return f"{exact / 1e6:.{decimals}f}" == published


def test_the_zoo_has_the_issue_families() -> None:
    families = {model_info(n).family for n in ALL}
    assert {"resnet", "se_resnet", "shufflenet_v1", "shufflenet_v2", "mobilenet_v2", "mobilenet_v3", "mnasnet",
            "efficientnet", "efficientnet_v2", "regnet", "convnext", "swin", "swin_v2", "vit", "deit", "vgg",
            "densenet", "inception", "lenet", "repvgg", "mobileone", "res2net"} <= families
    assert len(list_models("repvgg*")) == 11 and len(list_models("mobileone*")) == 5
    assert len(list_models("efficientnet_b*")) == 8 and len(list_models("regnet*")) == 15


@pytest.mark.parametrize("name", ALL)
def test_variant_builds_with_recorded_count_and_metadata(name: str) -> None:
    meta = model_info(name)
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        model = create_model(name)
    assert count(model) == meta.num_params, meta.param_source
    assert meta.param_source
    # The tools rely on these entries: the final linear layer and the default Grad-CAM layer.
    head = model.get_submodule(meta.layout.classifier)
    assert isinstance(head, nn.Linear) and head.out_features == meta.num_classes
    model.get_submodule(meta.layout.cam_layer)
    if meta.layout.pool is not None:  # a recipe's neck replaces this module, so it must pool to 1x1
        pool = model.get_submodule(meta.layout.pool)
        assert isinstance(pool, nn.AdaptiveAvgPool2d) and pool.output_size in (1, (1, 1))
    if meta.family in {"vit", "deit", "swin", "swin_v2"}:
        assert meta.layout.cam_reshape in {"vit", "swin"}
    first = model.get_submodule(meta.layout.first_conv)  # the input end: the first conv the image meets
    assert first is next(m for m in model.modules() if isinstance(m, nn.Conv2d)) and first.in_channels == 3
    if meta.layout.layer_groups is not None:  # layer-wise lr decay finds blocks in the built model
        assert meta.layout.layer_groups.layer_ids([n for n, _ in model.named_parameters()]) is not None
    if meta.pretrained_url is not None:
        assert meta.pretrained_url.startswith("https://") and meta.class_names == "imagenet-1k"


@pytest.mark.parametrize("name", [n for n in ALL if model_info(n).paper_params is not None
                                  and re.fullmatch(r"\d+(\.\d+)?", model_info(n).paper_params)])
def test_exact_counts_round_to_the_published_figures(name: str) -> None:
    meta = model_info(name)
    published = meta.paper_params
    if meta.family == "deit":  # the DeiT paper gives whole millions, truncated ("5M" for 5.72M)
        assert int(meta.num_params / 1e6) == int(published)
    else:
        assert rounds_to(meta.num_params, published)


@pytest.mark.parametrize("name", list_models(reparameterizable=True))
def test_deploy_form_counts(name: str) -> None:
    meta = model_info(name)
    with torch.device("meta"):
        model = create_model(name).reparameterize()
    assert count(model) == meta.deploy_params
    for published in (meta.paper_deploy_params, meta.mmpretrain_deploy_params):
        if published is not None:
            assert rounds_to(meta.deploy_params, published)


def test_rounding_helper_can_fail() -> None:
    assert rounds_to(9_108_968, "9.11") and rounds_to(2_078_504, "2.1")
    assert not rounds_to(9_118_968, "9.11") and not rounds_to(2_178_504, "2.1")


def test_num_classes_changes_only_the_head() -> None:
    with torch.device("meta"):
        model = create_model("efficientnet_b0", num_classes=7)
    assert model.classifier[1].out_features == 7
    assert count(model) == model_info("efficientnet_b0").num_params - 993 * 1281  # 993 fewer rows and biases
