"""clsctl.deploy.convert: deploy checkpoints that the other commands load directly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from clsctl.deploy.convert import TRAINING_KEYS, reparameterize_checkpoint
from clsctl.engine.loading import load_model
from clsctl.readers import read_checkpoint
from clsctl.errors import ClsctlError

from deploy_helpers import make_checkpoint


def _outputs(path: Path, inputs: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return load_model(path).module(inputs)


@pytest.mark.parametrize("name", ["test_repvgg", "test_mobileone"])
def test_reparameterize_checkpoint_round_trip(tmp_path: Path, name: str) -> None:
    source = make_checkpoint(tmp_path, name)
    result = reparameterize_checkpoint(source, tmp_path / "deploy.pt")
    assert result.comparison.ok and result.comparison.max_abs_diff < 1e-4 * result.comparison.scale + 1e-6
    assert result.reparameterized and result.fused == []
    assert result.params_after < result.params_before
    assert result.flops_before and result.flops_after and result.flops_after < result.flops_before
    saved = read_checkpoint(result.out)
    assert saved["deploy"] is True and saved["fused_conv_bn"] is False
    assert not set(TRAINING_KEYS) & (set(saved) - {"format", "version"})
    assert saved["class_names"] == ["blue", "green", "red"] and saved["recipe"]["model"]["name"] == name
    # Rebuilt from the checkpoint alone, the deploy model gives the training form's outputs.
    inputs = torch.randn(3, 3, 32, 32)
    deployed = load_model(result.out).module
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in deployed.modules())
    reference = _outputs(source, inputs)
    assert torch.allclose(reference, _outputs(result.out, inputs), atol=1e-5, rtol=1e-4)


def test_fuse_conv_bn_on_resnet_checkpoint_and_second_pass(tmp_path: Path) -> None:
    source = make_checkpoint(tmp_path, "test_resnet")
    fused = reparameterize_checkpoint(source, tmp_path / "fused.pt", fuse_conv_bn=True)
    assert len(fused.fused) == 12 and fused.reparameterized == []
    assert read_checkpoint(fused.out)["fused_conv_bn"] is True
    inputs = torch.randn(2, 3, 32, 32)
    assert torch.allclose(_outputs(source, inputs), _outputs(fused.out, inputs), atol=1e-5, rtol=1e-4)
    with pytest.raises(ClsctlError, match="already in deploy form"):
        reparameterize_checkpoint(fused.out, tmp_path / "again.pt", fuse_conv_bn=True)


def test_repvgg_deploy_checkpoint_can_be_fused_later(tmp_path: Path) -> None:
    source = make_checkpoint(tmp_path, "test_repvgg")
    first = reparameterize_checkpoint(source, tmp_path / "deploy.pt", count=False)
    with pytest.raises(ClsctlError, match="already in deploy form"):
        reparameterize_checkpoint(first.out, tmp_path / "again.pt")
    # The deploy form has no BatchNorm left, so folding finds nothing either.
    with pytest.raises(ClsctlError, match="nothing to convert"):
        reparameterize_checkpoint(first.out, tmp_path / "again.pt", fuse_conv_bn=True)


def test_nothing_to_convert_and_same_output(tmp_path: Path) -> None:
    source = make_checkpoint(tmp_path, "test_resnet")
    with pytest.raises(ClsctlError, match="no re-parameterizable blocks; --fuse-conv-bn"):
        reparameterize_checkpoint(source, tmp_path / "out.pt")
    with pytest.raises(ClsctlError, match="OUT must differ"):
        reparameterize_checkpoint(source, source, fuse_conv_bn=True)
    assert not (tmp_path / "out.pt").exists()


def test_outputs_beyond_tolerance_fail_and_write_nothing(tmp_path: Path) -> None:
    source = make_checkpoint(tmp_path, "test_repvgg")
    with pytest.raises(ClsctlError, match="differs from the original"):
        reparameterize_checkpoint(source, tmp_path / "out.pt", rtol=0.0, atol=0.0, count=False)
    assert not (tmp_path / "out.pt").exists()
