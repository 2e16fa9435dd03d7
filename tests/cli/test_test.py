"""clsctl test."""

import json
import re
from pathlib import Path

from typer.testing import CliRunner

from clsctl.cli.main import app


def test_test_prints_tables_and_writes_predictions(runner: CliRunner, trained_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "preds.json"
    result = runner.invoke(app, ["test", str(trained_checkpoint), "--out", str(out), "--no-progress", "-b", "4"])
    assert result.exit_code == 0, result.output
    for word in ("accuracy/top1", "accuracy/top5", "macro/f1", "per class", "precision", "recall", "red", "samples"):
        assert word in result.output
    assert len(json.loads(out.read_text())["predictions"]) == 12


def test_test_split_and_data_root(runner: CliRunner, trained_checkpoint: Path, tmp_path: Path) -> None:
    from helpers import write_image_folder

    root = write_image_folder(tmp_path / "more", per_class=1)
    result = runner.invoke(app, ["test", str(trained_checkpoint), "--data-root", str(root), "--no-per-class",
                                 "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "per class" not in result.output
    assert re.search(r"samples\s*│\s*3\s*│", result.output)
    assert runner.invoke(app, ["test", str(trained_checkpoint), "--split", "train", "--no-progress"]).exit_code == 0
    bad = runner.invoke(app, ["test", str(trained_checkpoint), "--split", "dev"])
    assert bad.exit_code == 2
    (root / "red" / "0.png").write_bytes(b"truncated")
    broken = runner.invoke(app, ["test", str(trained_checkpoint), "--data-root", str(root), "--no-per-class",
                                 "--no-progress"])
    assert broken.exit_code == 0, broken.output
    assert "1 unreadable image(s) left out of the metrics" in broken.output
    assert re.search(r"samples\s*│\s*2\s*│", broken.output)


def test_not_a_checkpoint(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "x.pt"
    path.write_bytes(b"\x00\x01garbage")
    result = runner.invoke(app, ["test", str(path)])
    assert result.exit_code == 2 and "is not a clsctl checkpoint" in result.output
    assert "Traceback" not in result.output
