"""clsctl analyze-logs plot-curve / cal-train-time."""

from pathlib import Path

from typer.testing import CliRunner

from analysis_helpers import assert_picture, differ, write_log
from clsctl.cli.main import app


def test_plot_curve_every_flag(runner: CliRunner, tmp_path: Path) -> None:
    a = write_log(tmp_path / "a" / "metrics.jsonl")
    b = write_log(tmp_path / "b" / "metrics.jsonl", loss_scale=2.0)
    out = tmp_path / "curve.png"
    result = runner.invoke(app, ["analyze-logs", "plot-curve", str(a), str(b), "--keys", "loss", "accuracy/top1",
                                 "--legend", "a loss", "a top1", "b loss", "b top1", "--title", "two runs",
                                 "--out", str(out), "--style", "ggplot", "--window-size", "8x5"])
    assert result.exit_code == 0, result.output
    full = assert_picture(out, 500, 300)
    default = runner.invoke(app, ["analyze-logs", "plot-curve", str(tmp_path / "a"), "--out", str(tmp_path / "d.png")])
    assert default.exit_code == 0, default.output
    assert differ(full, assert_picture(tmp_path / "d.png"))


def test_plot_curve_errors(runner: CliRunner, tmp_path: Path) -> None:
    a = write_log(tmp_path / "a" / "metrics.jsonl")
    key = runner.invoke(app, ["analyze-logs", "plot-curve", str(a), "--keys", "top1", "--out", str(tmp_path / "x.png")])
    assert key.exit_code == 2 and "no record has 'top1'" in key.output and "accuracy/top1" in key.output
    missing = runner.invoke(app, ["analyze-logs", "plot-curve", str(tmp_path / "none.jsonl")])
    assert missing.exit_code == 2 and "not found" in missing.output


def test_cal_train_time(runner: CliRunner, tmp_path: Path) -> None:
    log = write_log(tmp_path / "run" / "metrics.jsonl", times={(2, 2): 5.0})
    result = runner.invoke(app, ["analyze-logs", "cal-train-time", str(log)])
    assert result.exit_code == 0, result.output
    assert "slowest epoch 3, average time 0.3000 s/iter" in result.output
    assert "fastest epoch 1, average time 0.1000 s/iter" in result.output
    assert "time std over epochs: 0.0816 s/iter" in result.output
    assert "average iteration time: 0.2000 s/iter" in result.output
    outliers = runner.invoke(app, ["analyze-logs", "cal-train-time", str(log), "--include-outliers"])
    assert outliers.exit_code == 0, outliers.output
    assert "slowest epoch 2, average time 1.8000 s/iter" in outliers.output
