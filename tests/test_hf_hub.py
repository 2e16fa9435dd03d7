"""Hugging Face Hub: timm weights and ``hf-hub:`` models from a local, pre-filled cache, offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from clsctl.errors import ClsctlError
from clsctl.hf_hub import split_repo
from clsctl.models import create_model, model_info
from clsctl.models.safetensors_io import write_safetensors

from deploy_helpers import make_checkpoint
from hub_helpers import offline_cache, put_in_cache

timm = pytest.importorskip("timm")


def test_split_repo() -> None:
    assert split_repo("hf-hub:org/name") == ("org/name", None)
    assert split_repo("hf-hub:org/name@v1") == ("org/name", "v1")
    with pytest.raises(ClsctlError, match="expected hf-hub:<org>/<repo>"):
        split_repo("hf-hub:just-a-name")


def test_timm_pretrained_weights_come_from_the_hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = offline_cache(tmp_path, monkeypatch)
    published = timm.create_model("test_resnet", num_classes=1000)
    weights = write_safetensors(published.state_dict(), tmp_path / "model.safetensors")
    put_in_cache(cache, "timm/test_resnet.r160_in1k", {"model.safetensors": weights})

    model = create_model("timm/test_resnet.r160_in1k", pretrained=True)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in published.state_dict().items())
    # Another class count keeps the backbone and re-initialises timm's classifier.
    small = create_model("timm/test_resnet.r160_in1k", pretrained=True, num_classes=3)
    assert torch.equal(small.conv1[0].weight, published.conv1[0].weight) and small.fc.weight.shape[0] == 3


def test_offline_without_the_file_is_one_line_naming_repo_and_cache(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    cache = offline_cache(tmp_path, monkeypatch)
    with pytest.raises(ClsctlError) as raised:
        create_model("timm/test_resnet.r160_in1k", pretrained=True)
    message = str(raised.value)
    assert "'timm/test_resnet.r160_in1k'" in message and str(cache) in message and "\n" not in message


def test_clsctl_model_published_on_the_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from clsctl.deploy.export import export_checkpoint
    from clsctl.engine.loading import load_model

    checkpoint = make_checkpoint(tmp_path, "test_resnet", name="best.pt")
    folder = tmp_path / "repo"
    result = export_checkpoint(checkpoint, "safetensors", out=folder)
    assert result.path == folder / "model.safetensors"
    config = json.loads((folder / "config.json").read_text())
    assert config["library_name"] == "clsctl" and config["class_names"] == ["blue", "green", "red"]

    cache = offline_cache(tmp_path, monkeypatch)
    put_in_cache(cache, "someone/digits-net", {"model.safetensors": folder / "model.safetensors",
                                               "config.json": folder / "config.json"})
    reference = load_model(checkpoint).module
    model = create_model("hf-hub:someone/digits-net", pretrained=True).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), reference(x))
    meta = model_info("hf-hub:someone/digits-net")
    assert meta.num_classes == 3 and meta.input_size == (32, 32) and list(meta.weights.class_list) == config["class_names"]
    assert meta.layout == model_info(config["model_name"]).layout  # the trained variant's classifier, stages...
    fresh = create_model("hf-hub:someone/digits-net")  # architecture only
    assert not torch.equal(fresh.fc.weight, model.fc.weight)

    from clsctl.engine.evaluate import predict
    from helpers import write_image_folder

    images = write_image_folder(tmp_path / "img", per_class=1)
    from_hub = predict([images], model="hf-hub:someone/digits-net", pretrained=True, topk=3)
    from_checkpoint = predict([images], checkpoint=checkpoint, topk=3)
    assert [p.to_dict() for p in from_hub] == [p.to_dict() for p in from_checkpoint]  # names and pipeline too


def test_timm_model_published_on_the_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = offline_cache(tmp_path, monkeypatch)
    published = timm.create_model("test_resnet", num_classes=5)
    config = {"architecture": "test_resnet", "num_classes": 5,
              "pretrained_cfg": {"input_size": [3, 64, 64], "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25],
                                 "classifier": "fc", "num_classes": 5}}
    put_in_cache(cache, "someone/timm-net", {
        "config.json": json.dumps(config).encode(),
        "model.safetensors": write_safetensors(published.state_dict(), tmp_path / "m.safetensors")})
    model = create_model("hf-hub:someone/timm-net", pretrained=True)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in published.state_dict().items())
    meta = model_info("hf-hub:someone/timm-net")
    assert meta.input_size == (64, 64) and meta.mean == (0.5, 0.5, 0.5) and meta.hub.library == "timm"
    with pytest.raises(ClsctlError, match="'someone/missing'"):
        create_model("hf-hub:someone/missing", pretrained=True)


def test_recipe_accepts_hub_names() -> None:
    from clsctl.recipe.schema import ModelConfig

    assert ModelConfig(name="hf-hub:org/repo").name == "hf-hub:org/repo"
