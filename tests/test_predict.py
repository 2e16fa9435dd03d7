"""predict(): files, folders, globs; checkpoint and registered-model sources."""

from pathlib import Path

import pytest

from clsctl.engine.predict import expand_images, imagenet_class_names, predict
from clsctl.errors import DataError

from helpers import write_image_folder


def test_expand_images_handles_files_folders_globs(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "imgs", per_class=2)
    (root / "notes.txt").write_text("not an image")
    single = root / "red" / "0.png"
    found = expand_images([str(single), str(root / "green"), str(root / "b*" / "*.png"), str(single)])
    assert found[0] == single
    assert len(found) == 1 + 2 + 2  # the repeated file counted once
    with pytest.raises(DataError, match="image not found"):
        expand_images([str(tmp_path / "missing.png")])
    with pytest.raises(DataError, match="no images match"):
        expand_images([str(tmp_path / "*.jpg")])


def test_predict_with_checkpoint(trained_checkpoint: Path, tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "imgs", per_class=2, seed=3)
    results = predict([str(root)], checkpoint=trained_checkpoint, topk=2)
    assert len(results) == 6
    for result in results:
        assert len(result.topk) == 2
        assert result.topk[0][2] >= result.topk[1][2]
        assert {name for _, name, _ in result.topk} <= {"red", "green", "blue"}
    probabilities = predict([str(root / "red" / "0.png")], checkpoint=trained_checkpoint, topk=10)[0].topk
    assert len(probabilities) == 3 and sum(p for _, _, p in probabilities) == pytest.approx(1.0, abs=1e-5)
    assert results[0].to_dict()["topk"][0].keys() == {"class", "name", "probability"}


def test_predict_with_model_name_uses_imagenet_names(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "imgs", per_class=1)
    names = imagenet_class_names()
    assert len(names) == 1000 and names[0] == "tench"
    results = predict([str(root / "red" / "0.png")], model="resnet18", topk=3)
    assert all(name in names for _, name, _ in results[0].topk)
    small = predict([str(root / "red" / "0.png")], model="test_resnet", num_classes=4, topk=2)
    assert {name for _, name, _ in small[0].topk} <= {"class_0", "class_1", "class_2", "class_3"}
