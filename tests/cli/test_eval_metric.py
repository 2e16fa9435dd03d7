"""clsctl eval-metric."""

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clsctl.cli.main import app


def _single(path: Path) -> Path:
    # 4 samples, 3 classes: top-1 hits on samples 0 and 1, the label of sample 2 is second best, of sample 3 last.
    scores = [[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.5, 0.1, 0.4], [0.6, 0.1, 0.3]]
    labels = [0, 1, 2, 1]
    items = [{"label": y, "pred": max(range(3), key=row.__getitem__)} for y, row in zip(labels, scores)]
    path.write_text(json.dumps({"class_names": ["cat", "dog", "emu"], "predictions": items, "scores": scores}))
    return path


def test_eval_metric_single_label(runner: CliRunner, tmp_path: Path) -> None:
    path = _single(tmp_path / "preds.json")
    out = tmp_path / "m.json"
    result = runner.invoke(app, ["eval-metric", str(path), "-m", "accuracy", "-m", "f1", "-m", "confusion_matrix",
                                 "-k", "1", "-k", "2", "--per-class", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert re.search(r"accuracy/top1\s*│\s*50\.0000", result.output)
    assert re.search(r"accuracy/top2\s*│\s*75\.0000", result.output)
    assert "confusion matrix" in result.output and "per class" in result.output and "emu" in result.output
    saved = json.loads(out.read_text())
    assert saved["confusion_matrix"] == [[1, 0, 0], [1, 1, 0], [1, 0, 0]]
    assert saved["metrics"]["f1/micro"] == 50.0


def test_eval_metric_default_and_errors(runner: CliRunner, tmp_path: Path) -> None:
    path = _single(tmp_path / "preds.json")
    result = runner.invoke(app, ["eval-metric", str(path)])
    assert result.exit_code == 0 and "accuracy/top5" in result.output and "f1" not in result.output
    bad = runner.invoke(app, ["eval-metric", str(path), "-m", "auc"])
    assert bad.exit_code == 2 and "Invalid value" in bad.output and "'auc'" in bad.output
    missing = runner.invoke(app, ["eval-metric", str(tmp_path / "nope.json")])
    assert missing.exit_code == 2 and "not found" in missing.output


def test_eval_metric_multi_label(runner: CliRunner, tmp_path: Path) -> None:
    scores = [[0.9, 0.2], [0.3, 0.8], [0.6, 0.7]]
    items = [{"labels": [0]}, {"labels": [1]}, {"labels": [0, 1]}]
    path = tmp_path / "ml.json"
    path.write_text(json.dumps({"class_names": ["a", "b"], "predictions": items, "scores": scores}))
    result = runner.invoke(app, ["eval-metric", str(path)])
    assert result.exit_code == 0, result.output
    assert re.search(r"mAP\s*│\s*100\.0000", result.output)
    both = runner.invoke(app, ["eval-metric", str(path), "-m", "op", "-m", "or", "--label-topk", "1"])
    # top-1 per sample: a, b, b -> 3 correct of 3 predicted, 3 of 4 positives recalled
    assert re.search(r"OP\s*│\s*100\.0000", both.output) and re.search(r"OR\s*│\s*75\.0000", both.output)


def test_eval_metric_reads_what_clsctl_test_writes(runner: CliRunner, trained_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "preds.json"
    tested = runner.invoke(app, ["test", str(trained_checkpoint), "--out", str(out), "--no-progress"])
    assert tested.exit_code == 0, tested.output
    from clsctl.engine.metrics import evaluate_predictions

    saved_metrics = json.loads(out.read_text())["metrics"]
    offline = evaluate_predictions(out, ["accuracy", "f1"])
    assert offline.metrics["accuracy/top1"] == pytest.approx(saved_metrics["accuracy/top1"])
    assert offline.metrics["f1/macro"] == pytest.approx(saved_metrics["macro/f1"])
    result = runner.invoke(app, ["eval-metric", str(out), "-m", "accuracy"])
    assert result.exit_code == 0 and f"{saved_metrics['accuracy/top1']:.4f}" in result.output
