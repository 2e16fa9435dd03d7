"""Tests of clsctl.analysis.results."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from analysis_helpers import assert_picture, differ, read_png
from clsctl.analysis.results import analyze_results, confusion_matrix, load_predictions, plot_confusion_matrix, select
from clsctl.errors import ClsctlError


@pytest.fixture(scope="module")
def predictions(trained_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real predictions of the tiny trained model on its val split, with a few labels flipped to make errors."""
    from clsctl.engine.evaluate import evaluate

    out = tmp_path_factory.mktemp("preds") / "preds.json"
    evaluate(trained_checkpoint, split="val", out=out, show_progress=False)
    data = json.loads(out.read_text())
    for record in data["predictions"][:3]:  # the model is good: make sure some predictions are wrong
        record["label"] = (record["pred"] + 1) % 3
        record["label_name"] = data["class_names"][record["label"]]
    out.write_text(json.dumps(data))
    return out


def fake_predictions(tmp_path: Path, pairs: list[tuple[int, int]], classes: list[str]) -> Path:
    records = [{"path": f"{i}.png", "label": t, "pred": p, "probability": 0.5 + i / 100} for i, (t, p) in enumerate(pairs)]
    path = tmp_path / "fake.json"
    path.write_text(json.dumps({"class_names": classes, "predictions": records}))
    return path


def test_select_orders_by_confidence(predictions: Path) -> None:
    preds = load_predictions(predictions)
    correct, wrong = select(preds.records, topk=5)
    assert len(correct) == 5 and len(wrong) == 3
    assert all(r["label"] == r["pred"] for r in correct) and all(r["label"] != r["pred"] for r in wrong)
    scores = [r["probability"] for r in correct]
    assert scores == sorted(scores, reverse=True)


def test_analyze_results_writes_labelled_images(predictions: Path, trained_checkpoint: Path, tmp_path: Path) -> None:
    written = analyze_results(predictions, tmp_path / "out", source=trained_checkpoint, topk=4)
    assert [len(written["success"]), len(written["fail"])] == [4, 3]
    assert all(p.parent.name == "success" for p in written["success"])
    assert written["fail"][0].name.startswith("001_")
    first = assert_picture(written["fail"][0], 32, 32)
    assert first.shape[0] > 32  # image plus two caption lines
    big = analyze_results(predictions, tmp_path / "big", source=trained_checkpoint, topk=1, rescale_factor=4)
    big_first = assert_picture(big["fail"][0], 128, 128)
    assert differ(first, big_first)
    # Red captions for failures, green for successes.
    fail_caption, success_caption = first[:30].reshape(-1, 3), read_png(written["success"][0])[:30].reshape(-1, 3)
    assert ((fail_caption[:, 0] > 150) & (fail_caption[:, 1] < 80)).any()
    assert ((success_caption[:, 1] > 80) & (success_caption[:, 0] < 60)).any()


def test_analyze_results_with_recipe(predictions: Path, tiny_recipe: Path, tmp_path: Path) -> None:
    written = analyze_results(predictions, tmp_path, source=tiny_recipe, topk=2)
    assert len(written["success"]) == 2
    with pytest.raises(ClsctlError, match="not found"):
        analyze_results(predictions, tmp_path, source=tmp_path / "none.yaml")
    with pytest.raises(ClsctlError, match="topk"):
        analyze_results(predictions, tmp_path, topk=0)


def test_confusion_matrix_counts(tmp_path: Path) -> None:
    path = fake_predictions(tmp_path, [(0, 0), (0, 1), (1, 1), (2, 0), (2, 2), (2, 2)], ["a", "b", "c"])
    counts, names = confusion_matrix(load_predictions(path))
    assert names == ["a", "b", "c"]
    assert counts.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    sub, sub_names = confusion_matrix(load_predictions(path), ["c", "a"])
    assert sub_names == ["c", "a"] and sub.tolist() == [[2, 1], [0, 1]]
    with pytest.raises(ClsctlError, match="unknown classes"):
        confusion_matrix(load_predictions(path), ["d"])


def test_confusion_matrix_png(predictions: Path, tmp_path: Path) -> None:
    out, counts = plot_confusion_matrix(predictions, tmp_path / "cm.png")
    assert counts.sum() == 12
    pixels = assert_picture(out, 300, 300)
    out, percent = plot_confusion_matrix(predictions, tmp_path / "norm.png", normalize=True)
    assert np.allclose(percent.sum(axis=1), 100)
    assert differ(pixels, assert_picture(out))
    out, sub = plot_confusion_matrix(predictions, tmp_path / "sub.png", classes=["blue", "red"])
    assert sub.shape == (2, 2) and differ(pixels, assert_picture(out))


def test_bad_predictions_files(tmp_path: Path) -> None:
    with pytest.raises(ClsctlError, match="not found"):
        load_predictions(tmp_path / "none.json")
    (tmp_path / "x.json").write_text("{")
    with pytest.raises(ClsctlError, match="is not a JSON file"):
        load_predictions(tmp_path / "x.json")
    (tmp_path / "y.json").write_text(json.dumps({"a": 1}))
    with pytest.raises(ClsctlError, match="not a predictions file"):
        load_predictions(tmp_path / "y.json")
