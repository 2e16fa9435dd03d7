"""Tests of clsctl.analysis.doctor."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clsctl.analysis.doctor import IN_SAMPLE_NOTE, dataset_doctor, hash_files, size_outliers
from clsctl.analysis.hashing import FileFacts
from clsctl.errors import ClsctlError
from clsctl.recipe import load_recipe
from doctor_helpers import SWAPS, clean_dataset, plant_problems, swap_labels
from helpers import write_image_folder


def test_clean_folder_reports_nothing(tmp_path: Path) -> None:
    recipe = load_recipe(clean_dataset(tmp_path))
    result = dataset_doctor(recipe, ("train", "val"), out=tmp_path / "doc", num_process=1, show_progress=False)
    assert result.clean and not result.failed, result.counts
    assert result.files == 45 and result.splits["train"].imbalance == 1.0
    data = json.loads((tmp_path / "doc" / "doctor.json").read_text())
    assert data["failed"] is False and set(data["counts"].values()) == {0}
    assert (tmp_path / "doc" / "index.html").is_file() and (tmp_path / "doc" / "class_counts.png").is_file()


def test_planted_problems_are_each_found(tmp_path: Path) -> None:
    recipe_path = clean_dataset(tmp_path)
    planted = plant_problems(tmp_path)
    data = tmp_path / "data"
    result = dataset_doctor(load_recipe(recipe_path), ("train", "val"), out=tmp_path / "doc", num_process=1,
                            show_progress=False)
    assert result.failed
    leaks = {(leak["held_out"]["path"], leak["earlier"]["path"], leak["kind"]) for leak in result.leaks}
    assert leaks == {(str(data / "val" / "red" / "0.png"), str(planted["val_copy"]), "exact"),
                     (str(data / "val" / "blue" / "1.png"), str(planted["near_leak"]), "near")}
    assert [{m["path"] for m in g["members"]} for g in result.exact_groups] == [
        {str(data / "val" / "red" / "0.png"), str(planted["val_copy"])}]
    within = [g for g in result.near_groups if g["splits"] == ["train"]]
    assert [{m["path"] for m in g["members"]} for g in within] == [
        {str(data / "train" / "green" / "3.png"), str(planted["near_dup"])}]
    assert [b.path for b in result.unreadable] == [str(planted["corrupt"])]
    assert [o["path"] for o in result.size_outliers] == [str(planted["wide"])]
    assert "aspect 5.00" in result.size_outliers[0]["reason"]
    assert result.splits["train"].small_classes == [("yellow", 2)]
    assert result.splits["train"].imbalance == pytest.approx(12 / 2)  # red and blue: 10 + 2 planted files each
    assert result.counts == {"unreadable": 1, "exact_groups": 1, "near_groups": 2, "leaks": 2, "size_outliers": 1,
                             "label_issues": 0, "small_classes": 2}


def test_threshold_zero_finds_only_identical_hashes(tmp_path: Path) -> None:
    recipe_path = clean_dataset(tmp_path)
    plant_problems(tmp_path)
    strict = dataset_doctor(load_recipe(recipe_path), ("train", "val"), out=None, threshold=0, hash_kind="dhash",
                            num_process=1, show_progress=False)
    assert strict.counts["exact_groups"] == 1 and strict.json_path is None


def test_later_splits_leak_into_earlier_ones_only(tmp_path: Path) -> None:
    recipe_path = clean_dataset(tmp_path)
    plant_problems(tmp_path)
    result = dataset_doctor(load_recipe(recipe_path), ("val", "train"), out=None, num_process=1, show_progress=False)
    assert {leak["held_out"]["split"] for leak in result.leaks} == {"train"}


def test_size_outliers_by_area_and_aspect() -> None:
    facts = [FileFacts(f"{i}.png", "d", 0, 0, 100, 100, None) for i in range(10)]
    facts += [FileFacts("big.png", "d", 0, 0, 300, 300, None), FileFacts("tall.png", "d", 0, 0, 60, 150, None),
              FileFacts("ok.png", "d", 0, 0, 150, 120, None)]
    found = {o["path"]: o["reason"] for o in size_outliers(facts)}
    assert set(found) == {"big.png", "tall.png"}
    assert "9x the median area" in found["big.png"] and "aspect 0.40" in found["tall.png"]


def test_bad_arguments_are_user_errors(tmp_path: Path) -> None:
    recipe = load_recipe(clean_dataset(tmp_path))
    for kwargs in ({"phases": ("train", "holdout")}, {"phases": ("val", "test")}, {"hash_kind": "ahash"}, {"threshold": 40},
                   {"checkpoint": tmp_path / "missing.pt"}):
        with pytest.raises(ClsctlError):
            dataset_doctor(recipe, **{"phases": ("train",), **kwargs}, out=None, show_progress=False)


@pytest.mark.slow
def test_parallel_hashing_equals_serial(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "many", per_class=25, seed=3)  # 75 files: enough for the worker pool
    paths = sorted(str(p) for p in (tmp_path / "many").rglob("*.png"))
    serial = hash_files(paths, 1)
    assert hash_files(paths, 2) == serial and len(serial) == 75


@pytest.mark.slow
def test_swapped_labels_are_ranked_first(tmp_path: Path) -> None:
    from clsctl.engine.loop import train

    recipe_path = clean_dataset(tmp_path, epochs=5)
    moved = swap_labels(tmp_path)
    recipe = load_recipe(recipe_path)
    checkpoint = train(recipe, show_progress=False).best_checkpoint
    result = dataset_doctor(recipe, ("train",), checkpoint=checkpoint, out=tmp_path / "doc", num_process=1,
                            show_progress=False)
    issues = result.label_issues["train"]
    assert {i["path"] for i in issues} == {str(p) for p in moved}
    assert {(Path(i["path"]).name, i["suggested"]) for i in issues} == {
        (f"swapped_{source}_{number}.png", source) for source, _, number in SWAPS}
    assert IN_SAMPLE_NOTE in result.notes and not result.failed
    html = (tmp_path / "doc" / "index.html").read_text()
    assert "Likely label errors (5)" in html and "in-sample" in html
