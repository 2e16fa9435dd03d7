"""TensorBoard logging: the event file, read back with TensorBoard's own reader, holds the metrics.jsonl values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from clsctl.engine.loop import train
from clsctl.engine.tb import TensorBoardLog
from clsctl.recipe import validate_recipe

from helpers import tiny_recipe_dict


def _scalars(log_dir: Path) -> EventAccumulator:
    events = EventAccumulator(str(log_dir))
    events.Reload()
    return events


def test_training_writes_the_jsonl_records_as_scalars(tmp_path: Path, image_root: Path) -> None:
    data = tiny_recipe_dict(image_root, tmp_path / "run", epochs=2, tensorboard=True)
    data["model"]["name"] = "lenet5"
    run = train(validate_recipe(data), show_progress=False, device="cpu").work_dir
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    events = _scalars(run / "tensorboard")
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/lr", "train/img_per_s", "val/accuracy/top1", "val/loss"} <= tags
    assert not tags & {"train/epoch", "train/step", "train/time_stamp"}  # positions are not measurements
    train_loss = [(e.step, e.value) for e in events.Scalars("train/loss")]
    expected = [(r["step"], r["loss"]) for r in records if r["mode"] == "train"]
    assert [s for s, _ in train_loss] == [s for s, _ in expected] == [1, 2, 3, 4, 5, 6]
    assert [v for _, v in train_loss] == pytest.approx([v for _, v in expected], rel=1e-6)
    top1 = [e.value for e in events.Scalars("val/accuracy/top1")]
    assert top1 == pytest.approx([r["accuracy/top1"] for r in records if r["mode"] == "val"])


def test_no_event_files_unless_asked(tmp_path: Path, image_root: Path) -> None:
    data = tiny_recipe_dict(image_root, tmp_path / "run", epochs=1)
    data["model"]["name"] = "lenet5"
    run = train(validate_recipe(data), show_progress=False, device="cpu").work_dir
    assert not (run / "tensorboard").exists()


def test_writer_skips_non_numeric_values(tmp_path: Path) -> None:
    log = TensorBoardLog(tmp_path / "tb")
    log.write({"mode": "val", "epoch": 1, "step": 7, "accuracy/top1": 50.0, "note": "x", "flag": True})
    log.close()
    events = _scalars(tmp_path / "tb")
    assert events.Tags()["scalars"] == ["val/accuracy/top1"]
    assert [(e.step, e.value) for e in events.Scalars("val/accuracy/top1")] == [(7, 50.0)]
