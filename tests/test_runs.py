"""Run folders are never overwritten by accident; resume picks the newest checkpoint; logs of redone steps."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import torch

from clsctl.engine.checkpoint import save_checkpoint
from clsctl.engine.loop import train
from clsctl.engine.runlog import drop_superseded, read_metrics
from clsctl.engine.runs import RunFolderExistsError, choose_run_dir, newest_checkpoint
from clsctl.recipe import validate_recipe

from helpers import tiny_recipe_dict, write_train_val


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_train_val(root, train_per_class=4, val_per_class=1)
    return root


def _recipe(data_root: Path, work_dir: Path | None, **runtime: object) -> dict:
    data = tiny_recipe_dict(data_root, work_dir or Path("unused"), **{"epochs": 1, **runtime})
    data["model"]["name"] = "lenet5"
    data["name"] = "tiny"
    if work_dir is None:
        del data["runtime"]["work_dir"]
    return data


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_runs_without_a_named_folder_get_numbered_folders(data_root: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    recipe = validate_recipe(_recipe(data_root, None))
    first = train(recipe, device="cpu", show_progress=False)
    assert first.work_dir == Path("runs/tiny")
    before = _snapshot(first.work_dir)
    second = train(recipe, device="cpu", show_progress=False)
    third = train(recipe, device="cpu", show_progress=False)
    assert (second.work_dir, third.work_dir) == (Path("runs/tiny-2"), Path("runs/tiny-3"))
    assert _snapshot(first.work_dir) == before  # not a byte of the first run changed
    # --resume without a folder continues the newest of them
    longer = validate_recipe({**_recipe(data_root, None), "runtime": {**_recipe(data_root, None)["runtime"],
                                                                      "epochs": 2}})
    resumed = train(longer, resume=True, device="cpu", show_progress=False)
    assert resumed.work_dir == Path("runs/tiny-3") and _snapshot(first.work_dir) == before


def test_a_named_folder_holding_a_run_stops_before_any_work(data_root: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(validate_recipe(_recipe(data_root, run)), device="cpu", show_progress=False)
    before = _snapshot(run)
    changed = _recipe(data_root, run)
    changed["optim"]["lr"] = 0.5  # a changed lr and a forgotten --resume
    with pytest.raises(RunFolderExistsError) as excinfo:
        train(validate_recipe(changed), device="cpu", show_progress=False)
    message = str(excinfo.value)
    assert message.startswith(f"{run} already holds a run (1 of 1 epochs done, best metric ")
    assert "last written 20" in message and excinfo.value.exit_code == 2
    assert "--resume" in message and "--work-dir" in message and "--overwrite" in message
    assert _snapshot(run) == before


def test_overwrite_moves_the_old_run_aside(data_root: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(validate_recipe(_recipe(data_root, run)), device="cpu", show_progress=False)
    before = _snapshot(run)
    train(validate_recipe(_recipe(data_root, run)), overwrite=True, device="cpu", show_progress=False)
    (aside,) = tmp_path.glob("run.old-*")
    assert _snapshot(aside) == before  # moved, never deleted
    assert (run / "last.pt").exists()


def test_an_empty_named_folder_is_used(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    assert choose_run_dir(tmp_path / "run", tmp_path / "runs" / "x", resume=False, overwrite=False) == tmp_path / "run"


def test_resume_takes_the_checkpoint_that_is_further_along(tmp_path: Path) -> None:
    def write(name: str, epoch: int, position: int = 0) -> None:
        save_checkpoint({"model": {}, "recipe": {}, "class_names": [], "preprocessing": {}, "epoch": epoch,
                         "position": position}, tmp_path / name)

    write("last.pt", 3)
    assert newest_checkpoint(tmp_path).name == "last.pt"
    write("recovery.pt", 3, position=40)  # 40 batches into epoch 4
    assert newest_checkpoint(tmp_path).name == "recovery.pt"
    write("last.pt", 4)  # epoch 4 finished since
    assert newest_checkpoint(tmp_path).name == "last.pt"


def test_records_of_redone_steps_are_superseded(tmp_path: Path) -> None:
    records = [{"mode": "train", "epoch": 1, "step": s, "loss": 1.0} for s in (1, 2, 3)]
    records += [{"mode": "val", "epoch": 1, "step": 3}]
    records += [{"mode": "train", "epoch": 2, "step": s, "loss": 2.0} for s in (4, 5)]  # then kill -9
    records += [{"mode": "resume", "epoch": 1, "iter": 1, "step": 4}]  # the recovery file was at step 4
    records += [{"mode": "train", "epoch": 2, "step": s, "loss": 3.0} for s in (5, 6)]
    records += [{"mode": "val", "epoch": 2, "step": 6}]
    log = tmp_path / "metrics.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    kept = read_metrics(log)
    assert [(r["mode"], r["step"]) for r in kept if r["mode"] == "train"] == [("train", s) for s in range(1, 7)]
    assert [r["loss"] for r in kept if r["mode"] == "train"] == [1.0, 1.0, 1.0, 2.0, 3.0, 3.0]
    assert len(read_metrics(log, superseded=True)) == len(records)  # nothing is deleted from the file
    assert drop_superseded([]) == []


def test_analyze_logs_plots_each_step_once(tmp_path: Path) -> None:
    from clsctl.analysis.logs import key_series
    from clsctl.engine.runlog import read_metrics

    lines = [{"mode": "train", "epoch": 1, "step": s, "loss": 1.0} for s in (1, 2, 3)]
    lines += [{"mode": "resume", "epoch": 0, "iter": 2, "step": 2}]
    lines += [{"mode": "train", "epoch": 1, "step": 3, "loss": 0.5}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    steps, values, _ = key_series(read_metrics(tmp_path), "loss")
    assert steps == [1, 2, 3] and values == [1.0, 1.0, 0.5]


def test_recovery_file_holds_the_exact_position_and_resume_is_bit_exact(data_root: Path, tmp_path: Path) -> None:
    from clsctl.readers import read_checkpoint

    data = _recipe(data_root, tmp_path / "reference", epochs=2)
    data["data"]["loader"]["batch_size"] = 2  # 6 steps an epoch
    data["model"] = {"name": "test_resnet", "kwargs": {"drop_rate": 0.3}}  # dropout: the RNG position matters
    reference = train(validate_recipe(data), device="cpu", show_progress=False)
    assert not (tmp_path / "reference" / "recovery.pt").exists()  # dropped once last.pt is further along

    # A run that saves its position after every step and dies (as with kill -9) in epoch 2 after step 9.
    from clsctl.engine import loop

    original = loop._after_step

    def dies_inside_epoch_2(run: object, state: loop.RunState, batch: int) -> bool:
        stopped = original(run, state, batch)
        if state.epoch == 1 and batch == 3:  # epoch index 1
            raise SystemExit("killed")
        return stopped

    data["runtime"].update(work_dir=str(tmp_path / "killed"), recovery_interval=1e-9)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(loop, "_after_step", dies_inside_epoch_2)
        with pytest.raises(SystemExit):
            train(validate_recipe(data), device="cpu", show_progress=False)
    recovery = read_checkpoint(tmp_path / "killed" / "recovery.pt")
    assert (recovery["epoch"], recovery["position"]) == (1, 3)
    resumed = train(validate_recipe(data), resume=True, device="cpu", show_progress=False)
    final, expected = torch.load(resumed.last_checkpoint)["model"], torch.load(reference.last_checkpoint)["model"]
    assert all(torch.equal(final[k], expected[k]) for k in expected)
    assert not (tmp_path / "killed" / "recovery.pt").exists()
    steps = [r["step"] for r in read_metrics(tmp_path / "killed" / "metrics.jsonl") if r["mode"] == "train"]
    assert steps == list(range(1, 13))  # each step once, though steps 10-... of the first attempt were logged


def test_write_failure_stops_training_with_one_line(data_root: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    from typer.testing import CliRunner

    import yaml

    from clsctl.cli.main import app

    run = tmp_path / "run"
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(_recipe(data_root, run, epochs=2)), encoding="utf-8")
    assert CliRunner().invoke(app, ["train", str(recipe), "--device", "cpu", "--no-progress",
                                    "--set", "runtime.epochs=1"]).exit_code == 0
    good = {name: (run / name).read_bytes() for name in ("best.pt", "last.pt")}

    def full_disk(obj: object, handle: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", full_disk)
    result = CliRunner().invoke(app, ["train", str(recipe), "--device", "cpu", "--no-progress", "--resume"])
    assert result.exit_code == 4, result.output
    output = " ".join(result.output.split())
    assert re.search(rf"cannot write checkpoint {re.escape(str(run))}/(best|last)\.pt: No space left on device \(",
                     output)  # the first checkpoint write of the epoch
    assert "GiB free on" in output and "Traceback" not in result.output
    assert {name: (run / name).read_bytes() for name in good} == good
