"""Tests of clsctl.analysis.flops."""

from __future__ import annotations

from pathlib import Path

import pytest

from clsctl.analysis.flops import count_flops
from clsctl.engine.flop_handles import native_mha_flop_handle, sdpa_flop_handle
from clsctl.errors import ClsctlError


@pytest.mark.slow  # real 25M-87M parameter models: a few seconds each
@pytest.mark.parametrize("name, published", [("resnet50", 4.1e9), ("convnext-tiny", 4.5e9), ("vit_b_16", 17.6e9)])
def test_published_model_zoo_figures(name: str, published: float) -> None:
    report = count_flops(name, [224])
    assert report.input_shape == (1, 3, 224, 224)
    assert report.flops == pytest.approx(published, rel=0.02)
    # Attention must be counted, through whichever path nn.MultiheadAttention takes.
    assert "aten::scaled_dot_product_attention" not in report.uncounted
    assert "aten::_native_multi_head_attention" not in report.uncounted


def test_tiny_resnet_counts_by_hand() -> None:
    report = count_flops("test_resnet")  # default shape: the model's 32x32
    assert report.input_shape == (1, 3, 32, 32)
    assert report.params == 78_002
    # conv1: 3x3 kernel, 3 -> 8 channels on 32x32: 3*3*3*8*32*32 multiply-adds.
    assert report.by_operator["conv"] > 3 * 3 * 3 * 8 * 32 * 32
    assert report.by_operator["linear"] == 64 * 10
    assert report.uncounted == {"aten::add": 4}  # residual additions
    assert report.activations > 0 and report.table is None
    bigger = count_flops("test_resnet", [64, 48])
    assert bigger.input_shape == (1, 3, 64, 48)
    assert bigger.by_operator["conv"] == report.by_operator["conv"] * 3


def test_table_depth() -> None:
    shallow = count_flops("test_resnet", table=True, depth=1).table
    deep = count_flops("test_resnet", table=True, depth=3).table
    assert "layer1.0" in shallow and "layer1.0.conv1" not in shallow
    assert "layer1.0.conv1" in deep
    assert "#activations" in deep


def test_attention_handles_count_both_products() -> None:
    import torch

    q, k, v = torch.zeros(2, 3, 5, 8), torch.zeros(2, 3, 7, 8), torch.zeros(2, 3, 7, 4)

    class Shape:  # fvcore handles receive JIT values; get_shape reads their type's sizes
        def __init__(self, tensor: torch.Tensor) -> None:
            self.shape = tensor.shape

        def isCompleteTensor(self) -> bool:  # noqa: N802 (JIT API)
            return True

        def type(self) -> "Shape":
            return self

        def sizes(self) -> list[int]:
            return list(self.shape)

    assert sdpa_flop_handle([Shape(q), Shape(k), Shape(v)], []) == 2 * 3 * 5 * 7 * (8 + 4)
    x = torch.zeros(1, 4, 6)
    # in-projections 3 x (4*6*6), attention 2 x 4*4*6, out-projection 4*6*6
    assert native_mha_flop_handle([Shape(x)] * 3, []) == 4 * 4 * 6 * 6 + 2 * 4 * 4 * 6


def test_recipe_and_checkpoint_sources(tiny_recipe: Path, trained_checkpoint: Path) -> None:
    from_recipe = count_flops(tiny_recipe)
    assert from_recipe.model_name == "test_resnet"
    assert from_recipe.by_operator["linear"] == 64 * 3  # three classes in the recipe's dataset
    from_checkpoint = count_flops(trained_checkpoint)
    assert from_checkpoint.flops == from_recipe.flops
    assert from_checkpoint.params == from_recipe.params


def test_transformer_and_errors() -> None:
    assert count_flops("test_swin").by_operator["matmul"] > 0
    with pytest.raises(ClsctlError, match="does not run on a 48x48"):
        count_flops("test_vit", [48])
    with pytest.raises(ClsctlError, match="one size .* or two"):
        count_flops("test_resnet", [1, 2, 3])
    with pytest.raises(ClsctlError, match="file not found"):
        count_flops("missing.yaml")
    with pytest.raises(ClsctlError):
        count_flops("resnet5")
