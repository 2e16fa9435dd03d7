"""Tests of clsctl.analysis.report."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from analysis_helpers import assert_picture
from clsctl.analysis.calibration import expected_calibration_error
from clsctl.analysis.report import confused_pairs, pick_examples, report
from clsctl.errors import ClsctlError


def test_confused_pairs_are_the_largest_off_diagonal_cells() -> None:
    confusion = np.array([[5, 3, 0], [1, 7, 0], [4, 0, 2]])
    assert confused_pairs(confusion, ["a", "b", "c"]) == [("c", "a", 4), ("a", "b", 3), ("b", "a", 1)]
    assert confused_pairs(confusion, ["a", "b", "c"], top=1) == [("c", "a", 4)]
    assert confused_pairs(np.eye(3, dtype=int), ["a", "b", "c"]) == []


def test_examples_are_confident_mistakes_and_unsure_hits() -> None:
    records = [{"label": 0, "pred": 0, "probability": s} for s in (0.9, 0.4, 0.6)]
    records += [{"label": 1, "pred": 0, "probability": s} for s in (0.5, 0.95)]
    wrong, right = pick_examples(records, 2)
    assert [r["probability"] for r in wrong] == [0.95, 0.5] and [r["probability"] for r in right] == [0.4, 0.6]


@pytest.mark.slow
def test_report_writes_page_figures_and_numbers(trained_checkpoint: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import clsctl.readers
    from clsctl.engine.evaluate import evaluate

    loads: list[str] = []
    read = clsctl.readers.load_torch_file

    def counted(path, *args, **kwargs):  # every PyTorch file clsctl reads goes through this reader
        loads.append(str(path))
        return read(path, *args, **kwargs)

    monkeypatch.setattr(clsctl.readers, "load_torch_file", counted)
    out = tmp_path / "report"
    result = report(trained_checkpoint, split="val", out=out, examples=2, bench_iters=2, show_progress=False)
    # evaluation, FLOPs, every CAM example and both speed measurements used the one loaded model
    assert loads == [str(trained_checkpoint)]
    monkeypatch.undo()
    expected = evaluate(trained_checkpoint, split="val", show_progress=False)
    assert result.metrics == expected.metrics and result.num_samples == expected.num_samples == 12
    summary = json.loads((out / "report.json").read_text())
    predictions = json.loads((out / "predictions.json").read_text())["predictions"]
    confidences = np.array([p["probability"] for p in predictions])
    correct = np.array([p["label"] == p["pred"] for p in predictions])
    assert summary["ece"] == pytest.approx(100 * expected_calibration_error(confidences, correct))
    assert summary["per_class"]["support"] == [4, 4, 4] and summary["confusion"] == expected.confusion
    assert summary["model"]["model"] == "test_resnet" and summary["model"]["params"] > 1000
    assert summary["model"]["flops"] > 0 and summary["speed"]["images_per_second"] > 0
    assert summary["speed"]["latency_ms"] > 0
    for name in ("confusion_matrix", "reliability", "training_curves"):
        assert_picture(result.figures[name], 200, 150)
    shown = summary["examples"]["mistakes"] + summary["examples"]["unsure"]
    assert 2 <= len(shown) <= 4 and all(Path(e["picture"]).is_file() for e in shown)
    html = result.html.read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), "the page must not load anything from a network"
    assert html.count('src="data:image/') >= 3 + len(shown)
    assert f'data-metric="accuracy/top1">{expected.metrics["accuracy/top1"]:.2f}<' in html


@pytest.mark.slow
def test_report_without_run_folder_or_benchmark(trained_checkpoint: Path, tmp_path: Path) -> None:
    alone = tmp_path / "alone" / "model.pt"
    alone.parent.mkdir()
    shutil.copy(trained_checkpoint, alone)
    val_folder = trained_checkpoint.parent.parent / "data" / "val"
    result = report(alone, data_root=val_folder, out=tmp_path / "r", examples=0, bench_iters=0, show_progress=False)
    assert result.speed is None and "training_curves" not in result.figures
    assert result.num_samples == 12
    assert json.loads((tmp_path / "r" / "report.json").read_text())["data_root"] == str(val_folder)
    html = result.html.read_text()
    assert "no metrics.jsonl beside the checkpoint" in html and "not measured (--bench-iters 0)" in html


def test_unknown_cam_method_fails_before_evaluating(tmp_path: Path) -> None:
    with pytest.raises(ClsctlError, match="unknown CAM method"):
        report(tmp_path / "missing.pt", out=tmp_path / "r", cam_method="nocam", show_progress=False)
    assert not (tmp_path / "r" / "predictions.json").exists()
