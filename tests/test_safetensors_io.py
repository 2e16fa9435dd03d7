"""``.safetensors`` weights: written with metadata, read without pickle, accepted as ``model.weights``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from clsctl.errors import CheckpointError, ClsctlError
from clsctl.models import create_model
from clsctl.models.safetensors_io import decoded_metadata, read_safetensors, write_safetensors
from clsctl.readers import read_state_dict

from deploy_helpers import make_checkpoint


def test_weights_round_trip_without_pickle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = create_model("test_resnet", num_classes=3)
    path = write_safetensors(source.state_dict(), tmp_path / "w.safetensors", {"format": "x", "note": "hi"})

    def no_pickle(*args: object, **kwargs: object) -> None:
        raise AssertionError("torch.load called on the safetensors path")

    monkeypatch.setattr(torch, "load", no_pickle)
    state = read_state_dict(path)
    assert state.keys() == source.state_dict().keys()
    assert all(torch.equal(state[k], v) for k, v in source.state_dict().items())
    loaded = create_model("test_resnet", num_classes=3, weights=path)
    assert torch.equal(loaded.fc.weight, source.fc.weight)
    assert read_safetensors(path)[1] == {"format": "x", "note": "hi"}
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write left no temporary file


def test_tied_weights_are_written(tmp_path: Path) -> None:
    shared = torch.randn(4, 4)
    path = write_safetensors({"a": shared, "b": shared, "c": shared[:2]}, tmp_path / "t.safetensors")
    tensors, _ = read_safetensors(path)
    assert torch.equal(tensors["b"], shared) and torch.equal(tensors["c"], shared[:2])


def test_bad_files_are_checkpoint_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file at all")
    with pytest.raises(CheckpointError, match="is not a safetensors file"):
        read_state_dict(bad)
    with pytest.raises(CheckpointError, match="not found"):
        read_state_dict(tmp_path / "missing.safetensors")


def test_missing_package_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "safetensors.torch", None)  # makes "import safetensors.torch" fail
    with pytest.raises(ClsctlError, match=r"clsctl\[safetensors\]"):
        write_safetensors({"a": torch.zeros(1)}, tmp_path / "a.safetensors")


def test_export_carries_class_names_preprocessing_and_recipe(tmp_path: Path) -> None:
    from clsctl.deploy.export import export_checkpoint
    from clsctl.engine.loading import load_model

    checkpoint = make_checkpoint(tmp_path, "test_resnet", name="best.pt")
    result = export_checkpoint(checkpoint, "safetensors")
    assert result.path == tmp_path / "best.safetensors" and result.comparison is not None
    assert result.comparison.max_abs_diff == 0
    tensors, metadata = read_safetensors(result.path)
    meta = decoded_metadata(metadata)
    loaded = load_model(checkpoint)
    assert meta["format"] == "clsctl-weights" and meta["model_name"] == "test_resnet"
    assert meta["class_names"] == loaded.class_names
    assert meta["preprocessing"] == json.loads(json.dumps(loaded.preprocessing.to_dict()))
    assert meta["recipe"]["model"]["name"] == "test_resnet" and meta["recipe"]["optim"]["type"] == "sgd"
    assert all(torch.equal(tensors[k], v) for k, v in loaded.module.state_dict().items())
