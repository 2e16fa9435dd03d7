"""Metrics against scikit-learn on random data, and the offline predictions-file evaluation."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from torch import nn

from clsctl.engine.metrics import (metrics_from_logits, average_precision, confusion_matrix, multilabel_metrics,
                                   multilabel_predictions, precision_recall_f1, topk_accuracy)
from clsctl.engine.metrics import evaluate_predictions
from clsctl.engine.predictions import multi_hot, read_prediction_tensors as load_predictions
from clsctl.errors import ClsctlError


def _single_label(seed: int, n: int = 200, c: int = 7) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, generator=g), torch.randint(0, c, (n,), generator=g)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_topk_accuracy_matches_sklearn(seed: int) -> None:
    scores, targets = _single_label(seed)
    acc = topk_accuracy(scores, targets, (1, 3, 5, 100))
    for k in (1, 3, 5):
        expected = skm.top_k_accuracy_score(targets.numpy(), scores.numpy(), k=k, labels=range(7)) * 100
        assert acc[k] == pytest.approx(expected)
    assert acc[100] == 100.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_precision_recall_f1_and_confusion_match_sklearn(seed: int) -> None:
    scores, targets = _single_label(seed, c=6)
    preds = scores.argmax(1)
    preds[preds == 5] = 4  # class 5 is never predicted: precision must count as 0, not NaN
    matrix = confusion_matrix(preds, targets, 6)
    assert matrix.tolist() == skm.confusion_matrix(targets, preds, labels=range(6)).tolist()
    result = precision_recall_f1(matrix)
    y, p = targets.numpy(), preds.numpy()
    for average in ("macro", "micro"):
        ep, er, ef, _ = skm.precision_recall_fscore_support(y, p, labels=range(6), average=average, zero_division=0)
        assert result[f"{average}_precision"] == pytest.approx(ep * 100)
        assert result[f"{average}_recall"] == pytest.approx(er * 100)
        assert result[f"{average}_f1"] == pytest.approx(ef * 100)
    ep, er, ef, support = skm.precision_recall_fscore_support(y, p, labels=range(6), zero_division=0)
    assert result["precision"] == pytest.approx(list(ep * 100))
    assert result["recall"] == pytest.approx(list(er * 100))
    assert result["f1"] == pytest.approx(list(ef * 100))
    assert result["support"] == list(support)
    assert result["precision"][5] == 0.0
    assert result["micro_f1"] == pytest.approx(float((preds == targets).double().mean() * 100))


def _multi_label(seed: int, n: int = 60, c: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    targets = (torch.rand(n, c, generator=g) < 0.35).long()
    targets[0] = 1  # every class has a positive
    scores = (torch.rand(n, c, generator=g) + 0.4 * targets).clamp(0, 1)  # informative but noisy
    return scores, targets


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_average_precision_matches_sklearn(seed: int) -> None:
    scores, targets = _multi_label(seed)
    ap = average_precision(scores, targets)
    expected = skm.average_precision_score(targets.numpy(), scores.numpy(), average=None) * 100
    assert ap.tolist() == pytest.approx(list(expected))
    assert multilabel_metrics(scores, targets)["mAP"] == pytest.approx(float(expected.mean()))


def test_average_precision_edge_cases() -> None:
    scores = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.1, 0.3]])
    targets = torch.tensor([[1, 0], [0, 0], [1, 0]])
    # class 0: hits at ranks 1 and 3 -> (1/1 + 2/3) / 2; class 1 has no positive -> 0
    assert average_precision(scores, targets).tolist() == pytest.approx([(1 + 2 / 3) / 2 * 100, 0.0])
    # an ignored label (-1) leaves the ranking: the hit at rank 3 becomes rank 2
    ignored = torch.tensor([[1, 0], [-1, 0], [1, 0]])
    assert average_precision(scores, ignored)[0] == pytest.approx(100.0)


@pytest.mark.parametrize("seed", [0, 1])
def test_cp_cr_cf1_op_or_of1_match_sklearn(seed: int) -> None:
    scores, targets = _multi_label(seed)
    y = targets.numpy()
    for kwargs, pred in (({"threshold": 0.5}, (scores >= 0.5).numpy()),
                         ({"topk": 2}, multilabel_predictions(scores, topk=2).numpy())):
        result = multilabel_metrics(scores, targets, **kwargs)
        for prefix, average in (("C", "macro"), ("O", "micro")):
            ep, er, ef, _ = skm.precision_recall_fscore_support(y, pred, average=average, zero_division=0)
            assert result[f"{prefix}P"] == pytest.approx(ep * 100)
            assert result[f"{prefix}R"] == pytest.approx(er * 100)
            assert result[f"{prefix}F1"] == pytest.approx(ef * 100)
    assert multilabel_predictions(scores, topk=2).sum(1).tolist() == [2] * len(scores)


def test_multilabel_ignored_labels_count_neither_way() -> None:
    scores = torch.tensor([[0.9, 0.9], [0.1, 0.9]])
    targets = torch.tensor([[1, -1], [0, 1]])
    result = multilabel_metrics(scores, targets)
    # class 1: the ignored prediction on sample 0 is not a false positive
    assert result["precision"] == [100.0, 100.0] and result["OP"] == 100.0 and result["support"] == [1, 1]


def _write_predictions(path: Path, scores: torch.Tensor, targets: torch.Tensor, names: list[str]) -> Path:
    preds = scores.argmax(1)
    items = [{"path": f"{i}.png", "label": int(t), "pred": int(p)} for i, (t, p) in enumerate(zip(targets, preds))]
    path.write_text(json.dumps({"class_names": names, "predictions": items, "scores": scores.tolist()}))
    return path


def test_evaluate_predictions_single_label(tmp_path: Path) -> None:
    scores, targets = _single_label(3, n=50, c=4)
    path = _write_predictions(tmp_path / "p.json", scores.softmax(1), targets, list("abcd"))
    result = evaluate_predictions(path, ["accuracy", "f1", "precision", "confusion_matrix"], topk=(1, 2))
    assert set(result.metrics) == {"accuracy/top1", "accuracy/top2", "f1/macro", "f1/micro", "precision/macro",
                                   "precision/micro"}
    y, p = targets.numpy(), scores.argmax(1).numpy()
    assert result.metrics["accuracy/top1"] == pytest.approx(skm.accuracy_score(y, p) * 100)
    assert result.metrics["accuracy/top2"] == pytest.approx(skm.top_k_accuracy_score(y, scores.numpy(), k=2) * 100)
    assert result.metrics["f1/macro"] == pytest.approx(skm.f1_score(y, p, average="macro", zero_division=0) * 100)
    assert result.confusion == skm.confusion_matrix(y, p, labels=range(4)).tolist()
    assert result.class_names == list("abcd") and result.num_samples == 50 and len(result.per_class["f1"]) == 4
    with pytest.raises(ClsctlError, match="multi-label"):
        evaluate_predictions(path, ["map"])
    with pytest.raises(ClsctlError, match="unknown metric"):
        evaluate_predictions(path, ["auc"])


def test_evaluate_predictions_multi_label(tmp_path: Path) -> None:
    scores, targets = _multi_label(4)
    items = [{"path": f"{i}.jpg", "labels": np.flatnonzero(row).tolist()} for i, row in enumerate(targets.numpy())]
    path = tmp_path / "ml.json"
    path.write_text(json.dumps({"class_names": list("vwxyz"), "predictions": items, "scores": scores.tolist()}))
    saved = load_predictions(path)
    assert saved.multi_label and saved.targets.tolist() == targets.tolist()
    result = evaluate_predictions(path, ["map", "cf1", "of1", "precision"], threshold=0.6)
    assert set(result.metrics) == {"mAP", "CF1", "OF1", "CP", "OP"}
    y, pred = targets.numpy(), (scores >= 0.6).numpy()
    assert result.metrics["mAP"] == pytest.approx(skm.average_precision_score(y, scores.numpy()) * 100)
    assert result.metrics["OF1"] == pytest.approx(skm.f1_score(y, pred, average="micro") * 100)
    assert evaluate_predictions(path, ["cp"], multi_label_topk=1).metrics["CP"] != result.metrics["CP"]
    with pytest.raises(ClsctlError, match="single-label"):
        evaluate_predictions(path, ["accuracy"])


def test_load_predictions_errors(tmp_path: Path) -> None:
    with pytest.raises(ClsctlError, match="not found"):
        load_predictions(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ClsctlError, match="not a JSON"):
        load_predictions(tmp_path / "bad.json")
    (tmp_path / "empty.json").write_text(json.dumps({"predictions": []}))
    with pytest.raises(ClsctlError, match="predictions"):
        load_predictions(tmp_path / "empty.json")
    (tmp_path / "shape.json").write_text(json.dumps({"class_names": ["a", "b"], "scores": [[0.1, 0.9, 0.0]],
                                                      "predictions": [{"label": 0, "pred": 1}]}))
    with pytest.raises(ClsctlError, match="expected"):
        load_predictions(tmp_path / "shape.json")
    (tmp_path / "range.json").write_text(json.dumps({"class_names": ["a", "b"],
                                                      "predictions": [{"label": 2, "pred": 1}]}))
    with pytest.raises(ClsctlError, match="outside"):
        load_predictions(tmp_path / "range.json")
    (tmp_path / "range_ml.json").write_text(json.dumps({"class_names": ["a", "b"], "predictions": [{"labels": [0, 5]}]}))
    with pytest.raises(ClsctlError, match="outside"):
        load_predictions(tmp_path / "range_ml.json")
    (tmp_path / "ragged.json").write_text(json.dumps({"scores": [[0.1], [0.2, 0.3]], "predictions": [{"label": 0}]}))
    with pytest.raises(ClsctlError, match="N x C"):
        load_predictions(tmp_path / "ragged.json")
    (tmp_path / "nopred.json").write_text(json.dumps({"predictions": [{"label": 0, "pred": 0},
                                                                       {"label": 1, "pred": 0}]}))
    only_top1 = evaluate_predictions(tmp_path / "nopred.json", ["accuracy"], topk=(1,))
    assert only_top1.metrics == {"accuracy/top1": 50.0}
    with pytest.raises(ClsctlError, match="needs 'scores'"):
        evaluate_predictions(tmp_path / "nopred.json", ["accuracy"], topk=(1, 5))


def test_multi_hot() -> None:
    assert multi_hot([[0, 2], [], [1]], 3).tolist() == [[1, 0, 1], [0, 0, 0], [0, 1, 0]]


# --------------------------------------------------------------------------- metrics of one pass (evaluate_logits)

LOGITS = torch.tensor([[3.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 3.0], [3.0, 0.0, 0.0]])


def test_metrics_from_logits_values() -> None:
    output = metrics_from_logits(LOGITS, torch.tensor([0, 1, 1, 0]), 3)
    assert output.metrics["accuracy/top1"] == pytest.approx(75.0)
    assert output.confusion == [[2, 0, 0], [0, 1, 1], [0, 0, 0]]
    expected_loss = nn.functional.cross_entropy(LOGITS, torch.tensor([0, 1, 1, 0])).item()
    assert output.metrics["loss"] == pytest.approx(expected_loss)


def test_samples_with_target_minus_one_are_left_out() -> None:
    batches = [(LOGITS[:2], torch.tensor([0, -1])), (LOGITS[2:], torch.tensor([2, 0]))]
    output = _run(batches, torch.device("cpu"), 3, keep_scores=True)
    assert output.excluded == 1 and output.kept.tolist() == [True, False, True, True]
    assert output.metrics["accuracy/top1"] == pytest.approx(100.0)  # 3 of 3 kept, not 3 of 4
    assert output.scores.shape == (3, 3) and output.targets.tolist() == [0, 2, 0]
    assert sum(map(sum, output.confusion)) == 3


def test_multilabel_rows_of_minus_one_are_left_out() -> None:
    logits = torch.tensor([[3.0, 0.0, 0.0], [9.0, 9.0, 9.0], [0.0, 3.0, 3.0], [3.0, 0.0, 0.0]])
    targets = torch.tensor([[1, 0, 0], [-1, -1, -1], [0, 1, 1], [1, 0, 0]])
    output = _run([(logits, targets)], torch.device("cpu"), 3)
    assert output.excluded == 1 and output.kept.tolist() == [True, False, True, True]
    # the kept rows rank every positive first: a perfect mAP
    assert output.metrics["multi-label/mAP"] == pytest.approx(100.0)
    # scored as negatives everywhere, the left-out row would have come first for every class
    scored = _run([(logits, targets.clamp(min=0))], torch.device("cpu"), 3)
    assert scored.excluded == 0 and scored.metrics["multi-label/mAP"] < 100.0


def _run(batches, device, num_classes, **kwargs):
    from torch import nn

    from clsctl.engine.evaluate import run_evaluation

    return run_evaluation(nn.Identity(), batches, device, num_classes, **kwargs)
