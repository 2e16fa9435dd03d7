"""Loading weights: local files, torch.hub's cache, offline errors, classifier re-initialisation."""

import logging
from pathlib import Path
from urllib.error import URLError

import pytest
import torch

from clsctl.errors import CheckpointError, ClsctlError
from clsctl.models import create_model
from clsctl.models.weights import hub_cache_path
from clsctl.readers import read_state_dict


def test_weights_file_loads_and_other_head_is_reinitialised(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    source = create_model("test_resnet", num_classes=10)
    path = tmp_path / "w.pth"
    torch.save(source.state_dict(), path)
    same = create_model("test_resnet", num_classes=10, weights=path)
    assert torch.equal(same.layer4[0].conv2.weight, source.layer4[0].conv2.weight)
    assert torch.equal(same.fc.weight, source.fc.weight)
    with caplog.at_level(logging.WARNING, logger="clsctl"):
        other = create_model("test_resnet", num_classes=3, weights=path)
    assert torch.equal(other.conv1.weight, source.conv1.weight)
    assert other.fc.weight.shape == (3, 64)
    assert "re-initialised: fc.bias, fc.weight" in caplog.text


def test_wrapped_and_checkpoint_formats(tmp_path: Path) -> None:
    model = create_model("test_resnet")
    state = model.state_dict()
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "ddp.pth")
    torch.save({"model": state, "epoch": 3}, tmp_path / "ckpt.pth")
    assert read_state_dict(tmp_path / "ddp.pth").keys() == state.keys()
    assert read_state_dict(tmp_path / "ckpt.pth").keys() == state.keys()


def test_mismatched_keys_are_reported_not_ignored(tmp_path: Path) -> None:
    state = create_model("test_resnet").state_dict()
    state.pop("layer1.0.conv1.weight")
    state["extra.weight"] = torch.zeros(1)
    state["conv1.weight"] = torch.zeros(1, 1, 1, 1)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError) as info:
        create_model("test_resnet", weights=tmp_path / "bad.pth")
    text = str(info.value)
    assert "missing in checkpoint: layer1.0.conv1.weight" in text
    assert "not in model: extra.weight" in text
    assert "conv1.weight: checkpoint (1, 1, 1, 1)" in text


def test_not_a_weights_file(tmp_path: Path) -> None:
    (tmp_path / "junk.pth").write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="junk.pth is not a weights file: not a PyTorch file"):
        create_model("test_resnet", weights=tmp_path / "junk.pth")
    with pytest.raises(CheckpointError, match="not found"):
        create_model("test_resnet", weights=tmp_path / "missing.pth")


def test_pretrained_comes_from_the_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))  # no real cache, no network
    reference = create_model("resnet18")
    cached = hub_cache_path(reference.model_meta.pretrained_url)
    assert cached == tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    cached.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), cached)
    loaded = create_model("resnet18", pretrained=True)
    assert torch.equal(loaded.fc.weight, reference.fc.weight)


def test_offline_pretrained_error_names_url_and_cache_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def offline(*args: object, **kwargs: object) -> None:
        raise URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(ClsctlError) as info:
        create_model("resnet18", pretrained=True)
    message = str(info.value)
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in message
    assert str(tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth") in message
    with pytest.raises(ClsctlError, match="no published pretrained weights"):
        create_model("test_resnet", pretrained=True)
