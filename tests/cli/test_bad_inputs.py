"""Mistakes users make: each gives one clear error, a non-zero exit, no traceback, and touches nothing."""

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from clsctl.cli.main import app

from helpers import tiny_recipe_dict, write_image_folder


def run_train(runner: CliRunner, recipe: dict, tmp_path: Path) -> tuple[int, str]:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    result = runner.invoke(app, ["train", str(path), "--no-progress"])
    assert "Traceback" not in result.output
    return result.exit_code, " ".join(result.output.split())


def test_label_out_of_range_in_annotation_file(runner: CliRunner, tmp_path: Path) -> None:
    images = write_image_folder(tmp_path / "imgs", per_class=1)
    (tmp_path / "train.txt").write_text("red/0.png 0\ngreen/0.png 1\nblue/0.png 7\n", encoding="utf-8")
    recipe = tiny_recipe_dict(tmp_path, tmp_path / "run")
    recipe["data"]["train"] = {"type": "ann_file", "root": str(images), "ann_file": str(tmp_path / "train.txt"),
                               "classes": ["red", "green", "blue"]}
    recipe["data"]["val"] = None
    code, output = run_train(runner, recipe, tmp_path)
    assert code == 2
    assert f"{tmp_path / 'train.txt'}:3: label 7 is out of range for 3 classes" in output
    assert not (tmp_path / "run").exists()


def test_malformed_annotation_line(runner: CliRunner, tmp_path: Path) -> None:
    images = write_image_folder(tmp_path / "imgs", per_class=1)
    (tmp_path / "train.txt").write_text("red/0.png zero\n", encoding="utf-8")
    recipe = tiny_recipe_dict(tmp_path, tmp_path / "run")
    recipe["data"]["train"] = {"type": "ann_file", "root": str(images), "ann_file": str(tmp_path / "train.txt"),
                               "classes": ["red"]}
    code, output = run_train(runner, recipe, tmp_path)
    assert code == 2 and "expected 'path label'" in output


@pytest.mark.parametrize("layout, message", [
    ("missing", "dataset folder not found"),
    ("no-classes", "no class folders"),
    ("no-images", "no images found"),
])
def test_dataset_folder_problems(runner: CliRunner, tmp_path: Path, layout: str, message: str) -> None:
    root = tmp_path / "data"
    if layout != "missing":
        (root / "train").mkdir(parents=True)
    if layout == "no-images":
        (root / "train" / "cat").mkdir()
        (root / "train" / "cat" / "readme.txt").write_text("no images here")
    code, output = run_train(runner, tiny_recipe_dict(root, tmp_path / "run"), tmp_path)
    assert code == 2 and message in output
    assert not (tmp_path / "run").exists()


def test_wrong_types_and_unknown_keys(runner: CliRunner, tmp_path: Path, image_root: Path) -> None:
    recipe = tiny_recipe_dict(image_root, tmp_path / "run")
    recipe["data"]["loader"]["batch_size"] = "eight"
    recipe["optim"]["momentom"] = 0.9
    recipe["runtime"]["device"] = "tpu"
    code, output = run_train(runner, recipe, tmp_path)
    assert code == 2
    assert "data.loader.batch_size: Input should be a valid integer" in output
    assert "optim.momentom: unknown key 'momentom'; did you mean 'momentum'?" in output
    assert "runtime.device: String should match pattern" in output and "(got 'tpu')" in output
    assert "3 problems" in output


def test_invalid_yaml(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("model:\n  name: [resnet\n", encoding="utf-8")
    result = runner.invoke(app, ["train", str(path)])
    assert result.exit_code == 2 and "invalid YAML" in result.output and "Traceback" not in result.output


def test_unknown_model_kwarg(runner: CliRunner, tmp_path: Path, image_root: Path) -> None:
    recipe = tiny_recipe_dict(image_root, tmp_path / "run")
    recipe["model"]["kwargs"] = {"cifar_stm": True}
    code, output = run_train(runner, recipe, tmp_path)
    assert code == 2 and "model.kwargs:" in output and "cifar_stm" in output


def test_frozen_stages_out_of_range(runner: CliRunner, tmp_path: Path, image_root: Path) -> None:
    recipe = tiny_recipe_dict(image_root, tmp_path / "run")
    recipe["model"]["kwargs"] = {"frozen_stages": 9}
    code, output = run_train(runner, recipe, tmp_path)
    assert code == 2 and "model.kwargs: frozen_stages must be in [-1, 4]" in output


def test_binary_annotation_file(runner: CliRunner, tmp_path: Path) -> None:
    images = write_image_folder(tmp_path / "imgs", per_class=1)
    (tmp_path / "train.txt").write_bytes(b"\xff\xfe" + bytes(range(256)))
    recipe = tiny_recipe_dict(tmp_path, tmp_path / "run")
    recipe["data"]["train"] = {"type": "ann_file", "root": str(images), "ann_file": str(tmp_path / "train.txt"),
                               "classes": ["red", "green", "blue"]}
    code, output = run_train(runner, recipe, tmp_path)
    assert code == 2 and f"{tmp_path / 'train.txt'} is not an annotation file: not UTF-8 text" in output
