"""clsctl export."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clsctl.cli.main import app

from deploy_helpers import make_checkpoint


def test_export_onnx_prints_the_check(runner: CliRunner, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    source = make_checkpoint(tmp_path, "test_resnet")
    out = tmp_path / "exported" / "net.onnx"
    result = runner.invoke(app, ["export", str(source), "--format", "onnx", "--out", str(out), "--opset", "17",
                                 "--dynamic-batch"])
    assert result.exit_code == 0, result.output
    assert out.is_file() and f"wrote {out} (onnx" in result.output and "dynamic batch" in result.output
    assert "metadata: class_names, preprocessing" in result.output
    match = re.search(r"onnxruntime vs PyTorch on a random 3x3x32x32 input: max abs diff (\S+) \(tolerance (\S+)\)",
                      result.output)
    assert match and float(match.group(1)) <= float(match.group(2))

    import onnx

    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(props["class_names"]) == ["blue", "green", "red"]


def test_export_torchscript_default_path_and_no_check(runner: CliRunner, tmp_path: Path) -> None:
    source = make_checkpoint(tmp_path, "test_resnet", name="best.pt")
    result = runner.invoke(app, ["export", str(source), "-f", "torchscript", "--no-check"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "best.torchscript.pt").is_file() and "not checked (--no-check)" in result.output


def test_export_errors(runner: CliRunner, tmp_path: Path) -> None:
    source = make_checkpoint(tmp_path, "test_resnet")
    bad_format = runner.invoke(app, ["export", str(source), "-f", "tflite"])
    assert bad_format.exit_code == 2 and "tflite" in bad_format.output
    opset = runner.invoke(app, ["export", str(source), "-f", "torchscript", "--opset", "17"])
    assert opset.exit_code == 2 and "--opset applies to --format onnx only" in opset.output
    missing = runner.invoke(app, ["export", str(tmp_path / "nope.pt")])
    assert missing.exit_code == 2 and "checkpoint not found" in missing.output
    assert "Traceback" not in bad_format.output + opset.output + missing.output


def test_export_safetensors_file_and_hub_folder(runner: CliRunner, tmp_path: Path) -> None:
    from clsctl.models.safetensors_io import decoded_metadata, read_safetensors

    source = make_checkpoint(tmp_path, "test_resnet", name="best.pt")
    result = runner.invoke(app, ["export", str(source), "-f", "safetensors"])
    assert result.exit_code == 0, result.output
    path = tmp_path / "best.safetensors"
    assert f"wrote {path} (safetensors" in result.output
    assert re.search(r"model rebuilt from the file vs PyTorch on a random 1x3x32x32 input: max abs diff 0 ",
                     result.output)
    meta = decoded_metadata(read_safetensors(path)[1])
    assert meta["class_names"] == ["blue", "green", "red"] and meta["recipe"]["model"]["name"] == "test_resnet"
    folder = runner.invoke(app, ["export", str(source), "-f", "safetensors", "-o", str(tmp_path / "hub")])
    assert folder.exit_code == 0, folder.output
    assert (tmp_path / "hub" / "model.safetensors").is_file() and "config.json beside it" in folder.output
    assert json.loads((tmp_path / "hub" / "config.json").read_text())["library_name"] == "clsctl"
