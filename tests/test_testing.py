"""evaluate(): metrics, per-class numbers, predictions file, other data roots."""

import json
from pathlib import Path

import pytest
from sklearn.metrics import precision_recall_fscore_support

from clsctl.engine.testing import evaluate
from clsctl.errors import ClsctlError

from helpers import write_image_folder


def test_evaluate_checkpoint_on_its_val_split(trained_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "preds.json"
    result = evaluate(trained_checkpoint, out=out, show_progress=False)
    assert result.num_samples == 12 and result.class_names == ["blue", "green", "red"]
    assert 0 <= result.metrics["accuracy/top1"] <= 100 and result.metrics["accuracy/top5"] == 100.0
    data = json.loads(out.read_text())
    predictions = data["predictions"]
    assert len(predictions) == 12 and len(data["scores"]) == 12
    correct = sum(p["label"] == p["pred"] for p in predictions)
    assert result.metrics["accuracy/top1"] == pytest.approx(100 * correct / 12)
    labels = [p["label"] for p in predictions]
    preds = [p["pred"] for p in predictions]
    precision, recall, f1, support = precision_recall_fscore_support(labels, preds, labels=[0, 1, 2], zero_division=0)
    assert result.per_class["precision"] == pytest.approx(list(precision * 100))
    assert result.per_class["recall"] == pytest.approx(list(recall * 100))
    assert result.per_class["f1"] == pytest.approx(list(f1 * 100))
    assert result.per_class["support"] == list(support)
    first = predictions[0]
    assert first["pred_name"] == data["class_names"][first["pred"]] and len(first["topk"]) == 3
    assert first["topk"][0]["score"] >= first["topk"][1]["score"]


def test_evaluate_on_another_folder_and_overrides(trained_checkpoint: Path, tmp_path: Path) -> None:
    other = write_image_folder(tmp_path / "other", per_class=2, seed=7)
    result = evaluate(trained_checkpoint, data_root=other, batch_size=2, show_progress=False)
    assert result.num_samples == 6
    # a wrapper dataset in the recipe gives way to the folder as a whole
    wrapped = f"data.val={{type: repeat, times: 3, dataset: {{type: image_folder, root: '{other}'}}}}"
    assert evaluate(trained_checkpoint, overrides=[wrapped], show_progress=False).num_samples == 18
    result = evaluate(trained_checkpoint, overrides=[wrapped], data_root=other, show_progress=False)
    assert result.num_samples == 6
    with pytest.raises(ClsctlError, match="no folder for classes"):
        evaluate(trained_checkpoint, overrides=["data.val.classes=[cat]"], show_progress=False)


def test_evaluate_rejects_folder_with_other_classes(trained_checkpoint: Path, tmp_path: Path) -> None:
    (tmp_path / "x" / "cat").mkdir(parents=True)
    write_image_folder(tmp_path / "x", per_class=1)
    with pytest.raises(ClsctlError, match="differ from the checkpoint"):
        evaluate(trained_checkpoint, data_root=tmp_path / "x", show_progress=False)


def test_unreadable_images_are_left_out_of_metrics_and_predictions(trained_checkpoint: Path, tmp_path: Path) -> None:
    folder = write_image_folder(tmp_path / "val", per_class=2, seed=3)
    (folder / "green" / "0.png").write_bytes(b"not a png")
    out = tmp_path / "preds.json"
    result = evaluate(trained_checkpoint, data_root=folder, out=out, show_progress=False)
    assert result.excluded == 1 and result.num_samples == 5
    assert sum(result.per_class["support"]) == 5 and result.per_class["support"][1] == 1
    data = json.loads(out.read_text())
    assert len(data["predictions"]) == 5 and len(data["scores"]) == 5
    assert data["excluded"] == [str(folder / "green" / "0.png")]
    assert all(not p["path"].endswith("green/0.png") for p in data["predictions"])

