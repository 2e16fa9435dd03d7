"""The name registry: normalisation, duplicates, suggestions, wildcards."""

import pytest

from clsctl.errors import UnknownNameError
from clsctl.registry import Registry, normalize_name, suggest


def make_registry() -> Registry[int]:
    registry: Registry[int] = Registry("thing")
    for value, name in enumerate(["resnet50", "resnet101", "convnext_tiny", "vit_b_16"]):
        registry.add(name, value)
    return registry


def test_separators_and_case_do_not_matter() -> None:
    registry = make_registry()
    assert registry.get("resnet-50") == registry.get("ResNet_50") == registry.get("resnet50") == 0
    assert registry.get("convnext-tiny") == 2
    assert registry.get("vit-b16") == 3
    assert registry.canonical("ConvNeXt-Tiny") == "convnext_tiny"
    assert normalize_name(" Vit-B_16 ") == "vitb16"


def test_duplicate_name_raises_even_with_other_separators() -> None:
    registry = make_registry()
    with pytest.raises(ValueError, match="already registered"):
        registry.add("resnet-50", 9)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("convnext-tiny")(lambda: None)


def test_unknown_name_suggests_close_matches() -> None:
    registry = make_registry()
    with pytest.raises(UnknownNameError) as info:
        registry.get("resnt50")
    assert "unknown thing 'resnt50'" in str(info.value)
    assert "'resnet50'" in str(info.value)
    with pytest.raises(UnknownNameError) as info:
        registry.get("zzzz")
    assert "did you mean" not in str(info.value)
    assert suggest("convnxt_tiny", registry.names()) == ["convnext_tiny"]


def test_wildcards_and_plain_substrings() -> None:
    registry = make_registry()
    assert registry.names("resnet*") == ["resnet50", "resnet101"]  # natural order
    assert registry.names("*tiny") == ["convnext_tiny"]
    assert registry.names("net") == ["resnet50", "resnet101"]
    assert registry.names("vit-b16") == ["vit_b_16"]
    assert registry.names() == ["convnext_tiny", "resnet50", "resnet101", "vit_b_16"]
    assert "RESNET-101" in registry and "resnet18" not in registry
    assert len(registry) == 4


def test_separator_between_digits_is_a_decimal_point() -> None:
    registry: Registry[int] = Registry("thing")
    registry.add("regnet_x_1.6gf", 1)
    registry.add("regnet_x_16gf", 16)
    assert registry.get("regnet_x_1_6gf") == 1 and registry.get("regnet-x-1.6gf") == 1
    assert registry.get("regnet_x_16gf") == 16 and registry.get("RegNetX16GF") == 16
    assert normalize_name("resnext50_32x4d") == normalize_name("resnext50-32x4d")
