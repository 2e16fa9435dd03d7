"""clsctl.deploy.export: ONNX (checked with onnxruntime) and TorchScript files with metadata."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from clsctl.deploy.export import default_output, export_checkpoint
from clsctl.engine.runtimes import read_onnx_metadata, read_torchscript_metadata
from clsctl.engine.loading import load_model
from clsctl.errors import ClsctlError

from deploy_helpers import make_checkpoint

onnx = pytest.importorskip("onnx")
onnxruntime = pytest.importorskip("onnxruntime")


def test_onnx_round_trip_with_dynamic_batch(tmp_path: Path) -> None:
    source = make_checkpoint(tmp_path, "test_resnet")
    result = export_checkpoint(source, "onnx", dynamic_batch=True, opset=17)
    assert result.path == tmp_path / "model.onnx" and result.path.is_file()
    assert result.comparison is not None and result.comparison.ok and result.check_shape == (3, 3, 32, 32)
    proto = onnx.load(str(result.path))
    assert proto.opset_import[0].version == 17
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # a symbolic batch axis
    meta = read_onnx_metadata(result.path)
    assert json.loads(meta["class_names"]) == ["blue", "green", "red"]
    prep = json.loads(meta["preprocessing"])
    assert prep["input_size"] == [32, 32] and len(prep["mean"]) == 3 and meta["model_name"] == "test_resnet"
    assert prep["channel_order"] == "rgb"  # a deployment must know whether to feed RGB or BGR
    # Our own run of the file on other images, batch 5, agrees with PyTorch.
    inputs = torch.randn(5, 3, 32, 32)
    session = onnxruntime.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"input": inputs.numpy()})
    with torch.no_grad():
        reference = load_model(source).module(inputs).numpy()
    assert logits.shape == (5, 3) and np.abs(logits - reference).max() < 1e-4


def test_onnx_fixed_batch_of_a_deploy_checkpoint(tmp_path: Path) -> None:
    from clsctl.deploy.convert import reparameterize_checkpoint

    deploy = reparameterize_checkpoint(make_checkpoint(tmp_path, "test_repvgg"), tmp_path / "d.pt", count=False).out
    result = export_checkpoint(deploy, "onnx", out=tmp_path / "sub" / "repvgg.onnx")
    assert result.path.is_file() and result.comparison is not None and result.comparison.ok
    assert json.loads(read_onnx_metadata(result.path)["deploy"]) is True
    proto = onnx.load(str(result.path))
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1
    assert not any(node.op_type == "BatchNormalization" for node in proto.graph.node)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_torchscript_round_trip(tmp_path: Path) -> None:
    source = make_checkpoint(tmp_path, "test_mobileone")
    result = export_checkpoint(source, "torchscript", dynamic_batch=True)
    assert result.path == tmp_path / "model.torchscript.pt" and result.exporter == "trace"
    assert result.comparison is not None and result.comparison.max_abs_diff < 1e-5
    meta = read_torchscript_metadata(result.path)
    assert json.loads(meta["class_names"]) == ["blue", "green", "red"] and meta["model_name"] == "test_mobileone"
    assert json.loads(meta["preprocessing"])["input_size"] == [32, 32]
    module = torch.jit.load(str(result.path))
    inputs = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(module(inputs), load_model(source).module(inputs), atol=1e-5)


def test_no_check_and_errors(tmp_path: Path) -> None:
    source = make_checkpoint(tmp_path, "test_resnet")
    unchecked = export_checkpoint(source, "torchscript", check=False, out=tmp_path / "m.ts")
    assert unchecked.comparison is None and unchecked.path.is_file()
    with pytest.raises(ClsctlError, match="unknown export format 'tflite'"):
        export_checkpoint(source, "tflite")
    with pytest.raises(ClsctlError, match="--opset applies to --format onnx only"):
        export_checkpoint(source, "torchscript", opset=17)
    with pytest.raises(ClsctlError, match="does not match PyTorch"):
        export_checkpoint(source, "onnx", rtol=0.0, atol=-1.0)  # a negative tolerance nothing can meet


def test_default_output() -> None:
    assert default_output(Path("run/best.pt"), "onnx") == Path("run/best.onnx")
    assert default_output(Path("run/best.pt"), "torchscript") == Path("run/best.torchscript.pt")
