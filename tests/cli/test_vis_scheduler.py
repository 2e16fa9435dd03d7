"""clsctl vis-scheduler."""

from pathlib import Path

from typer.testing import CliRunner

from analysis_helpers import assert_picture, differ
from clsctl.cli.main import app


def test_every_flag(runner: CliRunner, tiny_recipe: Path, tmp_path: Path) -> None:
    lr = runner.invoke(app, ["vis-scheduler", str(tiny_recipe), "-p", "lr", "-d", "800", "--gpus", "2",
                             "-o", str(tmp_path / "lr.png"), "--title", "lr", "--window-size", "6x4",
                             "--set", "optim.lr=0.2"])
    assert lr.exit_code == 0, lr.output
    # batch 8 on 2 GPUs: 50 iterations per epoch, 2 epochs.
    assert "lr: 2 epochs x 50 iterations = 100 (dataset 800, 2 GPU(s), 1 batch(es) a step, lr x 1)" in lr.output
    assert "max 0.2" in lr.output
    scaled = runner.invoke(app, ["vis-scheduler", str(tiny_recipe), "-d", "800", "--gpus", "2", "--auto-scale-lr",
                                 "-o", str(tmp_path / "scaled.png"), "--set", "optim.lr=0.2",
                                 "--set", "optim.base_batch_size=4", "--set", "optim.accumulate_steps=5"])
    assert scaled.exit_code == 0, scaled.output
    # global batch 8 x 2 x 5 = 80 over base 4: lr x 20; 50 batches make 10 steps.
    assert "2 epochs x 10 iterations = 20" in scaled.output and "lr x 20)" in scaled.output
    assert "max 4," in scaled.output
    lr_png = assert_picture(tmp_path / "lr.png", 300, 200)
    momentum = runner.invoke(app, ["vis-scheduler", str(tiny_recipe), "-p", "momentum", "-d", "800",
                                   "-o", str(tmp_path / "m.png"), "--window-size", "6x4"])
    assert momentum.exit_code == 0, momentum.output
    assert "first 0.9, max 0.9, last 0.9" in momentum.output
    assert differ(lr_png, assert_picture(tmp_path / "m.png"))


def test_without_dataset_size_counts_the_train_split(runner: CliRunner, tiny_recipe: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["vis-scheduler", str(tiny_recipe), "-o", str(tmp_path / "a.png")])
    assert result.exit_code == 0, result.output
    assert "2 epochs x 3 iterations = 6 (dataset 24, 1 GPU(s)" in result.output


def test_bad_values(runner: CliRunner, tiny_recipe: Path, tmp_path: Path) -> None:
    param = runner.invoke(app, ["vis-scheduler", str(tiny_recipe), "-p", "wd", "-d", "8"])
    assert param.exit_code == 2 and "Invalid value" in param.output and "'wd'" in param.output
    size = runner.invoke(app, ["vis-scheduler", str(tiny_recipe), "-d", "8", "--window-size", "big"])
    assert size.exit_code == 2 and "12x7" in size.output


def test_dataset_size_skips_the_dataset(runner: CliRunner, tiny_recipe: Path, tmp_path: Path) -> None:
    # The train folder does not exist: with -d nothing reads it.
    override = f"data.train.root={tmp_path / 'nowhere'}"
    given = runner.invoke(app, ["vis-scheduler", str(tiny_recipe), "-d", "16", "--set", override,
                                "-o", str(tmp_path / "a.png")])
    assert given.exit_code == 0, given.output
    counted = runner.invoke(app, ["vis-scheduler", str(tiny_recipe), "--set", override, "-o", str(tmp_path / "b.png")])
    assert counted.exit_code == 2 and "not found" in counted.output
