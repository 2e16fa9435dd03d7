"""clsctl analyze-results."""

from pathlib import Path

from typer.testing import CliRunner

from analysis_helpers import assert_picture, differ
from clsctl.cli.main import app


def test_every_flag(runner: CliRunner, trained_checkpoint: Path, tmp_path: Path) -> None:
    preds = tmp_path / "preds.json"
    tested = runner.invoke(app, ["test", str(trained_checkpoint), "--split", "val", "--out", str(preds),
                                 "--no-progress"])
    assert tested.exit_code == 0, tested.output
    out = tmp_path / "res"
    result = runner.invoke(app, ["analyze-results", str(trained_checkpoint), str(preds), "--out-dir", str(out),
                                 "--topk", "2", "-r", "2"])
    assert result.exit_code == 0, result.output
    assert f"success: 2 images in {out / 'success'}" in result.output
    success = sorted((out / "success").glob("*.png"))
    assert len(success) == 2 and success[0].name.startswith("001_")
    big = assert_picture(success[0], 64, 64)
    small_run = runner.invoke(app, ["analyze-results", str(trained_checkpoint), str(preds), "-o",
                                    str(tmp_path / "small"), "-k", "1"])
    assert small_run.exit_code == 0, small_run.output
    small = assert_picture(sorted((tmp_path / "small" / "success").glob("*.png"))[0], 32, 32)
    assert differ(big, small) and big.shape[0] > small.shape[0]


def test_errors(runner: CliRunner, trained_checkpoint: Path, tmp_path: Path) -> None:
    missing = runner.invoke(app, ["analyze-results", str(trained_checkpoint), str(tmp_path / "none.json")])
    assert missing.exit_code == 2 and "predictions file not found" in missing.output
