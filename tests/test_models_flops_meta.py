"""Every variant records its FLOPs; the small ones' records equal a fresh fvcore count."""

from __future__ import annotations

import pytest

from clsctl.analysis.flops import count_flops
from clsctl.models import list_models, model_info

ALL = list_models()
TORCHVISION_FLOPS = "torchvision weights metadata (_ops)"


def _is_small(name: str) -> bool:
    meta = model_info(name)
    return max(meta.input_size) <= 64 or meta.num_params < 5_000_000


def _case(name: str) -> pytest.param:
    # Counting a 224x224 model (or ResNet-110) takes seconds on a small CPU; the other 32x32 ones about one.
    meta = model_info(name)
    marks = [pytest.mark.slow] if max(meta.input_size) > 64 or meta.num_params > 1_000_000 else []
    return pytest.param(name, marks=marks, id=name)


@pytest.mark.parametrize("name", ALL)
def test_every_variant_records_flops(name: str) -> None:
    meta = model_info(name)
    assert meta.flops is not None and meta.flops > 0
    if meta.flops_source == "fvcore count (computed)":
        assert float(meta.flops).is_integer(), "a count is a whole number"


@pytest.mark.parametrize("name", [_case(n) for n in ALL if _is_small(n)])
def test_recorded_flops_match_a_fresh_count(name: str) -> None:
    meta = model_info(name)
    counted = count_flops(name).flops
    if meta.flops_source == TORCHVISION_FLOPS:
        # torchvision's published "GFLOPS" were counted by another tool (which leaves out, e.g., the BatchNorm
        # arithmetic fvcore counts) and rounded to 1 MFLOP: they are 2-6 % below fvcore's count for these small
        # models. Kept as published; checked to be the same quantity (multiply-adds, not 2x).
        assert 0.93 * counted <= meta.flops <= counted
    else:
        assert meta.flops == pytest.approx(counted, rel=0.01)


def test_the_filled_cifar_counts_are_the_known_resnet_cifar_figures() -> None:
    # He et al.'s ResNet-20 is about 41M multiply-adds (40.8M with option-A shortcuts; B adds the 1x1 projections).
    assert model_info("resnet20_cifar").flops == pytest.approx(41.2e6, rel=0.01)
    flops = [model_info(f"resnet{d}_cifar").flops for d in (20, 32, 44, 56, 110)]
    assert flops == sorted(flops) and model_info("resnet110_cifar").flops_source.startswith("fvcore")
