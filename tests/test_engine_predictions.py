"""The predictions file: one writer, one reader, and the files of earlier versions still read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import numpy as np

from clsctl.engine.predictions import (
    PredictionsFile,
    check_records,
    prediction_records,
    read_prediction_tensors,
    read_predictions,
    scores_path,
    write_predictions,
)
from clsctl.errors import ClsctlError

NAMES = ["cat", "dog", "emu"]
SCORES = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.2, 0.5, 0.3]])


def test_single_label_records() -> None:
    records = prediction_records(["a.png", "b.png", "c.png"], SCORES, NAMES, targets=[0, 2, 0], multi_label=False,
                                 topk=2)
    assert records[0] == {"path": "a.png", "label": 0, "label_name": "cat", "pred": 0, "pred_name": "cat",
                          "probability": pytest.approx(0.7),
                          "topk": [{"class": 0, "name": "cat", "probability": pytest.approx(0.7)},
                                   {"class": 1, "name": "dog", "probability": pytest.approx(0.2)}]}
    assert [r["pred"] for r in records] == [0, 2, 1] and [len(r["topk"]) for r in records] == [2, 2, 2]
    one = prediction_records(["a"], SCORES[:1], NAMES, targets=[0], multi_label=False, topk=10)
    assert len(one[0]["topk"]) == 3
    unlabelled = prediction_records(["a"], SCORES[:1], NAMES, multi_label=False, topk=1)  # what infer writes
    assert "label" not in unlabelled[0] and unlabelled[0]["pred_name"] == "cat"


def test_multi_label_records() -> None:
    targets = [[1, 0, 1], [0, -1, 1]]
    records = prediction_records(["a", "b"], SCORES[:2], NAMES, targets=targets, multi_label=True, topk=1)
    assert records[0]["labels"] == [0, 2] and records[0]["label_names"] == ["cat", "emu"]
    assert records[0]["pred_labels"] == [0] and records[1]["labels"] == [2] and records[1]["pred_labels"] == [2]
    assert "label" not in records[0]
    assert records[1]["topk"] == [{"class": 2, "name": "emu", "probability": pytest.approx(0.6)}]


def test_write_then_read_round_trip(tmp_path: Path) -> None:
    records = prediction_records(["a", "b", "c"], SCORES, NAMES, targets=[0, 2, 1], multi_label=False, topk=3)
    written = PredictionsFile(records, NAMES, SCORES, {"checkpoint": "run/best.pt"}, "flip",
                              {"accuracy/top1": 100.0}, ["bad.png"], {"mean": [0.5, 0.5, 0.5]})
    path = write_predictions(tmp_path / "deep" / "preds.json", written)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert list(data) == ["format", "version", "checkpoint", "class_names", "multi_label", "tta", "preprocessing",
                          "metrics", "scores_file", "scores_shape", "excluded", "predictions"]
    assert data["format"] == "clsctl-predictions" and data["version"] == 2 and "scores" not in data
    sidecar = scores_path(path)
    assert sidecar.name == "preds.scores.npy" and data["scores_file"] == sidecar.name
    stored = np.load(sidecar, allow_pickle=False)
    assert stored.dtype == np.float32 and stored.shape == (3, 3) and np.array_equal(stored, SCORES.numpy())
    assert not list(path.parent.glob(".*.tmp"))  # written atomically: no temporary file left
    read = read_predictions(path)
    assert read.records == records and read.class_names == NAMES and read.tta == "flip"
    assert read.excluded == ["bad.png"] and read.preprocessing == {"mean": [0.5, 0.5, 0.5]}
    assert np.array_equal(read.score_array(), SCORES.numpy()) and not read.multi_label and read.has_labels
    tensors = read_prediction_tensors(path)
    assert tensors.targets.tolist() == [0, 2, 1] and tensors.preds.tolist() == [0, 2, 1]
    assert tensors.class_names == NAMES and torch.allclose(tensors.scores.float(), SCORES)


def test_the_scores_file_must_be_beside_and_fit(tmp_path: Path) -> None:
    records = prediction_records(["a", "b", "c"], SCORES, NAMES, targets=[0, 2, 1], multi_label=False, topk=1)
    path = write_predictions(tmp_path / "preds.json", PredictionsFile(records, NAMES, SCORES))
    scores_path(path).unlink()
    with pytest.raises(ClsctlError, match="its scores file .*preds.scores.npy is missing"):
        read_predictions(path)
    data = json.loads(path.read_text())
    data["scores_file"] = "../elsewhere.npy"  # a predictions file names no file outside its folder
    path.write_text(json.dumps(data))
    with pytest.raises(ClsctlError, match="must be the name of a .npy file beside it"):
        read_predictions(path)
    data["scores_file"] = "short.npy"
    path.write_text(json.dumps(data))
    np.save(tmp_path / "short.npy", np.zeros((2, 3), dtype=np.float32))
    with pytest.raises(ClsctlError, match=r"the scores are \(2, 3\), expected \(3, number of classes\)"):
        read_predictions(path)


def test_a_file_without_labels_is_refused_by_the_readers_that_need_them(tmp_path: Path) -> None:
    records = prediction_records(["a"], SCORES[:1], NAMES, multi_label=False, topk=1)
    path = write_predictions(tmp_path / "infer.json", PredictionsFile(records, NAMES, SCORES[:1]))
    with pytest.raises(ClsctlError, match="without true labels .*clsctl infer --out"):
        read_prediction_tensors(path)


def test_files_of_earlier_versions_and_hand_made_ones_read(tmp_path: Path) -> None:
    from clsctl.analysis.results import load_predictions
    from clsctl.engine.metrics import evaluate_predictions

    old = tmp_path / "old.json"  # an early `clsctl test --out` file: no tta, metrics, scores or excluded
    old.write_text(json.dumps({"checkpoint": "best.pt", "class_names": ["a", "b"], "predictions": [
        {"path": "x.png", "label": 0, "pred": 0, "score": 0.9},
        {"path": "y.png", "label": 1, "pred": 0, "score": 0.6}]}))
    read = read_predictions(old)
    assert read.source == {"checkpoint": "best.pt"} and read.tta is None and read.scores is None
    assert read.metrics == {} and read.excluded == []
    assert load_predictions(old).records[1]["probability"] == 0.6  # version 1 said "score"
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
    with pytest.raises(ClsctlError, match="prediction 0 lacks label"):
        read_prediction_tensors(tmp_path / "odd.json")
