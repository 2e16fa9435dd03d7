"""clsctl.models.hub_models: ``hf-hub:`` clsctl models rebuilt from their config.json, offline."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from clsctl.data.preprocessing import Preprocessing
from clsctl.engine.build import build_model
from clsctl.hf_hub import model_config, write_model_folder
from clsctl.models import create_model
from clsctl.models.heads import GeM
from clsctl.recipe import validate_recipe

from helpers import tiny_recipe_dict
from hub_helpers import offline_cache, put_in_cache

pytest.importorskip("huggingface_hub")


def test_neck_head_and_kwargs_come_from_the_stored_recipe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tiny_recipe_dict(tmp_path / "data", tmp_path / "run")
    data["model"].update({"neck": {"type": "gem", "p": 2.0}, "head": {"type": "stacked", "hidden": [8]},
                          "kwargs": {"cifar_stem": True}})
    recipe = validate_recipe(data)
    net = build_model(recipe, 3, load_weights=False).eval()
    with torch.no_grad():
        net.avgpool.p.fill_(2.5)  # a trained value, so the weights are seen to load
    config = model_config(model_name=recipe.model.name, class_names=["a", "b", "c"],
                          preprocessing=Preprocessing.from_recipe(recipe).to_dict(), recipe=recipe.to_dict())
    folder = tmp_path / "repo"
    write_model_folder(folder, net.state_dict(), config)
    cache = offline_cache(tmp_path, monkeypatch)
    put_in_cache(cache, "someone/gem-net", {"model.safetensors": folder / "model.safetensors",
                                            "config.json": folder / "config.json"})

    model = create_model("hf-hub:someone/gem-net", pretrained=True).eval()
    assert isinstance(model.avgpool, GeM) and model.avgpool.p.item() == 2.5
    assert [m.out_features for m in model.fc if isinstance(m, torch.nn.Linear)] == [8, 3]
    assert model.model_meta.num_params == sum(p.numel() for p in net.parameters())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), net(x))
    # Options given here go over the recipe's; another class count re-initialises the head only.
    other = create_model("hf-hub:someone/gem-net", num_classes=5, cifar_stem=False)
    assert other.fc[-1].out_features == 5 and other.conv1.stride == (2, 2) != net.conv1.stride


def test_importing_the_zoo_imports_neither_timm_nor_huggingface_hub() -> None:
    code = ("import sys, clsctl.models as m; assert {'timm/', 'hf-hub:'} <= set(m._factory.PREFIXES); "
            "assert not {'timm', 'huggingface_hub'} & set(sys.modules), 'imported eagerly'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
