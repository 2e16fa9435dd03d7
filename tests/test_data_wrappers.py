"""Dataset wrappers: repeat, concat, class-balanced (repeat-factor sampling), K-fold; schema rules."""

import math
from pathlib import Path

import pytest

from clsctl.data.preprocessing import validate_steps
import torch
from pydantic import TypeAdapter, ValidationError

from clsctl.data.datasets import build_dataset, exclude_replaced_samples
from clsctl.data.transforms import build_pipeline
from clsctl.data.wrappers import kfold_indices, repeat_factors
from clsctl.errors import DataError
from clsctl.recipe import schema as S

from helpers import write_image_folder

DATASET = TypeAdapter(S.Dataset)


@pytest.fixture()
def folder(tmp_path: Path) -> dict:
    root = write_image_folder(tmp_path / "a", per_class=3)
    return {"type": "image_folder", "root": str(root), "pipeline": [{"type": "random_resized_crop", "size": 8}]}


def _build(entry: dict):  # noqa: ANN202
    config = DATASET.validate_python(entry)
    return build_dataset(config, build_pipeline(config.pipeline, [0.5] * 3, [0.5] * 3))


def test_repeat_repeats_samples_with_their_own_seeds(folder: dict) -> None:
    dataset = _build({"type": "repeat", "times": 3, "dataset": folder})
    inner = _build(folder)
    assert len(dataset) == 27 and dataset.samples[9:18] == inner.samples and dataset.classes == inner.classes
    torch.testing.assert_close(dataset[(10, 42)][0], inner[(1, 42)][0])
    assert dataset[(10, 42)][1] == inner.samples[1][1]
    assert not torch.equal(dataset[(1, 1)][0], dataset[(10, 2)][0])  # same file, other seed


def test_concat_joins_datasets_with_the_same_classes(folder: dict, tmp_path: Path) -> None:
    other = write_image_folder(tmp_path / "b", per_class=1, seed=5)
    dataset = _build({"type": "concat", "datasets": [folder, {"type": "image_folder", "root": str(other)}]})
    assert len(dataset) == 12 and dataset.samples[9][0].startswith(str(other))
    assert dataset[(9, 0)][1] == 0 and dataset[(11, 0)][1] == 2
    assert dataset[(11, 0)][0].shape == (3, 8, 8)  # the first dataset's pipeline runs for all
    with pytest.raises(IndexError):
        dataset[12]
    (tmp_path / "c" / "dog").mkdir(parents=True)
    write_image_folder(tmp_path / "c", per_class=1)
    with pytest.raises(DataError, match="different classes"):
        _build({"type": "concat", "datasets": [folder, {"type": "image_folder", "root": str(tmp_path / "c")}]})


def test_concat_pipeline_rule_and_wrapper_pipeline_property(folder: dict) -> None:
    other = {**folder, "pipeline": [{"type": "center_crop", "size": 4}]}
    with pytest.raises(ValidationError, match="one pipeline"):
        DATASET.validate_python({"type": "concat", "datasets": [folder, other]})
    config = DATASET.validate_python({"type": "kfold", "fold": 1, "dataset": {"type": "repeat", "times": 2,
                                                                            "dataset": folder}})
    assert config.pipeline == validate_steps(folder["pipeline"])
    with pytest.raises(ValidationError):
        DATASET.validate_python({"type": "repeat", "times": 2, "dataset": folder, "pipeline": []})
    with pytest.raises(ValidationError, match="fold must be below"):
        DATASET.validate_python({"type": "kfold", "fold": 5, "num_splits": 5, "dataset": folder})


def test_repeat_factors_follow_lvis_rule() -> None:
    # class 0 in 8 of 10 samples, class 1 in 2, class 2 in 1 (with class 1)
    targets = [0] * 8 + [1, (1, 2)]
    factors = repeat_factors(targets, 3, threshold=0.5)
    r1, r2 = math.sqrt(0.5 / 0.2), math.sqrt(0.5 / 0.1)
    assert factors == pytest.approx([1.0] * 8 + [r1, max(r1, r2)])


def test_class_balanced_oversamples_rare_classes(tmp_path: Path) -> None:
    root = tmp_path / "imb"
    write_image_folder(root, per_class=1)
    write_image_folder(tmp_path / "more", per_class=6)
    for path in (tmp_path / "more" / "red").iterdir():  # red: 7 images, blue and green: 1 each
        path.rename(root / "red" / f"x{path.name}")
    dataset = _build({"type": "class_balanced", "oversample_thr": 0.5,
                      "dataset": {"type": "image_folder", "root": str(root)}})
    counts = [dataset.targets.count(c) for c in range(3)]
    # blue/green: frequency 1/9 -> ceil(sqrt(0.5 * 9)) = 3 copies; red: frequency 7/9 > 0.5 -> once each
    assert counts == [3, 3, 7] and len(dataset) == 13


def test_kfold_folds_partition_the_data(folder: dict) -> None:
    n = 9
    held = [kfold_indices(n, f, 3, test_mode=True, seed=0) for f in range(3)]
    assert sorted(i for fold in held for i in fold) == list(range(n))
    for f in range(3):
        rest = kfold_indices(n, f, 3, test_mode=False, seed=0)
        assert set(rest).isdisjoint(held[f]) and len(rest) + len(held[f]) == n
    assert kfold_indices(n, 0, 3, test_mode=True, seed=None) == [0, 1, 2]
    assert held != [kfold_indices(n, f, 3, test_mode=True, seed=1) for f in range(3)]
    train = _build({"type": "kfold", "fold": 2, "num_splits": 3, "dataset": folder})
    val = _build({"type": "kfold", "fold": 2, "num_splits": 3, "test_mode": True, "dataset": folder})
    assert len(train) == 6 and len(val) == 3 and not set(train.samples) & set(val.samples)
    assert val[(0, 7)][0].shape == (3, 8, 8)
    with pytest.raises(DataError, match="cannot make"):
        kfold_indices(2, 0, 3, test_mode=True, seed=0)


def test_wrappers_report_bad_images_of_their_parts(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "d", per_class=2)
    (tmp_path / "d" / "red" / "0.png").write_bytes(b"broken")
    dataset = _build({"type": "repeat", "times": 2, "dataset": {"type": "image_folder", "root": str(tmp_path / "d")}})
    broken = next(i for i, (p, _) in enumerate(dataset.samples) if p.endswith("red/0.png"))
    image, label = dataset[(broken, 0)]
    assert label == 2 and dataset.bad_image_count == 1
    exclude_replaced_samples(dataset)  # reaches the image folder inside the wrapper
    assert dataset[(broken, 0)][1] == -1 and dataset[(broken + 1, 0)][1] == 2
