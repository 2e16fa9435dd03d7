"""clsctl train options of the training toolbox: --auto-scale-lr, --load-from, and what the run folder says."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from clsctl.cli.main import app


def _edit(recipe: Path, **optim: object) -> Path:
    data = yaml.safe_load(recipe.read_text())
    data["model"]["name"] = "lenet5"
    data["optim"].update(optim)
    data["schedule"] = {"type": "constant"}
    recipe.write_text(yaml.safe_dump(data), encoding="utf-8")
    return recipe


def test_auto_scale_lr_flag(runner: CliRunner, tiny_recipe: Path, tmp_path: Path) -> None:
    recipe = _edit(tiny_recipe, base_batch_size=32)  # loader batch 8, one process
    result = runner.invoke(app, ["train", str(recipe), "--auto-scale-lr", "--device", "cpu", "--no-progress",
                                 "--set", "runtime.epochs=1"])
    assert result.exit_code == 0, result.output
    saved = yaml.safe_load((tmp_path / "run" / "recipe.yaml").read_text())
    assert saved["runtime"]["auto_scale_lr"] is True
    lrs = [json.loads(l)["lr"] for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
           if json.loads(l)["mode"] == "train"]
    assert lrs and all(abs(lr - 0.05 * 8 / 32) < 1e-12 for lr in lrs)


def test_auto_scale_lr_without_base_batch_size_is_exit_2(runner: CliRunner, tiny_recipe: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", str(_edit(tiny_recipe)), "--auto-scale-lr", "--device", "cpu"])
    assert result.exit_code == 2 and "optim.base_batch_size" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "run").exists()


def test_load_from_flag_and_missing_file(runner: CliRunner, tiny_recipe: Path, tmp_path: Path) -> None:
    recipe = _edit(tiny_recipe)
    first = runner.invoke(app, ["train", str(recipe), "--device", "cpu", "--no-progress", "--set", "runtime.epochs=1"])
    assert first.exit_code == 0, first.output
    second = runner.invoke(app, ["train", str(recipe), "--device", "cpu", "--no-progress", "--set", "runtime.epochs=1",
                                 "--work-dir", str(tmp_path / "second"),
                                 "--load-from", str(tmp_path / "run" / "last.pt")])
    assert second.exit_code == 0, second.output
    assert "loaded weights from" in second.output
    saved = yaml.safe_load((tmp_path / "second" / "recipe.yaml").read_text())
    assert saved["runtime"]["load_from"] == str(tmp_path / "run" / "last.pt")
    missing = runner.invoke(app, ["train", str(recipe), "--device", "cpu", "--load-from", str(tmp_path / "nope.pt"),
                                  "--work-dir", str(tmp_path / "third")])
    assert missing.exit_code == 2 and "weights file not found" in missing.output
