"""clsctl prepare-data."""

from pathlib import Path

from typer.testing import CliRunner

from clsctl.cli.main import app


def test_prepare_digits(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["prepare-data", "digits", str(tmp_path / "d"), "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert "10 classes; train: 1437, val: 360 images" in result.output
    assert len(list((tmp_path / "d" / "train").rglob("*.png"))) == 1437


def test_unknown_dataset(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["prepare-data", "cifar11", str(tmp_path)])
    assert result.exit_code == 2 and "did you mean 'cifar10'" in result.output
