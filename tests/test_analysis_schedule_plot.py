"""Tests of clsctl.analysis.schedule_plot."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from analysis_helpers import assert_picture, differ
from clsctl.analysis.schedule_plot import plot_schedule, schedule_curve, steps_per_epoch
from clsctl.errors import ClsctlError
from clsctl.recipe import load_recipe


def test_curve_matches_the_lr_a_real_training_run_logs(tiny_recipe: Path) -> None:
    from clsctl.engine.loop import train
    from clsctl.engine.runlog import read_metrics

    # 24 images, batch 4: 6 steps per epoch, 2 epochs: one epoch of warm-up, then cosine.
    recipe = load_recipe(tiny_recipe, ["data.loader.batch_size=4", "optim.lr=0.01"])
    result = train(recipe, show_progress=False)
    logged = [r for r in read_metrics(result.work_dir / "metrics.jsonl") if r["mode"] == "train"]
    assert len(logged) == 12  # log_interval 1: every step

    curve = schedule_curve(recipe)  # dataset size read from the train split
    assert (curve.steps_per_epoch, curve.epochs, curve.dataset_size) == (6, 2, 24)
    assert len(curve.values) == 12
    for record in logged:
        assert curve.values[record["step"] - 1] == pytest.approx(record["lr"], rel=1e-9, abs=1e-15)
    # The curve warms up, then decays.
    assert curve.values[0] < curve.values[5] and curve.values[6] > curve.values[-1]


def test_accumulation_and_auto_scale_lr_match_training(tiny_recipe: Path) -> None:
    from clsctl.engine.loop import train
    from clsctl.engine.runlog import read_metrics

    # 24 images, batch 4, 4 batches a step: 2 steps per epoch (4 batches, then 2); global batch 16 / base 8.
    recipe = load_recipe(tiny_recipe, ["data.loader.batch_size=4", "optim.lr=0.01", "optim.accumulate_steps=4",
                                       "optim.base_batch_size=8", "runtime.auto_scale_lr=true"])
    curve = schedule_curve(recipe)
    assert (curve.steps_per_epoch, curve.accumulate_steps, curve.lr_scale) == (2, 4, 2.0)
    assert max(curve.values) == pytest.approx(0.02)  # peak lr after warm-up: 0.01 x 2
    result = train(recipe, show_progress=False)
    # records at the batch that completes a step (4th and 6th of each epoch) carry the lr that step used
    logged = {r["step"]: r["lr"] for r in read_metrics(result.work_dir / "metrics.jsonl")
              if r["mode"] == "train" and r["iter"] in (4, 6)}
    assert sorted(logged) == [1, 2, 3, 4]
    for step, lr in logged.items():
        assert curve.values[step - 1] == pytest.approx(lr, rel=1e-9, abs=1e-15)


def test_dataset_size_and_gpus_set_the_iterations(tiny_recipe: Path) -> None:
    recipe = load_recipe(tiny_recipe, ["data.loader.batch_size=10"])
    assert len(schedule_curve(recipe, dataset_size=1000).values) == 2 * 100
    two = schedule_curve(recipe, dataset_size=1000, gpus=2)
    assert two.steps_per_epoch == 50 and two.gpus == 2
    # Warm-up lasts one epoch: half as many iterations with two GPUs.
    assert two.values[49] < two.values[50] == pytest.approx(max(two.values))


def test_steps_per_epoch_rounding() -> None:
    assert steps_per_epoch(25, 8) == 4
    assert steps_per_epoch(25, 8, drop_last=True) == 3
    assert steps_per_epoch(25, 8, gpus=2) == 2  # 13 samples per process
    assert steps_per_epoch(3, 8, drop_last=True) == 1
    assert steps_per_epoch(25, 8, accumulate_steps=3) == 2  # 4 batches: a step of 3 and a step of 1
    assert steps_per_epoch(48, 8, accumulate_steps=3) == 2


def test_multistep_curve(tiny_recipe: Path) -> None:
    recipe = load_recipe(tiny_recipe, ["schedule={type: multistep, milestones: [1], gamma: 0.5}", "optim.lr=0.2"])
    curve = schedule_curve(recipe, dataset_size=16)  # batch 8: 2 steps per epoch
    assert curve.values == pytest.approx([0.2, 0.2, 0.1, 0.1])


def test_momentum(tiny_recipe: Path) -> None:
    sgd = schedule_curve(load_recipe(tiny_recipe), "momentum", dataset_size=16)
    assert sgd.values == pytest.approx([0.9] * 4)
    adamw = schedule_curve(load_recipe(tiny_recipe, ["optim={type: adamw, lr: 0.001, betas: [0.85, 0.99]}"]),
                           "momentum", dataset_size=16)
    assert adamw.values == pytest.approx([0.85] * 4)


def test_weight_decay_curve(tiny_recipe: Path) -> None:
    recipe = load_recipe(tiny_recipe, ["optim.weight_decay=0.01", "runtime.epochs=2",
                                       "schedule=[{type: cosine, param: weight_decay, min_lr: 0.001, update: epoch}]"])
    curve = schedule_curve(recipe, "weight_decay", dataset_size=16)  # 2 steps per epoch
    assert curve.values == pytest.approx([0.01, 0.01, 0.0055, 0.0055])
    assert schedule_curve(recipe, dataset_size=16).values == pytest.approx([recipe.optim.lr] * 4)


def test_bad_arguments(tiny_recipe: Path) -> None:
    recipe = load_recipe(tiny_recipe)
    with pytest.raises(ClsctlError, match="lr, momentum or weight_decay"):
        schedule_curve(recipe, "beta2", dataset_size=8)
    with pytest.raises(ClsctlError):
        schedule_curve(recipe, dataset_size=8, gpus=0)


def test_plot(tiny_recipe: Path, tmp_path: Path) -> None:
    recipe = load_recipe(tiny_recipe)
    cosine = plot_schedule(schedule_curve(recipe, dataset_size=800), tmp_path / "a.png", window_size=(6, 4))
    pixels = assert_picture(cosine, 400, 250)
    assert pixels.shape[1] < 800  # 6 inches at 100 dpi, plus tight margins
    constant = load_recipe(tiny_recipe, ["schedule={type: constant}"])
    other = plot_schedule(schedule_curve(constant, dataset_size=800), tmp_path / "b.png", window_size=(6, 4))
    assert differ(pixels, assert_picture(other))
    titled = plot_schedule(schedule_curve(recipe, dataset_size=800), tmp_path / "c.png", window_size=(6, 4),
                           title="my title")
    assert differ(pixels, assert_picture(titled))
    assert math.isclose(schedule_curve(recipe, dataset_size=800).values[-1], 0.0, abs_tol=1e-3)
