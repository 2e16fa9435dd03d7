"""The predictions file: one writer, one reader, and the files of earlier versions still read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from clsctl.engine.predictions import (
    PredictionsFile,
    check_records,
    prediction_records,
    read_prediction_tensors,
    read_predictions,
    write_predictions,
    write_topk_list,
)
from clsctl.errors import ClsctlError

NAMES = ["cat", "dog", "emu"]
SCORES = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.2, 0.5, 0.3]])


def test_single_label_records() -> None:
    records = prediction_records(["a.png", "b.png", "c.png"], [0, 2, 0], SCORES, NAMES, multi_label=False, topk=2)
    assert records[0] == {"path": "a.png", "label": 0, "label_name": "cat", "pred": 0, "pred_name": "cat",
                          "score": pytest.approx(0.7),
                          "topk": [{"class": 0, "name": "cat", "score": pytest.approx(0.7)},
                                   {"class": 1, "name": "dog", "score": pytest.approx(0.2)}]}
    assert [r["pred"] for r in records] == [0, 2, 1] and [len(r["topk"]) for r in records] == [2, 2, 2]
    assert len(prediction_records(["a"], [0], SCORES[:1], NAMES, multi_label=False, topk=10)[0]["topk"]) == 3


def test_multi_label_records() -> None:
    targets = [[1, 0, 1], [0, -1, 1]]
    records = prediction_records(["a", "b"], targets, SCORES[:2], NAMES, multi_label=True, topk=1)
    assert records[0]["labels"] == [0, 2] and records[0]["label_names"] == ["cat", "emu"]
    assert records[0]["pred_labels"] == [0] and records[1]["labels"] == [2] and records[1]["pred_labels"] == [2]
    assert "label" not in records[0]
    assert records[1]["topk"] == [{"class": 2, "name": "emu", "score": pytest.approx(0.6)}]


def test_write_then_read_round_trip(tmp_path: Path) -> None:
    records = prediction_records(["a", "b", "c"], [0, 2, 1], SCORES, NAMES, multi_label=False, topk=3)
    written = PredictionsFile(records, NAMES, SCORES.tolist(), {"checkpoint": "run/best.pt"}, "flip",
                              {"accuracy/top1": 100.0}, ["bad.png"])
    path = write_predictions(tmp_path / "deep" / "preds.json", written)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert list(data) == ["checkpoint", "class_names", "tta", "metrics", "predictions", "scores", "excluded"]
    assert "\n" not in path.read_text(encoding="utf-8")  # one line, as clsctl test --out always wrote it
    read = read_predictions(path)
    assert read == written and not read.multi_label
    tensors = read_prediction_tensors(path)
    assert tensors.targets.tolist() == [0, 2, 1] and tensors.preds.tolist() == [0, 2, 1]
    assert tensors.class_names == NAMES and torch.allclose(tensors.scores.float(), SCORES)


def test_files_of_earlier_versions_and_hand_made_ones_read(tmp_path: Path) -> None:
    from clsctl.analysis.results import load_predictions
    from clsctl.engine.offline_metrics import evaluate_predictions

    old = tmp_path / "old.json"  # an early `clsctl test --out` file: no tta, metrics, scores or excluded
    old.write_text(json.dumps({"checkpoint": "best.pt", "class_names": ["a", "b"], "predictions": [
        {"path": "x.png", "label": 0, "pred": 0, "score": 0.9},
        {"path": "y.png", "label": 1, "pred": 0, "score": 0.6}]}))
    read = read_predictions(old)
    assert read.source == {"checkpoint": "best.pt"} and read.tta is None and read.scores is None
    assert read.metrics == {} and read.excluded == []
    assert load_predictions(old).records[1]["score"] == 0.6
    assert evaluate_predictions(old, ["accuracy"], topk=(1,)).metrics == {"accuracy/top1": 50.0}
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps({"predictions": [{"label": 1}], "scores": [[0.2, 0.8]]}))
    tensors = read_prediction_tensors(bare)
    assert tensors.class_names == ["0", "1"] and tensors.preds.tolist() == [1]


def test_bad_files_fail_with_one_line(tmp_path: Path) -> None:
    cases = {"list.json": [1, 2], "nolist.json": {"predictions": {"a": 1}}, "none.json": {"class_names": ["a"]}}
    for name, content in cases.items():
        (tmp_path / name).write_text(json.dumps(content))
        with pytest.raises(ClsctlError, match="not a predictions file: expected a 'predictions' list"):
            read_predictions(tmp_path / name)
    (tmp_path / "empty.json").write_text(json.dumps({"predictions": []}))
    assert read_predictions(tmp_path / "empty.json").records == []
    with pytest.raises(ClsctlError, match="'predictions' list is empty"):
        read_predictions(tmp_path / "empty.json", allow_empty=False)
    with pytest.raises(ClsctlError, match="expected 'class_names'"):
        read_predictions(tmp_path / "empty.json", need_class_names=True)
    (tmp_path / "odd.json").write_text(json.dumps({"class_names": ["a"], "predictions": [3, {"label": 0}]}))
    odd = read_predictions(tmp_path / "odd.json")
    with pytest.raises(ClsctlError, match="prediction 0 lacks path, label"):
        check_records(odd, "odd.json", ("path", "label"))
    with pytest.raises(ClsctlError, match="needs an integer 'label'"):
        read_prediction_tensors(tmp_path / "odd.json")


def test_infer_list_keeps_its_layout(tmp_path: Path) -> None:
    entries = [{"path": "a.png", "topk": [{"class": 1, "name": "dog", "probability": 0.5}]}]
    path = write_topk_list(tmp_path / "out" / "infer.json", entries)
    text = path.read_text(encoding="utf-8")
    assert json.loads(text) == entries and text == json.dumps(entries, indent=2) + "\n"
