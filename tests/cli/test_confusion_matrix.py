"""clsctl confusion-matrix."""

import json
from pathlib import Path

from typer.testing import CliRunner

from analysis_helpers import assert_picture, differ
from clsctl.cli.main import app


def write_predictions(path: Path) -> Path:
    classes = ["cat", "dog", "bird", "fish"]
    pairs = [(0, 0), (0, 0), (0, 1), (1, 1), (1, 1), (2, 2), (2, 3), (3, 3), (3, 0)]
    records = [{"path": f"{i}.png", "label": t, "pred": p, "score": 0.9} for i, (t, p) in enumerate(pairs)]
    path.write_text(json.dumps({"class_names": classes, "predictions": records}))
    return path


def test_every_flag(runner: CliRunner, tmp_path: Path) -> None:
    preds = write_predictions(tmp_path / "preds.json")
    counts = runner.invoke(app, ["confusion-matrix", str(preds), "--out", str(tmp_path / "c.png")])
    assert counts.exit_code == 0, counts.output
    assert "4x4 confusion matrix saved" in counts.output
    plain = assert_picture(tmp_path / "c.png", 300, 300)
    norm = runner.invoke(app, ["confusion-matrix", str(preds), "-o", str(tmp_path / "n.png"), "--normalize",
                               "--title", "normalised"])
    assert norm.exit_code == 0, norm.output
    assert differ(plain, assert_picture(tmp_path / "n.png"))
    sub = runner.invoke(app, ["confusion-matrix", str(preds), "-o", str(tmp_path / "s.png"), "--classes", "dog", "cat"])
    assert sub.exit_code == 0, sub.output
    assert "2x2 confusion matrix" in sub.output
    assert differ(plain, assert_picture(tmp_path / "s.png"))


def test_errors(runner: CliRunner, tmp_path: Path) -> None:
    preds = write_predictions(tmp_path / "preds.json")
    unknown = runner.invoke(app, ["confusion-matrix", str(preds), "--classes", "cow", "-o", str(tmp_path / "x.png")])
    assert unknown.exit_code == 2 and "unknown classes ['cow']" in unknown.output
    (tmp_path / "bad.json").write_text("[]")
    bad = runner.invoke(app, ["confusion-matrix", str(tmp_path / "bad.json")])
    assert bad.exit_code == 2 and "not a predictions file" in bad.output
