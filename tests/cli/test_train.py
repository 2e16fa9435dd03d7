"""clsctl train."""

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from clsctl.cli.main import app


def test_train_creates_run_and_prints_paths(runner: CliRunner, tiny_recipe: Path, tmp_path: Path) -> None:
    work = tmp_path / "elsewhere"
    result = runner.invoke(app, ["train", str(tiny_recipe), "--work-dir", str(work), "--device", "cpu",
                                 "--seed", "3", "--set", "runtime.epochs=1", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert f"last checkpoint: {work / 'last.pt'}" in result.output
    assert (work / "best.pt").exists() and (work / "metrics.jsonl").exists()
    saved = yaml.safe_load((work / "recipe.yaml").read_text())
    assert saved["runtime"]["seed"] == 3 and saved["runtime"]["epochs"] == 1
    assert saved["runtime"]["work_dir"] == str(work)


def test_resume_continues_and_resume_from(runner: CliRunner, tiny_recipe: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert runner.invoke(app, ["train", str(tiny_recipe), "--set", "runtime.epochs=1", "--no-progress"]).exit_code == 0
    result = runner.invoke(app, ["train", str(tiny_recipe), "--resume", "--no-progress"])
    assert result.exit_code == 0, result.output
    epochs = [json.loads(l)["epoch"] for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert epochs[0] == 1 and epochs[-1] == 2
    again = runner.invoke(app, ["train", str(tiny_recipe), "--work-dir", str(tmp_path / "copy"),
                                "--resume-from", str(run / "last.pt"), "--no-progress"])
    assert again.exit_code == 0, again.output


def test_bad_recipe_exits_2_without_traceback(runner: CliRunner, tmp_path: Path, tiny_recipe: Path) -> None:
    result = runner.invoke(app, ["train", str(tmp_path / "missing.yaml")])
    assert result.exit_code == 2 and "recipe file not found" in result.output
    result = runner.invoke(app, ["train", str(tiny_recipe), "--set", "optim.lr=-1", "--set", "runtime.epochs=x"])
    assert result.exit_code == 2
    assert "optim.lr: Input should be greater than 0 (got -1)" in result.output
    assert "runtime.epochs: Input should be a valid integer" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "run").exists()  # nothing touched


def test_resume_without_checkpoint(runner: CliRunner, tiny_recipe: Path) -> None:
    result = runner.invoke(app, ["train", str(tiny_recipe), "--resume"])
    assert result.exit_code == 2 and "nothing to resume" in result.output


def test_cuda_on_cpu_machine_is_a_clear_error(runner: CliRunner, tiny_recipe: Path) -> None:
    import torch

    if torch.cuda.is_available():  # this check is about machines without a GPU
        return
    result = runner.invoke(app, ["train", str(tiny_recipe), "--device", "cuda"])
    assert result.exit_code == 2 and "CUDA is not available" in result.output


def test_a_second_run_into_the_same_folder_stops_or_moves_the_first(runner: CliRunner, tiny_recipe: Path,
                                                                     tmp_path: Path) -> None:
    args = ["train", str(tiny_recipe), "--device", "cpu", "--set", "runtime.epochs=1", "--no-progress"]
    assert runner.invoke(app, args).exit_code == 0
    first = (tmp_path / "run" / "last.pt").read_bytes()
    again = runner.invoke(app, args + ["--set", "optim.lr=0.5"])  # a forgotten --resume, a changed lr
    assert again.exit_code == 2 and "Traceback" not in again.output
    text = " ".join(again.output.split())
    assert f"{tmp_path / 'run'} already holds a run (1 of 1 epochs done" in text
    assert "--resume" in text and "--work-dir" in text and "--overwrite" in text
    assert (tmp_path / "run" / "last.pt").read_bytes() == first
    moved = runner.invoke(app, args + ["--overwrite"])
    assert moved.exit_code == 0, moved.output
    (aside,) = tmp_path.glob("run.old-*")
    assert (aside / "last.pt").read_bytes() == first
