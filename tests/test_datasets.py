"""Datasets: decoding, unreadable images, seeded items, and every layout on tiny fake trees in tmp_path."""

import hashlib
import json
import logging
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from clsctl.data.preprocessing import validate_steps
import torch
from PIL import Image
from pydantic import TypeAdapter
from torch.utils.data import DataLoader

from clsctl.data.datasets import ImageListDataset, build_dataset, exclude_replaced_samples
from clsctl.data.layouts import VOC_CLASSES
from clsctl.data.transforms import build_pipeline
from clsctl.errors import DataError
from clsctl.recipe import schema as S

from helpers import write_image_folder

DATASET = TypeAdapter(S.Dataset)


def _config(**entry: object) -> S.Dataset:
    return DATASET.validate_python(entry)


def _save(path: Path, value: int, size: int = 8) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size, 3), value, dtype=np.uint8)).save(path)


# --------------------------------------------------------------------------- decoding


# --------------------------------------------------------------------------- image folder, bad images, seeds


def test_image_folder_items_and_seeded_augmentation(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "train", per_class=2)
    steps = validate_steps([{"type": "random_resized_crop", "size": 16}, {"type": "color_jitter",
                                                                             "brightness": 0.5}])
    dataset = build_dataset(_config(type="image_folder", root=str(root)), build_pipeline(steps, [0.5] * 3, [0.5] * 3))
    assert dataset.classes == ["blue", "green", "red"] and len(dataset) == 6 and dataset.targets == [0, 0, 1, 1, 2, 2]
    image, label = dataset[(3, 1234)]
    assert image.shape == (3, 16, 16) and label == 1
    torch.testing.assert_close(dataset[(3, 1234)][0], image)
    assert not torch.equal(dataset[(3, 999)][0], image)


def _folder_with_broken_file(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    _save(root / "a" / "0.png", 10)
    (root / "a" / "1.png").write_bytes(b"\x89PNG broken")
    _save(root / "b" / "0.png", 200)
    return root


def test_unreadable_image_is_replaced_by_the_next_and_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = _folder_with_broken_file(tmp_path)
    dataset = build_dataset(_config(type="image_folder", root=str(root)), build_pipeline([], [0] * 3, [1] * 3))
    with caplog.at_level(logging.WARNING, logger="clsctl"):
        image, label = dataset[(1, 5)]
    assert label == 1 and image.mean().item() == pytest.approx(200 / 255)  # b/0.png stands in for a/1.png
    assert dataset.bad_image_count == 1 and "1.png" in caplog.text
    dataset[1]
    assert dataset.bad_image_count == 2
    # worker processes share the count with the main process
    loader = DataLoader(dataset, batch_size=3, num_workers=1)
    images, labels = next(iter(loader))
    assert labels.tolist() == [0, 1, 1] and dataset.bad_image_count == 3
    spawned = DataLoader(dataset, batch_size=3, num_workers=1, multiprocessing_context="spawn")
    next(iter(spawned))
    assert dataset.bad_image_count == 4
    # an ordinary copy (pickle, deepcopy) keeps the count so far but counts on its own
    copy = pickle.loads(pickle.dumps(dataset))
    copy[1]
    assert copy.bad_image_count == 5 and dataset.bad_image_count == 4


def test_evaluation_leaves_unreadable_images_out(tmp_path: Path) -> None:
    root = _folder_with_broken_file(tmp_path)
    dataset = exclude_replaced_samples(build_dataset(_config(type="image_folder", root=str(root)),
                                                     build_pipeline([], [0] * 3, [1] * 3)))
    image, label = dataset[1]
    assert label == -1 and image.shape == (3, 8, 8)  # a stand-in image keeps the batch shape
    assert dataset[0][1] == 0 and dataset[2][1] == 1 and dataset.bad_image_count == 1
    multi = ImageListDataset([(str(root / "a" / "1.png"), (0,)), (str(root / "b" / "0.png"), (1,))], ["a", "b"],
                             multi_label=True)
    assert exclude_replaced_samples(multi)[0][1].tolist() == [-1.0, -1.0]
    assert multi[1][1].tolist() == [0.0, 1.0]


def test_on_bad_image_fail_stops_with_a_clear_error(tmp_path: Path) -> None:
    root = _folder_with_broken_file(tmp_path)
    dataset = build_dataset(_config(type="image_folder", root=str(root)), on_bad_image="fail")
    with pytest.raises(DataError, match=r"cannot read image .*1\.png.*on_bad_image"):
        dataset[1]
    assert S.DataConfig().on_bad_image == "skip"


def test_all_images_unreadable_is_an_error(tmp_path: Path) -> None:
    for i in range(3):
        (tmp_path / "c" / f"{i}.png").parent.mkdir(exist_ok=True)
        (tmp_path / "c" / f"{i}.png").write_bytes(b"junk")
    dataset = ImageListDataset([(str(p), 0) for p in sorted((tmp_path / "c").iterdir())], ["c"])
    with pytest.raises(DataError, match="cannot be read"):
        dataset[0]


# --------------------------------------------------------------------------- ImageNet layout, ann file, JSON


def test_imagenet_layout(tmp_path: Path) -> None:
    root = tmp_path / "imagenet"
    for synset, value in (("n01", 10), ("n02", 20)):
        _save(root / "train" / synset / f"{synset}_1.JPEG", value)
    _save(root / "val" / "v1.JPEG", 30)
    _save(root / "val" / "v2.JPEG", 40)
    (root / "meta").mkdir()
    (root / "meta" / "train.txt").write_text("n01/n01_1.JPEG 0\nn02/n02_1.JPEG 1\n")
    (root / "meta" / "val.txt").write_text("v1.JPEG 1\nv2.JPEG 0\n")
    train = build_dataset(_config(type="imagenet", root=str(root)))
    val = build_dataset(_config(type="imagenet", root=str(root), split="val"))
    assert train.classes == val.classes == ["n01", "n02"]
    assert val.samples == [(str(root / "val" / "v1.JPEG"), 1), (str(root / "val" / "v2.JPEG"), 0)]
    assert val[0][1] == 1 and np.asarray(val[0][0])[0, 0, 0] == 30
    (root / "meta" / "classes.txt").write_text("tench\ngoldfish\n")
    assert build_dataset(_config(type="imagenet", root=str(root), split="val")).classes == ["tench", "goldfish"]
    with pytest.raises(DataError, match="annotation file not found"):
        build_dataset(_config(type="imagenet", root=str(root), split="test"))


def test_openmmlab_json_single_and_multi_label(tmp_path: Path) -> None:
    _save(tmp_path / "img" / "a.png", 50)
    _save(tmp_path / "img" / "b.png", 60)
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps({"metainfo": {"classes": ["x", "y", "z"]},
                               "data_list": [{"img_path": "a.png", "gt_label": 2},
                                             {"img_path": "b.png", "gt_label": 0}]}))
    single = build_dataset(_config(type="openmmlab_json", ann_file=str(ann), root=str(tmp_path / "img")))
    assert single.classes == ["x", "y", "z"] and single.targets == [2, 0] and single[0][1] == 2
    ann.write_text(json.dumps({"metainfo": {"classes": ["x", "y", "z"]},
                               "data_list": [{"img_path": "a.png", "gt_label": [0, 2]},
                                             {"img_path": "b.png", "gt_label": 1}]}))
    multi = build_dataset(_config(type="openmmlab_json", ann_file="ann.json", root="img"), base_dir=tmp_path)
    assert multi.multi_label and multi.targets == [(0, 2), (1,)]
    assert multi[0][1].tolist() == [1.0, 0.0, 1.0]
    ann.write_text(json.dumps({"data_list": [{"img_path": "a.png", "gt_label": 4}]}))
    assert build_dataset(_config(type="openmmlab_json", ann_file=str(ann))).classes == ["0", "1", "2", "3", "4"]
    ann.write_text(json.dumps({"data_list": [{"img_path": "a.png"}]}))
    with pytest.raises(DataError, match="bad entr"):
        build_dataset(_config(type="openmmlab_json", ann_file=str(ann)))
    ann.write_text(json.dumps({"metainfo": {"classes": ["x"]}, "data_list": [{"img_path": "a.png", "gt_label": 3}]}))
    with pytest.raises(DataError, match="out of range"):
        build_dataset(_config(type="openmmlab_json", ann_file=str(ann)))


def test_annotation_file_dataset(tmp_path: Path) -> None:
    _save(tmp_path / "i" / "a.png", 5)
    (tmp_path / "ann.txt").write_text("a.png 1\n")
    config = _config(type="ann_file", root="i", ann_file="ann.txt", classes=["p", "q"])
    dataset = build_dataset(config, base_dir=tmp_path)
    assert dataset.samples == [(str(tmp_path / "i" / "a.png"), 1)]


# --------------------------------------------------------------------------- VOC, CUB


def _voc_object(name: str, difficult: int = 0) -> str:
    return f"<object><name>{name}</name><difficult>{difficult}</difficult></object>"


def test_voc2007_multi_label_with_difficult_objects(tmp_path: Path) -> None:
    root = tmp_path / "VOCdevkit" / "VOC2007"
    annotations = {"000001": _voc_object("dog") + _voc_object("person"),
                   "000002": _voc_object("cat") + _voc_object("dog", difficult=1),
                   "000003": _voc_object("car", difficult=1) + _voc_object("car")}
    (root / "Annotations").mkdir(parents=True)
    for image_id, objects in annotations.items():
        (root / "Annotations" / f"{image_id}.xml").write_text(f"<annotation>{objects}</annotation>")
        _save(root / "JPEGImages" / f"{image_id}.jpg", 100)
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "ImageSets" / "Main" / "trainval.txt").write_text("000001\n000002\n000003\n")
    dataset = build_dataset(_config(type="voc2007", root=str(root)))
    dog, person, cat, car = (VOC_CLASSES.index(n) for n in ("dog", "person", "cat", "car"))
    assert dataset.multi_label and len(dataset.classes) == 20
    assert dataset.targets == [tuple(sorted((dog, person))), (cat,), (car,)]
    target = dataset[1][1]
    assert target[cat] == 1 and target[dog] == -1 and target.sum() == 0  # difficult dog: ignored
    assert dataset[2][1][car] == 1  # also present as a normal object: positive
    positive = build_dataset(_config(type="voc2007", root=str(root), difficult="positive"))
    assert positive.targets[1] == tuple(sorted((cat, dog)))
    negative = build_dataset(_config(type="voc2007", root=str(root), difficult="negative"))
    assert negative[1][1][dog] == 0
    with pytest.raises(DataError, match="split file not found"):
        build_dataset(_config(type="voc2007", root=str(root), split="test"))


def test_cub200_layout(tmp_path: Path) -> None:
    root = tmp_path / "CUB_200_2011"
    files = ["001.Black_footed_Albatross/a.jpg", "001.Black_footed_Albatross/b.jpg", "002.Laysan_Albatross/c.jpg"]
    for i, name in enumerate(files):
        _save(root / "images" / name, 10 * i)
    root.joinpath("images.txt").write_text("".join(f"{i + 1} {n}\n" for i, n in enumerate(files)))
    root.joinpath("image_class_labels.txt").write_text("1 1\n2 1\n3 2\n")
    root.joinpath("train_test_split.txt").write_text("1 1\n2 0\n3 1\n")
    root.joinpath("classes.txt").write_text("1 001.Black_footed_Albatross\n2 002.Laysan_Albatross\n")
    train = build_dataset(_config(type="cub200", root=str(root)))
    test = build_dataset(_config(type="cub200", root=str(root), split="test"))
    assert train.classes == ["Black_footed_Albatross", "Laysan_Albatross"]
    assert [Path(p).name for p, _ in train.samples] == ["a.jpg", "c.jpg"] and train.targets == [0, 1]
    assert test.targets == [0] and test[0][1] == 0
    root.joinpath("train_test_split.txt").unlink()
    with pytest.raises(DataError, match="train_test_split.txt"):
        build_dataset(_config(type="cub200", root=str(root)))


# --------------------------------------------------------------------------- torchvision datasets


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _write_cifar(root: Path, monkeypatch: pytest.MonkeyPatch, hundred: bool = False) -> np.ndarray:
    """CIFAR's pickled batches with 4 images each; torchvision's expected checksums are set to theirs."""
    from torchvision import datasets

    cls = datasets.CIFAR100 if hundred else datasets.CIFAR10
    folder = root / cls.base_folder
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    first = None
    label_key = "fine_labels" if hundred else "labels"
    entries = {}
    for name, _ in cls.train_list + cls.test_list:
        data = rng.integers(0, 256, (4, 3072), dtype=np.uint8)
        first = data if first is None else first
        (folder / name).write_bytes(pickle.dumps({"data": data, label_key: [0, 1, 2, 1]}))
        entries[name] = _md5(folder / name)
    names = [f"class{i}" for i in range(100 if hundred else 10)]
    meta = folder / cls.meta["filename"]
    meta.write_bytes(pickle.dumps({cls.meta["key"]: names}))
    monkeypatch.setattr(cls, "train_list", [[n, entries[n]] for n, _ in cls.train_list])
    monkeypatch.setattr(cls, "test_list", [[n, entries[n]] for n, _ in cls.test_list])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": _md5(meta)})
    return first


@pytest.mark.parametrize("hundred", [False, True])
def test_cifar_from_torchvision_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hundred: bool) -> None:
    first = _write_cifar(tmp_path, monkeypatch, hundred)
    kind = "cifar100" if hundred else "cifar10"
    train = build_dataset(_config(type=kind, root=str(tmp_path), download=False))
    test = build_dataset(_config(type=kind, root=str(tmp_path), split="test", download=False))
    batches = 1 if hundred else 5
    assert len(train) == 4 * batches and len(test) == 4
    assert len(train.classes) == (100 if hundred else 10) and train.targets[:4] == [0, 1, 2, 1]
    image, label = train[0]
    np.testing.assert_array_equal(np.asarray(image), first[0].reshape(3, 32, 32).transpose(1, 2, 0))
    assert label == 0 and train.samples[1] == (f"{kind}/train/1", 1)


@pytest.mark.parametrize(("kind", "folder"), [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_mnist_family_from_idx_files(tmp_path: Path, kind: str, folder: str) -> None:
    raw = tmp_path / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(1)
    images = {}
    for prefix, count in (("train", 5), ("t10k", 3)):
        pixels = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
        images[prefix] = pixels
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, count, 28, 28) + pixels.tobytes())
        labels = np.arange(count, dtype=np.uint8) % 10
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, count) + labels.tobytes())
    train = build_dataset(_config(type=kind, root=str(tmp_path), download=False))
    test = build_dataset(_config(type=kind, root=str(tmp_path), split="test"))
    assert len(train) == 5 and len(test) == 3 and len(train.classes) == 10 and test.targets == [0, 1, 2]
    image, label = train[2]
    assert image.mode == "RGB" and label == 2
    np.testing.assert_array_equal(np.asarray(image)[..., 1], images["train"][2])


def test_missing_torchvision_data_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from urllib.error import URLError

    from torchvision import datasets

    with pytest.raises(DataError, match=r"cifar10 not found .*cifar-10-batches-py.*download: true"):
        build_dataset(_config(type="cifar10", root=str(tmp_path), download=False))

    def offline(self: object) -> None:
        raise URLError("no network")

    monkeypatch.setattr(datasets.MNIST, "download", offline)
    with pytest.raises(DataError, match=r"cannot download mnist .*no network.*MNIST/raw"):
        build_dataset(_config(type="mnist", root=str(tmp_path)))


# --------------------------------------------------------------------------- loaders


def test_loader_settings_and_worker_independent_augmentation(tmp_path: Path) -> None:
    from clsctl.data.loaders import build_loader

    root = write_image_folder(tmp_path / "train", per_class=3)
    steps = validate_steps([{"type": "random_resized_crop", "size": 12}, {"type": "random_erasing", "prob": 0.5}])
    dataset = build_dataset(_config(type="image_folder", root=str(root)), build_pipeline(steps, [0.5] * 3, [0.5] * 3))
    batches = {}
    for workers in (0, 2):
        loader = build_loader(dataset, S.LoaderConfig(batch_size=4, num_workers=workers, prefetch_factor=2), train=True,
                              seed=3)
        if workers:
            assert loader.prefetch_factor == 2 and loader.persistent_workers
        loader.sampler.set_epoch(1)
        batches[workers] = [(images, labels) for images, labels in loader]
    for (a, y_a), (b, y_b) in zip(batches[0], batches[2]):
        torch.testing.assert_close(a, b)
        assert y_a.tolist() == y_b.tolist()


def test_items_decode_to_what_the_pipeline_takes(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "data", per_class=1)
    seen = []

    def probe(image: object) -> torch.Tensor:
        seen.append(type(image).__name__)
        return torch.zeros(1)

    build_dataset(_config(type="image_folder", root=str(root)), probe)[(0, 1)]
    assert seen == ["Tensor"]  # every pipeline, training's and evaluation's, gets uint8 tensors
    assert type(build_dataset(_config(type="image_folder", root=str(root)))[0][0]).__name__ == "Image"  # tools: PIL
    image, _ = build_dataset(_config(type="image_folder", root=str(root)),
                             build_pipeline([], [0] * 3, [1] * 3, output="uint8"))[0]
    assert image.dtype == torch.uint8 and image.shape == (3, 32, 32)
