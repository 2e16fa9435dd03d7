"""The ImageNet-1k label set, and mapping a dataset's class names onto it.

The 1,000 WordNet ids (``n01440764`` ...) and their WordNet lemmas ship with clsctl in
``imagenet1k_synsets.txt`` (``<wnid><TAB><lemma>, <lemma>, ...`` in label order: the sorted WordNet ids, the
order every ImageNet-1k model's logits follow). The short class names are torchvision's (its bundled weights
metadata, no download), which are unique where WordNet lemmas are not ("crane bird" and "crane").
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Sequence
from pathlib import Path

from clsctl.errors import DataError

SYNSETS_FILE = Path(__file__).with_name("imagenet1k_synsets.txt")
WNID_PATTERN = re.compile(r"^n\d{8}$")


@functools.lru_cache(maxsize=1)
def imagenet_synsets() -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``(wnid, lemmas)`` of the 1,000 classes, in label order."""
    rows = []
    for line in SYNSETS_FILE.read_text(encoding="utf-8").splitlines():
        if line.strip():
            wnid, _, lemmas = line.partition("\t")
            rows.append((wnid, tuple(name.strip() for name in lemmas.split(","))))
    return tuple(rows)


def imagenet_wnids() -> list[str]:
    """The 1,000 WordNet ids, in label order."""
    return [wnid for wnid, _ in imagenet_synsets()]


def imagenet_class_names() -> list[str]:
    """The 1,000 ImageNet-1k class names, from torchvision's bundled metadata (no download)."""
    from torchvision.models import ResNet50_Weights

    return list(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


def _key(name: str) -> str:
    """Case, ``_``/``-`` and repeated blanks do not matter when matching names."""
    return " ".join(name.replace("_", " ").replace("-", " ").lower().split())


@functools.lru_cache(maxsize=1)
def _name_index() -> tuple[dict[str, int], dict[str, tuple[int, ...]], dict[str, tuple[int, ...]]]:
    """torchvision name -> label; the same ignoring case and separators -> labels ("Cardigan" the dog and
    "cardigan" the sweater); WordNet lemma -> labels (some lemmas name several classes)."""
    names = imagenet_class_names()
    exact = {name: index for index, name in enumerate(names)}
    loose: dict[str, list[int]] = {}
    for index, name in enumerate(names):
        loose.setdefault(_key(name), []).append(index)
    lemmas: dict[str, list[int]] = {}
    for index, (_, words) in enumerate(imagenet_synsets()):
        for word in words:
            labels = lemmas.setdefault(_key(word), [])
            if index not in labels:
                labels.append(index)
    return (exact, {key: tuple(labels) for key, labels in loose.items()},
            {word: tuple(labels) for word, labels in lemmas.items()})


def _describe(label: int) -> str:
    return f"{label} {imagenet_synsets()[label][0]} ({imagenet_class_names()[label]})"


def map_to_imagenet(class_names: Sequence[str]) -> list[int]:
    """The ImageNet-1k label of each of a dataset's classes.

    A class is found by its WordNet id (``n01440764``), by its torchvision name (``tench``, ``crane bird``;
    exact, then ignoring case, ``_`` and ``-``), or by one of its WordNet lemmas (``Tinca tinca``, likewise). Class names that are all
    numbers (an ImageNet ``meta/<split>.txt`` layout without ``classes.txt``) are labels already.

    Raises:
        DataError: Classes that match no ImageNet-1k class, or a lemma shared by several classes (both
            named with the candidates), or two classes matching the same ImageNet class.
    """
    if class_names and all(name.isdigit() for name in class_names):
        labels = [int(name) for name in class_names]
        outside = [name for name, label in zip(class_names, labels) if label >= 1000]
        if outside:
            raise DataError(f"numbered classes {outside} are outside ImageNet-1k's labels 0-999")
        return labels
    wnids = {wnid: index for index, wnid in enumerate(imagenet_wnids())}
    exact, loose, lemmas = _name_index()
    labels, problems, unknown = [], [], []
    for name in class_names:
        key = _key(name)
        # The first rule that finds exactly one class wins; one that finds several makes the name ambiguous.
        found = next((candidates for candidates in (
            (wnids[name.strip()],) if WNID_PATTERN.match(name.strip()) and name.strip() in wnids else (),
            (exact[name.strip()],) if name.strip() in exact else (),
            loose.get(key, ()),
            lemmas.get(key, ()),
        ) if candidates), ())
        if len(found) == 1:
            labels.append(found[0])
        elif found:
            candidates = ", ".join(_describe(label) for label in found)
            problems.append(f"'{name}' names several ImageNet classes: {candidates}; name the folder by WordNet id")
        else:
            unknown.append(name)
            close = difflib.get_close_matches(key, list(loose), n=3, cutoff=0.75)
            hint = f" (close: {', '.join(repr(c) for c in close)})" if close else ""
            problems.append(f"'{name}' is no ImageNet-1k WordNet id or class name{hint}")
    if problems:
        what = f"{len(unknown)} class(es) not in ImageNet-1k: {', '.join(unknown)}" if unknown else \
            "ambiguous class names"
        raise DataError(f"the dataset's classes do not map onto the model's ImageNet-1k classes: {what}",
                        details=problems[:20] + ["name class folders by WordNet id (n01440764) or ImageNet class "
                                                 "name (tench)"])
    seen: dict[int, str] = {}
    for name, label in zip(class_names, labels):
        if label in seen:
            raise DataError(f"dataset classes '{seen[label]}' and '{name}' are the same ImageNet class "
                            f"({_describe(label)})")
        seen[label] = name
    return labels
