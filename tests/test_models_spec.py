"""clsctl.models._meta: every variant's spec is typed data; old spec dicts load; layer groups and the timm-like
classifier helpers read it."""

from __future__ import annotations

import collections
import dataclasses
import json
import re
import types
import typing
from collections.abc import Mapping, Sequence

import pytest
import torch
from torch import nn

from clsctl.engine.optim import layer_ids, param_groups
from clsctl.errors import RecipeError
from clsctl.models import (MODELS, LayerGroups, ModelLayout, ModelMeta, PretrainedWeights, create_model, list_models,
                           model_info)
from clsctl.models.heads import StackedHead, get_classifier, reset_classifier
from clsctl.recipe import schema as S

ALL = list_models()
HINTS = typing.get_type_hints(ModelMeta)


def _conforms(value: object, hint: object) -> bool:
    """Whether ``value`` has the annotated type (unions, Literal, tuples, mappings, nested dataclasses)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, arg) for arg in args)
    if origin is typing.Literal:
        return value in args
    if hint is type(None):
        return value is None
    if origin is tuple:
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_conforms(v, args[0]) for v in value)
        return len(value) == len(args) and all(_conforms(v, a) for v, a in zip(value, args))
    if origin is not None and isinstance(origin, type) and issubclass(origin, Mapping):
        return isinstance(value, Mapping)
    if dataclasses.is_dataclass(hint):
        nested = typing.get_type_hints(hint)
        return isinstance(value, hint) and all(_conforms(getattr(value, f.name), nested[f.name])
                                               for f in dataclasses.fields(hint))
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is typing.Any:
        return True
    return isinstance(value, hint)


def test_the_type_checker_can_fail() -> None:
    assert not _conforms((224, "224"), HINTS["input_size"]) and not _conforms([224, 224], HINTS["input_size"])
    assert not _conforms(ModelLayout(stages=[["a"]], cam_reshape="other"), ModelLayout)  # type: ignore[arg-type]
    assert _conforms(ModelLayout(stages=[["a"]]), ModelLayout)  # lists become tuples


@pytest.mark.parametrize("name", ALL)
def test_every_field_of_every_spec_is_typed_and_consistent(name: str) -> None:
    meta = model_info(name)
    assert not hasattr(meta, "extra")  # no string-keyed extras left
    for f in dataclasses.fields(ModelMeta):
        assert _conforms(getattr(meta, f.name), HINTS[f.name]), f"{name}.{f.name} = {getattr(meta, f.name)!r}"
    layout = meta.layout
    assert layout.classifier and layout.cam_layer and len(layout.stages) >= 3 and all(layout.stages[1:])  # VGG: no stem
    assert layout.first_conv is not None and 0 < meta.crop_pct <= 1
    assert meta.interpolation in {"nearest", "bilinear", "bicubic"}
    assert (meta.deploy_params is not None) == meta.reparameterizable
    if meta.weights is not None:
        assert meta.pretrained_url == meta.weights.url and meta.weights.url.endswith("/" + meta.weights.file_name)
        assert meta.weights.file_name.endswith(".pth") and meta.weights.source.startswith("torchvision")
        assert meta.class_names == meta.weights.class_names == "imagenet-1k"


@pytest.mark.parametrize("name", ALL)
def test_spec_round_trips_through_json(name: str) -> None:
    meta = model_info(name)
    data = json.loads(json.dumps(meta.to_dict()))
    assert ModelMeta.from_dict(data) == meta


# What ``ModelMeta.to_dict()`` gave before the spec was typed (flat fields plus ``extra``), for test_resnet and
# a clsctl model on the Hugging Face Hub.
OLD_RESNET = {
    "name": "test_resnet", "family": "resnet", "input_size": [32, 32], "mean": [0.485, 0.456, 0.406],
    "std": [0.229, 0.224, 0.225], "num_params": 78002, "num_classes": 10, "flops": 4247168,
    "param_source": "clsctl test variant (computed)", "pretrained_url": None, "reparameterizable": False,
    "class_names": None, "eval_resize": None, "interpolation": "bilinear",
    "extra": {"classifier": "fc", "pool": "avgpool", "cam_layer": "layer4",
              "stages": [["conv1", "bn1"], ["layer1"], ["layer2"], ["layer3"], ["layer4"]],
              "flops_source": "fvcore count (computed)"},
}
OLD_HUB = {
    "name": "hf-hub:someone/digits-net", "family": "hf-hub", "input_size": [32, 32], "mean": [0.5, 0.5, 0.5],
    "std": [0.5, 0.5, 0.5], "num_params": None, "num_classes": 3, "flops": None,
    "param_source": "hf-hub (not recorded)", "pretrained_url": "hf-hub:someone/digits-net",
    "reparameterizable": False, "class_names": None, "eval_resize": None, "interpolation": "bilinear",
    "extra": {"hub_library": "clsctl", "class_list": ["a", "b", "c"], "preprocessing": {"input_size": [32, 32]}},
}


def test_spec_dicts_of_the_earlier_flat_format_still_load() -> None:
    resnet = ModelMeta.from_dict(OLD_RESNET)
    expected = dataclasses.replace(model_info("test_resnet"),
                                   layout=dataclasses.replace(model_info("test_resnet").layout, first_conv=None))
    assert resnet == expected  # the old dicts did not record the first conv
    hub = ModelMeta.from_dict(OLD_HUB)
    assert hub.weights == PretrainedWeights(url="hf-hub:someone/digits-net", class_list=("a", "b", "c"))
    assert hub.hub is not None and hub.hub.library == "clsctl" and hub.hub.repo == "someone/digits-net"
    assert hub.hub.preprocessing == {"input_size": [32, 32]} and hub.input_size == (32, 32)


# --------------------------------------------------------------------------- layer-wise lr decay


def _regex_layer_ids(names: Sequence[str]) -> tuple[dict[str, int], int] | None:
    """The layer map layer decay used before the spec recorded layer groups (frozen here as the reference)."""
    embed_names = ("cls_token", "class_token", "pos_embed", "pos_embedding", "patch_embed", "conv_proj",
                   "dist_token", "mask_token", "register_tokens")
    block_re = re.compile(r"(?:^|\.)(?:blocks|layers|encoder_layer_)\.?(\d+)\.")
    blocks = {name: int(m.group(1)) for name in names if (m := block_re.search(name))}
    if not blocks:
        return None
    count = max(blocks.values()) + 1
    ids = {}
    for name in names:
        if name in blocks:
            ids[name] = blocks[name] + 1
        elif any(part in embed_names for part in name.split(".")):
            ids[name] = 0
        else:
            ids[name] = count + 1
    return ids, count


def _smallest_per_family() -> list[str]:
    families: dict[str, list[str]] = collections.defaultdict(list)
    for name in ALL:
        families[model_info(name).family].append(name)
    return [min(names, key=lambda n: model_info(n).num_params or 0) for _, names in sorted(families.items())]


def _new_layer_ids(model: nn.Module, names: list[str]) -> tuple[dict[str, int], int] | None:
    try:
        return layer_ids(model, names)
    except RecipeError:
        return None


@pytest.mark.parametrize("name", _smallest_per_family() + ["deit_tiny", "mnasnet1_3"])
def test_layer_groups_give_the_layers_the_name_regex_gave(name: str) -> None:
    with torch.device("meta"):
        model = create_model(name)
    names = [n for n, _ in model.named_parameters()]
    before = _regex_layer_ids(names)
    assert _new_layer_ids(model, names) == before
    families_with_layer_decay = {"vit", "deit", "mnasnet", "shufflenet_v1"}
    assert (before is not None) == (model_info(name).family in families_with_layer_decay)
    assert (before is not None) == (model_info(name).layout.layer_groups is not None)


@pytest.mark.parametrize("name, frozen", [("test_vit", -1), ("test_vit", 1), ("mnasnet0_5", 2),
                                          ("shufflenet_v1_1_0x", 0)])
def test_layer_decay_lr_multipliers_are_those_of_the_regex(name: str, frozen: int) -> None:
    with torch.device("meta"):
        model = create_model(name, frozen_stages=frozen)
    config = S.AdamW(type="adamw", lr=1.0, paramwise={"layer_decay": 0.65})
    got = {n: g["lr_mult"] for g in param_groups(model, config) for n in g["names"]}
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    ids, count = _regex_layer_ids(trainable)  # type: ignore[misc]
    assert got == pytest.approx({n: 0.65 ** (count + 1 - ids[n]) for n in trainable})
    assert len(set(got.values())) >= 2  # decay is applied, not a constant


def test_timm_models_keep_the_numbered_block_groups() -> None:
    timm = pytest.importorskip("timm")
    with torch.device("meta"):
        model = timm.create_model("vit_tiny_patch16_224", num_classes=3)
    model.model_meta = model_info("timm/vit_tiny_patch16_224")  # what create_model attaches
    names = [n for n, _ in model.named_parameters()]
    assert _new_layer_ids(model, names) == _regex_layer_ids(names) is not None


def test_layer_groups_match_by_regular_expression() -> None:
    groups = LayerGroups(blocks=r"^body\.(\d+)\.", embed=r"^stem\.")
    ids, count = groups.layer_ids(["stem.weight", "body.0.weight", "body.3.bias", "head.weight"])  # type: ignore[misc]
    assert count == 4 and ids == {"stem.weight": 0, "body.0.weight": 1, "body.3.bias": 4, "head.weight": 5}
    assert groups.layer_ids(["head.weight"]) is None


# --------------------------------------------------------------------------- classifier helpers


@pytest.mark.parametrize("name", ["test_resnet", "test_vit", "lenet5", "test_mobileone"])
def test_get_and_reset_classifier_use_the_spec(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=5).eval()
    classifier = get_classifier(model)
    assert classifier is model.get_submodule(model_info(name).layout.classifier)
    assert isinstance(classifier, nn.Linear) and classifier.out_features == 5
    backbone = {k: v.clone() for k, v in model.state_dict().items()
                if not k.startswith(model_info(name).layout.classifier + ".")}
    old = reset_classifier(model, 7)
    assert old is classifier
    fresh = get_classifier(model)
    assert isinstance(fresh, nn.Linear) and (fresh.in_features, fresh.out_features) == (classifier.in_features, 7)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in backbone.items())
    size = model_info(name).input_size
    assert model(torch.randn(2, 3, *size)).shape == (2, 7)
    reset_classifier(model, 4, StackedHead(type="stacked", hidden=[6]))
    assert [m.out_features for m in get_classifier(model).modules() if isinstance(m, nn.Linear)] == [6, 4]


def test_register_model_takes_typed_spec_parts() -> None:
    entry = MODELS.get("test_repvgg")
    assert isinstance(entry.meta.layout, ModelLayout) and entry.meta.layout.pool == "gap"
    with pytest.raises(TypeError):
        ModelMeta(name="x", family="x", extra={})  # type: ignore[call-arg]
