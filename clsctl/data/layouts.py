"""Readers of public dataset layouts on disk: ImageNet, CUB-200-2011, PASCAL VOC 2007, OpenMMLab 2.0 JSON.

Each returns ``(samples, classes, ...)`` for :class:`clsctl.data.datasets.ImageListDataset`; none decodes
an image.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from clsctl.errors import DataError
from clsctl.readers import read_json
from clsctl.readers import read_text

VOC_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
               "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor")


def read_class_names(spec: list[str] | str, base: Path) -> list[str]:
    """Class names from a list or from a text file with one name per line."""
    if isinstance(spec, list):
        return spec
    path = Path(spec) if Path(spec).is_absolute() else base / spec
    return [line.strip() for line in read_text(path, "classes file", DataError).splitlines() if line.strip()]


def read_annotation_file(root: Path, ann_file: Path, classes: Sequence[str] | None) -> list[tuple[str, int]]:
    """Read ``relative/path label`` lines; every label must index ``classes`` (when given)."""
    samples, problems = [], []
    for number, line in enumerate(read_text(ann_file, "annotation file", DataError).splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.rsplit(maxsplit=1)
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            problems.append(f"{ann_file}:{number}: expected 'path label', got {line!r}")
            continue
        label = int(parts[1])
        if label < 0 or (classes is not None and label >= len(classes)):
            count = "" if classes is None else f" for {len(classes)} classes"
            problems.append(f"{ann_file}:{number}: label {label} is out of range{count}")
            continue
        samples.append((str(root / parts[0]), label))
    if problems:
        raise DataError(f"{ann_file}: {len(problems)} bad line(s)", details=problems[:20])
    if not samples:
        raise DataError(f"{ann_file}: no samples")
    return samples


def _numbered_names(count: int) -> list[str]:
    return [str(i) for i in range(count)]


def read_imagenet(root: Path, split: str, classes: list[str] | str | None,
                  base: Path) -> tuple[list[tuple[str, int]], list[str]]:
    """``root/meta/<split>.txt`` lines ``relative/path label``, images under ``root/<split>``.

    Class names: ``classes`` (list or file), else ``root/meta/classes.txt``, else the sorted folder names of
    ``root/train`` (the synset order ImageNet labels follow), else ``0``, ``1``, ...
    """
    if not root.is_dir():
        raise DataError(f"ImageNet folder not found: {root} (expected {root}/meta/{split}.txt and {root}/{split}/)")
    names = None
    if classes is not None:
        names = read_class_names(classes, base)
    elif (root / "meta" / "classes.txt").is_file():
        names = read_class_names(str(root / "meta" / "classes.txt"), base)
    samples = read_annotation_file(root / split, root / "meta" / f"{split}.txt", names)
    count = 1 + max(label for _, label in samples)
    if names is None:
        folders = sorted(p.name for p in (root / "train").iterdir() if p.is_dir()) if (root / "train").is_dir() else []
        names = folders if len(folders) >= count else _numbered_names(count)
    if count > len(names):
        raise DataError(f"{root}/meta/{split}.txt: label {count - 1} is out of range for {len(names)} classes")
    return samples, names


def _id_table(path: Path) -> dict[int, str]:
    """``<id> <value>`` lines (CUB's metadata files)."""
    if not path.is_file():
        raise DataError(f"CUB-200-2011 file not found: {path}")
    table = {}
    for number, line in enumerate(read_text(path, "CUB-200-2011 file", DataError).splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or not parts[0].isdigit():
            raise DataError(f"{path}:{number}: expected '<id> <value>', got {line!r}")
        table[int(parts[0])] = parts[1].strip()
    return table


def read_cub(root: Path, split: str) -> tuple[list[tuple[str, int]], list[str]]:
    """CUB_200_2011: ``images.txt``, ``image_class_labels.txt`` (1-based), ``train_test_split.txt`` (1 = train)
    and ``classes.txt``; images under ``images/``. Class names lose their ``001.`` prefix."""
    images = _id_table(root / "images.txt")
    labels = _id_table(root / "image_class_labels.txt")
    is_train = _id_table(root / "train_test_split.txt")
    class_table = _id_table(root / "classes.txt")
    classes = [re.sub(r"^\d+\.", "", class_table[i]) for i in sorted(class_table)]
    want = "1" if split == "train" else "0"
    samples = []
    for image_id in sorted(images):
        if image_id not in labels or image_id not in is_train:
            raise DataError(f"{root}: image {image_id} has no label or no train/test flag")
        if is_train[image_id] == want:
            label = int(labels[image_id]) - 1
            if not 0 <= label < len(classes):
                raise DataError(f"{root}/image_class_labels.txt: label {label + 1} of image {image_id} is not in "
                                f"classes.txt")
            samples.append((str(root / "images" / images[image_id]), label))
    if not samples:
        raise DataError(f"{root}: no {split} images")
    return samples, classes


def read_voc(root: Path, split: str, difficult: str) -> tuple[list[tuple[str, tuple[int, ...]]], list[str],
                                                                 dict[int, tuple[int, ...]]]:
    """VOC2007 multi-label: image ids from ``ImageSets/Main/<split>.txt``, object names from
    ``Annotations/<id>.xml``, images ``JPEGImages/<id>.jpg``.

    Args:
        root: The ``VOC2007`` folder.
        split: ``train``, ``val``, ``trainval`` or ``test``.
        difficult: A class present only as difficult objects is ``ignore``-d (-1 target), ``positive`` or
            ``negative``.

    Returns:
        Samples with label tuples, the 20 class names, and the ignored labels per sample index.
    """
    ids_file = root / "ImageSets" / "Main" / f"{split}.txt"
    if not ids_file.is_file():
        raise DataError(f"VOC split file not found: {ids_file} (root must be the VOC2007 folder)")
    index = {name: i for i, name in enumerate(VOC_CLASSES)}
    samples, ignored = [], {}
    for image_id in read_text(ids_file, "VOC split file", DataError).split():
        xml = root / "Annotations" / f"{image_id}.xml"
        try:
            objects = ET.parse(xml).getroot().findall("object")
        except (OSError, ET.ParseError) as exc:
            raise DataError(f"cannot read VOC annotation {xml}: {exc}") from exc
        positive, hard = set(), set()
        for obj in objects:
            name = (obj.findtext("name") or "").strip()
            if name not in index:
                raise DataError(f"{xml}: unknown class {name!r}")
            (hard if (obj.findtext("difficult") or "0").strip() == "1" else positive).add(index[name])
        hard -= positive
        if difficult == "positive":
            positive |= hard
        elif difficult == "ignore" and hard:
            ignored[len(samples)] = tuple(sorted(hard))
        samples.append((str(root / "JPEGImages" / f"{image_id}.jpg"), tuple(sorted(positive))))
    if not samples:
        raise DataError(f"{ids_file}: no image ids")
    return samples, list(VOC_CLASSES), ignored


def read_openmmlab_json(root: Path, ann_file: Path, classes: list[str] | str | None,
                        base: Path) -> tuple[list[tuple[str, Any]], list[str], bool]:
    """An OpenMMLab 2.0 annotation file (``metainfo`` + ``data_list`` of ``img_path``/``gt_label``).

    Returns:
        Samples, class names (given, else ``metainfo.classes``, else ``0``, ``1``, ...) and whether the labels
        are lists (multi-label).
    """
    data = read_json(ann_file, what="annotation file", error=DataError)
    items = data.get("data_list") if isinstance(data, dict) else None
    if not isinstance(items, list) or not items:
        raise DataError(f"{ann_file}: expected a non-empty 'data_list' (OpenMMLab 2.0 annotation format)")
    multi_label = any(isinstance(item.get("gt_label"), list) for item in items if isinstance(item, dict))
    samples, problems = [], []
    for number, item in enumerate(items):
        label = item.get("gt_label") if isinstance(item, dict) else None
        path = item.get("img_path") if isinstance(item, dict) else None
        if multi_label and isinstance(label, int):
            label = [label]
        ok = isinstance(path, str) and (all(isinstance(v, int) and v >= 0 for v in label) if isinstance(label, list)
                                        else isinstance(label, int) and label >= 0)
        if not ok:
            problems.append(f"data_list[{number}]: needs 'img_path' (string) and 'gt_label' (index or list)")
            continue
        samples.append((str(root / path), tuple(label) if multi_label else label))
    if problems:
        raise DataError(f"{ann_file}: {len(problems)} bad entr(ies)", details=problems[:20])
    if classes is not None:
        names = read_class_names(classes, base)
    else:
        names = list((data.get("metainfo") or {}).get("classes") or [])
    largest = max(((max(t) if multi_label else t) for _, t in samples if not multi_label or t), default=-1)
    if not names:
        names = _numbered_names(largest + 1)
    if largest >= len(names):
        raise DataError(f"{ann_file}: label {largest} is out of range for {len(names)} classes")
    return samples, names, multi_label
