"""Necks and heads swapped into registered models; checkpoints with them reload."""

from pathlib import Path

import pytest
import torch
from clsctl.engine.build import build_model
from clsctl.engine.loading import load_model
from clsctl.engine.loop import train
from clsctl.errors import RecipeError
from clsctl.models import create_model
from clsctl.models import heads
from clsctl.models.heads import GeM, apply_neck_and_head, parse_head, parse_neck
from clsctl.recipe import schema as S, validate_recipe

from helpers import tiny_recipe_dict



def neck(data: dict) -> object:
    """A recipe's ``model.neck`` entry, validated as the recipe schema validates it."""
    return validate_recipe({**tiny_recipe_dict(Path("x"), Path("y")), "model": {"name": "test_resnet",
                                                                                "neck": data}}).model.neck


def head(data: dict) -> object:
    """A recipe's ``model.head`` entry, validated as the recipe schema validates it."""
    return validate_recipe({**tiny_recipe_dict(Path("x"), Path("y")), "model": {"name": "test_resnet",
                                                                                "head": data}}).model.head


def test_gem_matches_its_definition_and_limits() -> None:
    x = torch.rand(2, 3, 4, 4) + 0.1
    gem = GeM(p=3.0)
    expected = (x**3).mean(dim=(2, 3), keepdim=True) ** (1 / 3)
    assert torch.allclose(gem(x), expected, atol=1e-6)
    assert torch.allclose(GeM(p=1.0)(x), x.mean(dim=(2, 3), keepdim=True), atol=1e-6)
    assert torch.allclose(GeM(p=200.0)(x), x.amax(dim=(2, 3), keepdim=True), rtol=0.05)
    assert gem.p.requires_grad and not GeM(learnable=False).p.requires_grad


def test_heads_replace_the_classifier_in_place() -> None:
    model = create_model("test_resnet", num_classes=5)
    apply_neck_and_head(model, neck({"type": "gem"}), head({"type": "stacked", "hidden": [16, 8], "norm": "batch",
                                                             "activation": "gelu", "dropout": 0.1}), 5)
    assert isinstance(model.avgpool, GeM)
    assert [type(m).__name__ for m in model.fc] == ["Linear", "BatchNorm1d", "GELU", "Dropout", "Linear",
                                                  "BatchNorm1d", "GELU", "Dropout", "Linear"]
    assert model.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 5)
    assert "conv1.weight" in model.state_dict() and "avgpool.p" in model.state_dict()

    pre = create_model("test_resnet", num_classes=4)
    apply_neck_and_head(pre, None, head({"type": "vit_pre_logits", "hidden": 12}), 4)
    assert [m.out_features for m in pre.fc if isinstance(m, torch.nn.Linear)] == [12, 4]
    assert isinstance(pre.fc[1], torch.nn.Tanh)
    dropped = create_model("test_resnet", num_classes=3)
    apply_neck_and_head(dropped, None, head({"type": "multi_label_linear", "dropout": 0.2}), 3)
    assert isinstance(dropped.fc[0], torch.nn.Dropout) and dropped.fc[1].in_features == 64


def test_neck_needs_a_pooling_layer_the_family_names() -> None:
    model = create_model("test_resnet")
    model.model_meta = type(model.model_meta)(name="x", family="x")  # a spec without a pooling path
    with pytest.raises(RecipeError, match="no replaceable pooling"):
        apply_neck_and_head(model, neck({"type": "gap"}), None, 10)


def test_recipe_with_neck_head_and_init_trains_and_reloads(tmp_path: Path, image_root: Path) -> None:
    data = tiny_recipe_dict(image_root, tmp_path / "run", epochs=1)
    data["model"].update({"neck": {"type": "gem", "p": 2.0}, "head": {"type": "stacked", "hidden": [32]}})
    result = train(validate_recipe(data), show_progress=False)
    loaded = load_model(result.last_checkpoint)
    assert isinstance(loaded.module.avgpool, GeM) and loaded.module.fc[0].out_features == 32

    # A later recipe initialises only the backbone from that run, by key prefix: fc differs, so it is skipped.
    torch.save({"backbone." + k: v for k, v in loaded.module.state_dict().items()}, tmp_path / "wrapped.pth")
    data2 = tiny_recipe_dict(image_root, tmp_path / "run2", epochs=1)
    data2["model"].update({"neck": {"type": "gem", "p": 2.0},
                           "init": {"checkpoint": str(tmp_path / "wrapped.pth"), "prefix": "backbone"}})
    model = build_model(validate_recipe(data2), 3)
    assert torch.equal(model.layer1[0].conv1.weight, loaded.module.layer1[0].conv1.weight)
    assert model.fc.weight.shape == (3, 64)
    data2["model"]["init"]["strict"] = True
    from clsctl.errors import CheckpointError

    with pytest.raises(CheckpointError, match="does not initialise every parameter"):
        build_model(validate_recipe(data2), 3)
    data2["model"]["init"] = {"checkpoint": str(tmp_path / "wrapped.pth"), "prefix": "neck"}
    with pytest.raises(CheckpointError, match="no keys under 'neck.'"):
        build_model(validate_recipe(data2), 3)


def test_the_schema_reuses_the_models_definitions() -> None:
    # one definition of each kind: the recipe schema's classes are the models layer's
    for name in ("GlobalAveragePooling", "GeneralizedMeanPooling", "LinearHead", "StackedHead", "PreLogitsHead",
                 "MultiLabelLinearHead", "Neck", "Head"):
        assert getattr(S, name) is getattr(heads, name)


@pytest.mark.parametrize("data", [{"type": "gap"}, {"type": "gem"}, {"type": "gem", "p": 4.5, "learnable": False}])
def test_neck_from_recipe_data_takes_the_schema_defaults(data: dict) -> None:
    # Hub config.json files carry the recipe as plain data; keys it leaves out mean the schema's defaults.
    assert parse_neck(data) == neck(data)
    assert parse_neck(None) is None


@pytest.mark.parametrize("data", [{"type": "linear"}, {"type": "linear", "dropout": 0.3}, {"type": "vit_pre_logits"},
                                  {"type": "multi_label_linear", "dropout": 0.1}, {"type": "stacked", "hidden": [8]},
                                  {"type": "stacked", "hidden": [8, 4], "norm": "layer", "activation": "silu"}])
def test_head_from_recipe_data_takes_the_schema_defaults(data: dict) -> None:
    assert parse_head(data) == head(data)


def test_recipe_data_of_no_known_type_is_a_recipe_error() -> None:
    with pytest.raises(RecipeError, match=r"model.neck: .*'max'"):
        parse_neck({"type": "max"})
    with pytest.raises(RecipeError, match="model.head: "):
        parse_head({"type": "stacked"})
