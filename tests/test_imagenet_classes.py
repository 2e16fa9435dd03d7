"""The shipped ImageNet-1k label set, and mapping dataset class names onto it."""

import importlib.util
from pathlib import Path

import pytest

from clsctl.data.imagenet_classes import imagenet_class_names, imagenet_synsets, imagenet_wnids, map_to_imagenet
from clsctl.errors import DataError


def test_shipped_wnids_and_lemmas_equal_timms_tables() -> None:
    spec = importlib.util.find_spec("timm")  # timm's data files, without importing timm (slow)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("timm is not installed")
    info = Path(spec.submodule_search_locations[0]) / "data" / "_info"
    assert imagenet_wnids() == info.joinpath("imagenet_synsets.txt").read_text().split()
    lemmas = dict(line.split("\t", 1) for line in info.joinpath("imagenet_synset_to_lemma.txt").read_text().splitlines()
                  if line.strip())
    for wnid, words in imagenet_synsets():
        assert ", ".join(words) == lemmas[wnid].strip()
    assert imagenet_wnids() == sorted(imagenet_wnids())  # label order is the sorted WordNet ids


def test_class_names_are_torchvisions_and_line_up_with_the_wnids() -> None:
    from torchvision.models import ResNet50_Weights

    names = imagenet_class_names()
    assert names == ResNet50_Weights.IMAGENET1K_V1.meta["categories"] and len(set(names)) == 1000
    assert (names[0], imagenet_wnids()[0]) == ("tench", "n01440764")
    assert (names[999], imagenet_wnids()[999]) == ("toilet tissue", "n15075141")


def test_map_by_wnid_by_name_and_by_lemma_ignoring_case_and_separators() -> None:
    assert map_to_imagenet(["n01440764", "n15075141"]) == [0, 999]
    assert map_to_imagenet(["goldfish", "Great_White_Shark", "toilet-tissue"]) == [1, 2, 999]
    assert map_to_imagenet(["Tinca tinca", "crane bird", "maillot tank suit"]) == [0, 134, 639]
    assert map_to_imagenet(["3", "0", "999"]) == [3, 0, 999]  # numbered classes are labels already


def test_unmapped_classes_are_named_in_the_error() -> None:
    with pytest.raises(DataError, match=r"2 class\(es\) not in ImageNet-1k: cat, gldfish") as info:
        map_to_imagenet(["tench", "cat", "gldfish"])
    assert any("'gldfish'" in line and "'goldfish'" in line for line in info.value.details)  # close match offered


def test_ambiguous_names_and_duplicate_classes_are_errors() -> None:
    assert map_to_imagenet(["Cardigan", "cardigan", "crane"]) == [264, 474, 517]  # exact torchvision names
    with pytest.raises(DataError) as info:
        map_to_imagenet(["CARDIGAN", "panther"])
    message = str(info.value)
    assert "'CARDIGAN' names several ImageNet classes: 264 n02113186 (Cardigan), 474 n02963159 (cardigan)" in message
    assert "'panther' names several ImageNet classes: 286 n02125311 (cougar), 290 n02128925 (jaguar)" in message
    with pytest.raises(DataError, match="'tench' and 'n01440764' are the same ImageNet class"):
        map_to_imagenet(["tench", "n01440764"])
    with pytest.raises(DataError, match="outside ImageNet-1k"):
        map_to_imagenet(["1000"])
