"""The training loop (:mod:`clsctl.engine.loop`): the run folder, metrics, resume after Ctrl-C, SIGTERM, SIGUSR1
and kill -9, exact reproducibility; the training toolbox in the loop (accumulation, clipping, AMP, EMA,
checkpoint policy, load_from, divergence, auto-scaled lr, determinism, torch.compile); the run state and its
checkpoints. The toolbox runs use LeNet-5 (no BatchNorm, no dropout) on tiny generated folders, so they take
about a second and can be compared exactly."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from clsctl.engine import loop
from clsctl.readers import read_checkpoint
from clsctl.engine.loop import TrainResult, train
from clsctl.engine.optim import entry_factor
from clsctl.engine.runs import newest_checkpoint
from clsctl.errors import DataError, RecipeError, TrainingDivergedError, TrainingInterrupted
from clsctl.models import create_model
from clsctl.recipe import load_recipe, validate_recipe

from helpers import allow_ctrl_c, tiny_recipe_dict, write_image_folder, write_train_val

REPO = Path(__file__).resolve().parents[1]


def test_train_writes_run_folder(tiny_recipe: Path, tmp_path: Path) -> None:
    recipe = load_recipe(tiny_recipe)
    result = train(recipe, show_progress=False)
    run = tmp_path / "run"
    assert result.work_dir == run and result.last_checkpoint == run / "last.pt"
    assert yaml.safe_load((run / "recipe.yaml").read_text()) == recipe.to_dict()
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train_records = [r for r in records if r["mode"] == "train"]
    val_records = [r for r in records if r["mode"] == "val"]
    assert len(train_records) == 2 * 3  # 24 images / batch 8 = 3 steps per epoch, log_interval 1, 2 epochs
    assert [r["step"] for r in train_records] == list(range(1, 7))
    assert [r["epoch"] for r in val_records] == [1, 2]
    assert {"lr", "loss", "time", "data_time", "img_per_s"} <= train_records[0].keys()
    assert {"accuracy/top1", "accuracy/top5", "loss"} <= val_records[0].keys()
    # The lr each record reports is the one the schedule gives that (0-based) step.
    entries = recipe.schedule if isinstance(recipe.schedule, list) else [recipe.schedule]
    for record in train_records:
        expected = 0.05 * math.prod(entry_factor(e, record["step"] - 1, 3, 6, 0.05) for e in entries if e.param == "lr")
        assert record["lr"] == pytest.approx(expected)
    ckpt = read_checkpoint(run / "last.pt")
    assert ckpt["epoch"] == 2 and ckpt["class_names"] == ["blue", "green", "red"]
    assert ckpt["recipe"] == recipe.to_dict()
    assert ckpt["preprocessing"]["input_size"] == [32, 32]
    assert {"model", "optimizer", "schedule", "scaler", "rng", "best_metric"} <= ckpt.keys()
    best = read_checkpoint(run / "best.pt")
    assert best["best_metric"] == max(r["accuracy/top1"] for r in val_records)


def test_training_learns_the_colour_classes(tmp_path: Path, image_root: Path) -> None:
    data = tiny_recipe_dict(image_root, tmp_path / "run", epochs=6)
    result = train(validate_recipe(data), show_progress=False)
    assert result.best_metric is not None and result.best_metric >= 90.0


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path: Path, image_root: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    class NanAfter(torch.nn.CrossEntropyLoss):
        """Cross-entropy that turns NaN from the 5th call (epoch 2, step 2 of the tiny recipe)."""

        calls = 0

        def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            NanAfter.calls += 1
            loss = super().forward(logits, targets)
            return loss * float("nan") if NanAfter.calls >= 5 else loss

    monkeypatch.setattr(loop, "build_criterion", lambda recipe: NanAfter())
    data = tiny_recipe_dict(image_root, tmp_path / "run", epochs=3)
    with pytest.raises(TrainingDivergedError, match="loss became nan at epoch 2, step 2"):
        train(validate_recipe(data), show_progress=False)
    kept = read_checkpoint(tmp_path / "run" / "last.pt")
    assert kept["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in kept["model"].values() if v.is_floating_point())


def test_empty_dataset_folder_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "train" / "cat").mkdir(parents=True)
    data = tiny_recipe_dict(tmp_path, tmp_path / "run")
    with pytest.raises(DataError, match="no images found"):
        train(validate_recipe(data), show_progress=False)
    assert not (tmp_path / "run").exists()  # nothing touched


def _subprocess_env() -> dict:
    env = dict(os.environ)
    env.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(REPO)})
    return env


def _final_weights(run: Path) -> dict:
    return read_checkpoint(run / "last.pt")["model"]


@pytest.fixture(scope="module")
def slow_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A recipe with enough epochs that a signal lands mid-run, and the final weights of an uninterrupted run."""
    root = tmp_path_factory.mktemp("slow")
    write_train_val(root / "data", train_per_class=16, val_per_class=4)
    data = tiny_recipe_dict(root / "data", root / "unused", epochs=6)
    data["model"]["kwargs"] = {"drop_rate": 0.2}  # dropout draws from the global RNG: resume must restore it
    path = root / "slow.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    subprocess.run(_train_cmd(path, root / "reference"), env=_subprocess_env(), check=True, capture_output=True)
    return path, root / "reference"


def _train_cmd(recipe: Path, work_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "clsctl", "train", str(recipe), "--work-dir", str(work_dir), "--no-progress",
            "--device", "cpu", *extra]


def _fake_scontrol(folder: Path) -> Path:
    """An ``scontrol`` that records its arguments, put first on PATH."""
    folder.mkdir()
    script = folder / "scontrol"
    script.write_text(f"#!/bin/sh\necho \"$@\" >> {folder / 'calls.txt'}\n", encoding="utf-8")
    script.chmod(0o755)
    return folder


# Exit codes: 128 + the signal's number, as a shell reports a process ended by it.
@pytest.mark.slow  # a reference run, then a stopped and a resumed run per signal: about 40 s
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGKILL],
                         ids=["sigint", "sigterm", "sigusr1-requeue", "kill-9"])
def test_interrupted_run_resumes_to_identical_weights(slow_run: tuple[Path, Path], tmp_path: Path, sig: int) -> None:
    recipe, reference = slow_run
    env = _subprocess_env()
    extra: list[str] = []
    if sig == signal.SIGUSR1:  # under Slurm, with runtime.requeue: the job is put back in the queue ...
        fake = _fake_scontrol(tmp_path / "bin")
        env.update(PATH=f"{fake}{os.pathsep}{env['PATH']}", SLURM_JOB_ID="4242")
        extra = ["--set", "runtime.requeue=true"]
    if sig == signal.SIGKILL:  # nothing is saved at the kill: the recovery file, written after every step, is it
        extra = ["--set", "runtime.recovery_interval=0.000001"]
    interrupted = tmp_path / "interrupted"
    proc = subprocess.Popen(_train_cmd(recipe, interrupted, *extra), env=env, preexec_fn=allow_ctrl_c,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def ready() -> bool:
        if sig != signal.SIGKILL:
            return (interrupted / "last.pt").exists()  # an epoch is done
        log = interrupted / "metrics.jsonl"
        in_epoch_2 = log.exists() and '"epoch": 2' in log.read_text()
        return in_epoch_2 and (interrupted / "recovery.pt").exists()  # a recovery file inside epoch 2 or later

    deadline = time.time() + 120
    while not ready() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=120)
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
        assert newest_checkpoint(interrupted).name == "recovery.pt"
        stopped = read_checkpoint(interrupted / "recovery.pt")
        assert stopped["position"] > 0  # inside an epoch
    else:
        assert proc.returncode == 128 + sig, stderr
        assert "Traceback" not in stderr
        stopped = read_checkpoint(interrupted / "last.pt")
    assert 1 <= stopped["epoch"] < 6

    if sig == signal.SIGUSR1:
        assert (tmp_path / "bin" / "calls.txt").read_text().split() == ["requeue", "4242"]
        assert "Slurm job 4242 is requeued" in " ".join(stderr.split())
        # ... and when Slurm starts it again (same command, SLURM_RESTART_COUNT set) it resumes by itself
        resumed = subprocess.run(_train_cmd(recipe, interrupted, *extra), env={**env, "SLURM_RESTART_COUNT": "1"},
                                 capture_output=True, text=True)
    else:
        assert "continue with --resume" in stderr or sig == signal.SIGKILL
        resumed = subprocess.run(_train_cmd(recipe, interrupted, "--resume", *extra), env=env, capture_output=True,
                                 text=True)
    assert resumed.returncode == 0, resumed.stderr
    source = "recovery.pt" if sig == signal.SIGKILL else "last.pt"
    assert f"resumed from {interrupted / source} at epoch {stopped['epoch']}" in " ".join(resumed.stderr.split())
    final, expected = _final_weights(interrupted), _final_weights(reference)
    assert final.keys() == expected.keys()
    for key in expected:
        assert torch.equal(final[key], expected[key]), key
    epochs = [json.loads(l)["epoch"] for l in (interrupted / "metrics.jsonl").read_text().splitlines()
              if json.loads(l)["mode"] == "val"]
    assert epochs[-1] == 6 and sorted(set(epochs)) == list(range(1, 7))


def test_resume_restores_epoch_and_lr(tmp_path: Path, image_root: Path) -> None:
    data = tiny_recipe_dict(image_root, tmp_path / "run", epochs=2)
    data["schedule"] = {"type": "multistep", "milestones": [1, 3], "gamma": 0.1}
    data["runtime"]["epochs"] = 4
    # Stop after two epochs by training a recipe identical but for a checkpoint we cut short by hand.
    train(validate_recipe(data), show_progress=False)
    ckpt = read_checkpoint(tmp_path / "run" / "last.pt")
    assert ckpt["epoch"] == 4
    assert ckpt["schedule"]["step"] == 12
    lrs = [json.loads(l)["lr"] for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
           if json.loads(l)["mode"] == "train"]
    assert lrs == pytest.approx([0.05] * 3 + [0.005] * 6 + [0.0005] * 3)


def test_validation_and_checkpoint_intervals(tmp_path: Path, image_root: Path) -> None:
    data = tiny_recipe_dict(image_root, tmp_path / "run", epochs=3, val_interval=2, log_interval=2)
    train(validate_recipe(data), show_progress=False)
    records = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if r["mode"] == "val"] == [2, 3]  # every 2nd epoch, and the last
    assert [r["iter"] for r in records if r["mode"] == "train"] == [2, 3] * 3  # every 2nd step, and epoch ends


def test_ctrl_c_saves_the_position_inside_an_epoch_and_resume_is_exact(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ctrl_c_enabled: None) -> None:
    write_train_val(tmp_path / "data", train_per_class=16, val_per_class=4)
    data = tiny_recipe_dict(tmp_path / "data", tmp_path / "reference", epochs=3)
    data["model"]["kwargs"] = {"drop_rate": 0.3}  # dropout: the RNG state mid-epoch must be restored
    data["data"]["batch_augments"] = [{"type": "mixup", "alpha": 0.4}]  # so must the mixing generator
    reference = train(validate_recipe(data), show_progress=False)

    original = loop.build_criterion

    class CtrlCAfter(torch.nn.Module):
        """The loss of the recipe, pressing Ctrl-C during the 9th batch (epoch 2, batch 3 of 6)."""

        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner, self.calls = inner, 0

        def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            self.calls += 1
            if self.calls == 9:
                os.kill(os.getpid(), signal.SIGINT)
            return self.inner(logits, targets)

    monkeypatch.setattr(loop, "build_criterion", lambda recipe: CtrlCAfter(original(recipe)))
    data["runtime"]["work_dir"] = str(tmp_path / "stopped")
    handler_before = signal.getsignal(signal.SIGINT)
    with pytest.raises(TrainingInterrupted, match="interrupted at epoch 2, batch 3"):
        train(validate_recipe(data), show_progress=False)
    ckpt = read_checkpoint(tmp_path / "stopped" / "last.pt")
    assert ckpt["epoch"] == 1 and ckpt["position"] == 3 and ckpt["schedule"]["step"] == 9
    assert signal.getsignal(signal.SIGINT) is handler_before  # our handler is gone again

    monkeypatch.setattr(loop, "build_criterion", original)
    resumed = train(validate_recipe(data), resume=True, show_progress=False)
    final = read_checkpoint(resumed.last_checkpoint)["model"]
    expected = read_checkpoint(reference.last_checkpoint)["model"]
    assert all(torch.equal(final[k], expected[k]) for k in expected)
    iters = [(r["epoch"], r["iter"]) for r in map(json.loads, (tmp_path / "stopped" / "metrics.jsonl").read_text().splitlines())
             if r["mode"] == "train"]
    assert iters[:9] == [(1, i) for i in range(1, 7)] + [(2, i) for i in range(1, 4)]
    assert iters[9:] == [(2, i) for i in range(4, 7)] + [(3, i) for i in range(1, 7)]


def test_graceful_stop_takes_a_forwarded_ctrl_c_as_the_same_press(ctrl_c_enabled: None) -> None:
    handler_before = signal.getsignal(signal.SIGINT)
    with loop.GracefulStop(same_press_s=0.3) as stop:
        assert not stop.requested()
        os.kill(os.getpid(), signal.SIGINT)  # the terminal's Ctrl-C
        os.kill(os.getpid(), signal.SIGINT)  # the launcher forwarding it a moment later: no interruption
        assert stop.requested()
        time.sleep(0.35)
        with pytest.raises(KeyboardInterrupt):  # a second press: stop at once
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)  # the handler runs here, between bytecodes
    assert signal.getsignal(signal.SIGINT) is handler_before


# --------------------------------------------------------------------------- the training toolbox, on LeNet-5


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_image_folder(root / "train", per_class=8, seed=1)  # 24 images
    write_image_folder(root / "val", per_class=2, seed=2)
    return root


def _recipe(data_root: Path, run: Path, *, batch: int = 8, **runtime: Any) -> dict:
    data = tiny_recipe_dict(data_root, run, **runtime)
    data["model"]["name"] = "lenet5"
    data["data"]["loader"]["batch_size"] = batch
    data["schedule"] = {"type": "constant"}
    return data


def _run(data: dict, **kwargs: Any) -> TrainResult:
    return train(validate_recipe(data), show_progress=False, device="cpu", **kwargs)


def _records(run: Path, mode: str) -> list[dict]:
    return [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if r["mode"] == mode]


def _weights(path: Path, key: str = "model") -> dict[str, torch.Tensor]:
    return read_checkpoint(path)[key]


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], atol: float = 1e-6) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=atol, rtol=0, msg=key)


def test_gradient_accumulation_equals_the_large_batch(data_root: Path, tmp_path: Path) -> None:
    # 24 images: batch 16 gives steps of 16 and 8 images; batch 4 x 4 accumulated gives groups of 4 and 2
    # batches, the short last group divided by its real size.
    big = _recipe(data_root, tmp_path / "big", batch=16, epochs=2)
    small = _recipe(data_root, tmp_path / "small", batch=4, epochs=2)
    small["optim"]["accumulate_steps"] = 4
    _run(big)
    _run(small)
    _assert_same(_weights(tmp_path / "small" / "last.pt"), _weights(tmp_path / "big" / "last.pt"), atol=1e-5)
    # One record per batch (log_interval 1); "step" counts optimizer steps: after batches 4 and 6 of each epoch.
    assert [r["step"] for r in _records(tmp_path / "small", "train")] == [0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 3, 4]


def _initial_weights() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)  # what train() does before building the model
    return create_model("lenet5", num_classes=3).state_dict()


@pytest.mark.parametrize(("clip", "bound"), [({"type": "norm", "max_norm": 1e-3}, 3e-3),
                                             ({"type": "value", "max_norm": 1e-6}, 3e-6)])
def test_gradient_clipping_bounds_each_update(data_root: Path, tmp_path: Path, clip: dict, bound: float) -> None:
    data = _recipe(data_root, tmp_path / "run", epochs=1)  # 3 steps of plain SGD with lr 1
    data["optim"] = {"type": "sgd", "lr": 1.0, "momentum": 0.0, "weight_decay": 0.0, "clip_grad": clip}
    _run(data)
    final, start = _weights(tmp_path / "run" / "last.pt"), _initial_weights()
    deltas = torch.cat([(final[k] - start[k]).flatten() for k in start])
    if clip["type"] == "norm":
        assert 0 < deltas.norm() <= bound + 1e-7  # 3 updates of norm <= max_norm each (+ float32 rounding)
    else:
        assert 0 < deltas.abs().max() <= bound + 1e-7  # each entry moves <= max_norm per update


def test_bf16_autocast_on_cpu(data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dtypes: set[torch.dtype] = set()
    original = loop.build_model

    def build_and_watch(recipe: Any, num_classes: int) -> torch.nn.Module:
        model = original(recipe, num_classes)
        model.register_forward_hook(lambda module, args, out: dtypes.add(out.dtype))
        return model

    monkeypatch.setattr(loop, "build_model", build_and_watch)
    result = _run(_recipe(data_root, tmp_path / "run", epochs=1, amp="bf16"))
    assert dtypes == {torch.bfloat16}
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in _records(tmp_path / "run", "train"))
    assert result.val_metrics["accuracy/top1"] >= 0
    assert read_checkpoint(tmp_path / "run" / "last.pt")["model"]["classifier.2.weight"].dtype == torch.float32


def test_amp_true_means_fp16_and_is_off_on_cpu() -> None:
    assert loop.amp_dtype(True, torch.device("cpu")) is None
    assert loop.amp_dtype("fp16", torch.device("cuda")) == torch.float16
    assert loop.amp_dtype(True, torch.device("cuda")) == torch.float16
    assert loop.amp_dtype("bf16", torch.device("cpu")) == torch.bfloat16
    assert loop.amp_dtype(False, torch.device("cuda")) is None


def test_ema_is_validated_saved_and_resumed(data_root: Path, tmp_path: Path) -> None:
    data = _recipe(data_root, tmp_path / "full", epochs=2)
    data["ema"] = {"decay": 0.6, "warmup": False}
    _run(data)
    full = tmp_path / "full"
    assert [r["epoch"] for r in _records(full, "val_ema")] == [1, 2]
    assert {"accuracy/top1", "loss"} <= _records(full, "val_ema")[0].keys()
    last = read_checkpoint(full / "last.pt")
    assert last["ema"]["updates"] == 6
    best_ema = read_checkpoint(full / "best_ema.pt")
    assert best_ema["ema_weights"] is True
    assert not torch.equal(best_ema["model"]["classifier.2.weight"], last["model"]["classifier.2.weight"])
    # Resuming restores the average too: 1 epoch + resume = 2 epochs straight.
    part = tmp_path / "part"
    _run({**data, "runtime": {**data["runtime"], "epochs": 1, "work_dir": str(part)}})
    _run({**data, "runtime": {**data["runtime"], "work_dir": str(part)}}, resume=True)
    _assert_same(read_checkpoint(part / "last.pt")["ema"]["module"], last["ema"]["module"], atol=0)


def test_epoch_checkpoints_rotate_and_interval_applies(data_root: Path, tmp_path: Path) -> None:
    result = _run(_recipe(data_root, tmp_path / "run", epochs=4, keep_checkpoints=2, checkpoint_interval=1))
    run = result.work_dir
    assert sorted(p.name for p in run.glob("epoch_*.pt")) == ["epoch_3.pt", "epoch_4.pt"]
    assert read_checkpoint(run / "epoch_3.pt")["epoch"] == 3
    _assert_same(_weights(run / "epoch_4.pt"), _weights(run / "last.pt"), atol=0)
    result = _run(_recipe(data_root, tmp_path / "every2", epochs=3, keep_checkpoints=-1, checkpoint_interval=2))
    assert sorted(p.name for p in result.work_dir.glob("epoch_*.pt")) == ["epoch_2.pt", "epoch_3.pt"]


def test_save_best_on_a_chosen_metric_or_not_at_all(data_root: Path, tmp_path: Path) -> None:
    result = _run(_recipe(data_root, tmp_path / "loss", epochs=3, save_best="loss"))
    losses = [r["loss"] for r in _records(result.work_dir, "val")]
    best = read_checkpoint(result.work_dir / "best.pt")
    assert result.best_metric == min(losses) == best["best_metric"]
    assert best["epoch"] == losses.index(min(losses)) + 1
    result = _run(_recipe(data_root, tmp_path / "none", epochs=1, save_best=None))
    assert result.best_checkpoint is None and not (tmp_path / "none" / "best.pt").exists()
    with pytest.raises(RecipeError, match="no metric 'accuracy/top9'; it reports: accuracy/top1"):
        _run(_recipe(data_root, tmp_path / "bad", epochs=1, save_best="accuracy/top9"))


def test_load_from_takes_weights_only(data_root: Path, tmp_path: Path) -> None:
    first = _run(_recipe(data_root, tmp_path / "first", epochs=1))
    data = _recipe(data_root, tmp_path / "second", epochs=1, load_from=str(first.last_checkpoint))
    data["optim"] = {"type": "sgd", "lr": 1e-12, "momentum": 0.0, "weight_decay": 0.0}
    _run(data)
    second = read_checkpoint(tmp_path / "second" / "last.pt")
    _assert_same(second["model"], _weights(first.last_checkpoint))  # lr 1e-12 keeps the loaded weights
    assert second["epoch"] == 1 and second["schedule"] == {"step": 3}  # the run itself started fresh


def test_huge_lr_stops_with_a_clear_error_and_keeps_the_good_checkpoint(data_root: Path, tmp_path: Path) -> None:
    data = _recipe(data_root, tmp_path / "run", epochs=3)
    data["schedule"] = {"type": "multistep", "milestones": [1], "gamma": 1e30}  # lr 0.05, then 5e28
    with pytest.raises(TrainingDivergedError, match="at epoch 2, step .*last good checkpoint is kept"):
        _run(data)
    kept = read_checkpoint(tmp_path / "run" / "last.pt")
    assert kept["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in kept["model"].values())


def test_inf_weights_are_never_checkpointed() -> None:
    model = torch.nn.Linear(2, 2)
    loop._check_finite_weights(model, 0)
    with torch.no_grad():
        model.weight[0, 0] = float("inf")
    with pytest.raises(TrainingDivergedError, match="weights became inf/NaN at the end of epoch 4"):
        loop._check_finite_weights(model, 3)


def test_auto_scale_lr_uses_the_global_batch(data_root: Path, tmp_path: Path) -> None:
    data = _recipe(data_root, tmp_path / "run", batch=4, epochs=1, auto_scale_lr=True)
    data["optim"]["base_batch_size"] = 32
    data["optim"]["accumulate_steps"] = 2  # global batch 4 x 1 process x 2 = 8
    _run(data)
    assert [r["lr"] for r in _records(tmp_path / "run", "train")] == pytest.approx([0.05 * 8 / 32] * 6)
    del data["optim"]["base_batch_size"]
    with pytest.raises(RecipeError, match="auto_scale_lr needs optim.base_batch_size"):
        validate_recipe(data)


@pytest.fixture()
def restore_determinism() -> Any:
    yield
    torch.use_deterministic_algorithms(False)


def test_deterministic_runs_repeat_exactly(data_root: Path, tmp_path: Path, restore_determinism: Any) -> None:
    for name in ("a", "b"):
        _run(_recipe(data_root, tmp_path / name, epochs=1, deterministic=True))
        assert torch.are_deterministic_algorithms_enabled()
    _assert_same(_weights(tmp_path / "a" / "last.pt"), _weights(tmp_path / "b" / "last.pt"), atol=0)


def test_compile_wraps_the_training_model(data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake_compile(model: torch.nn.Module, mode: str | None = None) -> torch.nn.Module:
        calls.append((type(model).__name__, mode))
        return model  # compiling for real takes tens of seconds on this CPU

    monkeypatch.setattr(torch, "compile", fake_compile)
    _run(_recipe(data_root, tmp_path / "run", epochs=1, compile="reduce-overhead"))
    assert calls == [("LeNet5", "reduce-overhead")]
    # Checkpoints hold the plain model's keys, not a wrapper's.
    assert all(not k.startswith(("_orig_mod.", "module.")) for k in _weights(tmp_path / "run" / "last.pt"))


def test_batch_mixup_feeds_soft_targets_and_resumes_exactly(data_root: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[torch.Tensor] = []

    class Recording(torch.nn.CrossEntropyLoss):
        def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            seen.append(targets.detach().clone())
            return super().forward(logits, targets)

    monkeypatch.setattr(loop, "build_criterion", lambda recipe: Recording())
    data = _recipe(data_root, tmp_path / "full", epochs=2)
    data["data"]["batch_augments"] = [{"type": "mixup", "alpha": 1.0, "prob": 1.0}]
    _run(data)
    assert len(seen) == 6 and all(t.shape == (8, 3) for t in seen)
    assert all(torch.allclose(t.sum(1), torch.ones(8)) for t in seen)
    assert any(((t > 0) & (t < 1)).any() for t in seen)  # mixed, not one-hot
    part = tmp_path / "part"
    _run({**data, "runtime": {**data["runtime"], "epochs": 1, "work_dir": str(part)}})
    _run({**data, "runtime": {**data["runtime"], "work_dir": str(part)}}, resume=True)
    _assert_same(_weights(part / "last.pt"), _weights(tmp_path / "full" / "last.pt"), atol=0)


# --------------------------------------------------------------------------- the CUDA path, on the CPU (issue 18)


def test_resuming_a_checkpoint_without_scaler_state_with_fp16_scaling(
        data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A CPU (or bf16) run saves the disabled scaler's {}; resuming it where the scaler is on (fp16 on CUDA)
    # must not fail with "The source state dict is empty". An enabled CPU scaler stands in for the CUDA one.
    data = _recipe(data_root, tmp_path / "run", epochs=1)
    _run(data)
    assert read_checkpoint(tmp_path / "run" / "last.pt")["scaler"] == {}
    real = torch.amp.GradScaler
    monkeypatch.setattr(torch.amp, "GradScaler", lambda device, enabled=True: real("cpu", init_scale=256.0))
    data["runtime"]["epochs"] = 2
    _run(data, resume=True)
    saved = read_checkpoint(tmp_path / "run" / "last.pt")["scaler"]
    assert saved["scale"] == 256.0  # the fresh scaler's scale, kept (no inf/NaN gradients at this lr)
    scaler = real("cpu", init_scale=1.0)
    loop.restore_scaler(scaler, saved)  # and a saved state is restored
    assert scaler.get_scale() == 256.0


def test_rng_state_saves_and_restores_only_the_gpu_in_use(monkeypatch: pytest.MonkeyPatch) -> None:
    visible = 1  # restored where one GPU is visible ...
    restored: list[tuple[int, int]] = []

    def set_state(state: torch.Tensor, device: Any = "cuda") -> None:
        index = torch.device(device).index or 0
        if index >= visible:
            raise IndexError("list index out of range")  # what torch does for a GPU that is not there
        restored.append((index, int(state[0])))

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: visible)
    monkeypatch.setattr(torch.cuda, "set_rng_state", set_state)
    monkeypatch.setattr(torch.cuda, "get_rng_state",
                        lambda device="cuda": torch.tensor([10 + torch.device(device).index]))
    gpu0 = torch.device("cuda", 0)
    # ... from an 8-GPU node, in the format get_rng_state_all() wrote: one state per visible GPU.
    old = {**loop.rng_state(), "cuda": [torch.tensor([i]) for i in range(8)]}
    loop.set_rng_state(old, gpu0)
    assert restored == [(0, 0)]
    loop.set_rng_state(old, torch.device("cpu"))  # a CPU run ignores GPU states
    assert restored == [(0, 0)]
    # Now each process saves its own GPU's generator only, and restores it to the GPU it runs on.
    state = loop.rng_state(torch.device("cuda", 3))
    assert int(state["cuda"][0]) == 13 and state["cuda_index"] == 3
    loop.set_rng_state(state, gpu0)
    assert restored[-1] == (0, 13)
    assert "cuda" not in loop.rng_state(torch.device("cpu"))


def test_bf16_on_a_gpu_before_ampere_warns(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from clsctl.engine.build import warn_if_bf16_is_emulated

    capability = (7, 5)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")
    gpu = torch.device("cuda", 0)
    with caplog.at_level("WARNING", logger="clsctl"):
        warn_if_bf16_is_emulated(torch.bfloat16, gpu)
        warn_if_bf16_is_emulated(torch.float16, gpu)  # fp16 is native there
        warn_if_bf16_is_emulated(torch.bfloat16, torch.device("cpu"))
    assert len(caplog.records) == 1
    assert "Tesla T4 (compute capability 7.5) is emulated" in caplog.text and "fp16" in caplog.text
    caplog.clear()
    capability = (8, 0)
    with caplog.at_level("WARNING", logger="clsctl"):
        warn_if_bf16_is_emulated(torch.bfloat16, gpu)
    assert not caplog.records


def test_validation_copies_the_logits_to_the_host_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from clsctl.engine import distributed as D
    from clsctl.engine.progress import make_progress

    class Loader:
        """Four batches of 2 (the sampler gives validate the dataset order)."""

        sampler = [(i, None) for i in range(8)]

        def __iter__(self) -> Any:
            g = torch.Generator().manual_seed(0)
            return iter([(torch.rand(2, 3, 32, 32, generator=g), torch.tensor([i % 3, (i + 1) % 3]))
                         for i in range(4)])

    copies = []
    original = torch.Tensor.cpu
    monkeypatch.setattr(torch.Tensor, "cpu", lambda self, *a, **k: copies.append(self.shape) or original(self, *a, **k))
    model = create_model("lenet5", num_classes=3)
    with make_progress(False) as progress:
        metrics = loop.validate(model, Loader(), torch.device("cpu"), 3, D.DistContext(), progress, "val")
    assert copies[0] == torch.Size([8, 3])  # one copy of all logits ...
    assert not [shape for shape in copies if shape[0] == 2]  # ... none per batch of 2
    assert 0 <= metrics["accuracy/top1"] <= 100
    monkeypatch.undo()
    from clsctl.engine.evaluate import run_evaluation

    assert metrics == run_evaluation(model, Loader(), torch.device("cpu"), 3).metrics  # what `clsctl test` computes


def test_the_distributed_timeout_goes_to_the_process_group(data_root: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from clsctl.engine import distributed as D

    seen = []

    def setup(device: str, timeout_s: float | None = None) -> D.DistContext:
        seen.append((device, timeout_s))
        raise RuntimeError("stop here")

    monkeypatch.setattr(D, "setup", setup)
    with pytest.raises(RuntimeError, match="stop here"):
        _run(_recipe(data_root, tmp_path / "run", dist_timeout="1.5h"))
    assert seen == [("cpu", 5400.0)]


# --------------------------------------------------------------------------- the run state and its checkpoints


class _Records(list):
    """The run's records, kept in memory."""

    def write(self, record: dict) -> None:
        self.append(record)

    def close(self) -> None:
        pass


def _mixup_ema_recipe(data_root: Path, run: Path) -> Any:
    data = _recipe(data_root, run, epochs=2)
    data["data"]["batch_augments"] = [{"type": "mixup", "alpha": 1.0}]
    data["ema"] = {"decay": 0.9}
    data["schedule"] = {"type": "cosine", "warmup_epochs": 1}
    return validate_recipe(data)


def test_run_state_round_trips_through_a_checkpoint_inside_an_epoch(data_root: Path, tmp_path: Path) -> None:
    from clsctl.engine import distributed as D
    from clsctl.engine.checkpoint import save_checkpoint
    from clsctl.engine.progress import make_progress

    def finish_epoch(run: loop.Run, state: loop.RunState) -> dict[str, torch.Tensor]:
        run.train_loader.sampler.set_epoch(0, start=state.position * 8)
        assert loop.train_one_epoch(run, state) is None
        return {**state.raw_model.state_dict(), **{f"ema.{k}": v for k, v in state.ema.module.state_dict().items()}}

    with make_progress(False) as progress:
        run = loop.build_run(_mixup_ema_recipe(data_root, tmp_path), D.DistContext(), tmp_path)
        run.log, run.progress = _Records(), progress
        state = loop.build_state(run)
        state.mixer.set_epoch(0)
        run.train_loader.sampler.set_epoch(0)
        assert loop.train_one_epoch(run, state, after_step=lambda run, state, batch: batch == 1) == 1  # of 3
        state.best_metric, state.best_ema_metric, state.val_metrics = 40.0, 45.0, {"accuracy/top1": 40.0}
        path = save_checkpoint(loop._checkpoint(run, state, position=1,
                                                rank_states=[loop._rank_state(run, state)]), tmp_path / "last.pt")
        mix_state = state.mixer.state_dict()["generator"].clone()
        state.position = 1
        expected = finish_epoch(run, state)  # the run as it would have gone on

        run.train_loader.sampler.set_epoch(0)  # the whole epoch again: the schedule is sized by its length
        resumed = loop.build_state(run)
        assert loop.resume_state(run, resumed, path) == path
        assert (resumed.epoch, resumed.position, resumed.schedule.step_count) == (0, 1, 1)
        assert (resumed.best_metric, resumed.best_ema_metric, resumed.ema.updates) == (40.0, 45.0, 1)
        assert torch.equal(resumed.mixer.state_dict()["generator"], mix_state)
        assert torch.equal(torch.get_rng_state(), read_checkpoint(path)["rng"]["torch"])
        assert read_checkpoint(path)["metrics"] == {"accuracy/top1": 40.0}
        _assert_same(finish_epoch(run, resumed), expected, atol=0)


def test_a_checkpoint_from_before_the_batch_mixer_class_resumes_exactly(data_root: Path, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    data = _recipe(data_root, tmp_path / "reference", epochs=2)
    data["data"]["batch_augments"] = [{"type": "cutmix", "alpha": 1.0, "prob": 0.5}, {"type": "mixup", "alpha": 1.0}]
    reference = _run(data)
    original = loop._after_step
    monkeypatch.setattr(loop, "_after_step", lambda run, state, batch: original(run, state, batch) or
                        (state.epoch, batch) == (1, 1))  # stop in epoch 2 after its first batch
    data["runtime"]["work_dir"] = str(tmp_path / "old")
    with pytest.raises(TrainingInterrupted, match="epoch 2, batch 1"):
        _run(data)
    monkeypatch.setattr(loop, "_after_step", original)
    last = tmp_path / "old" / "last.pt"
    saved = read_checkpoint(last)
    assert set(saved["mix_state"]) == {"generator"}
    # What the loop wrote before BatchMixer: the generator's state itself.
    torch.save({**saved, "mix_state": saved["mix_state"]["generator"]}, last)
    _run(data, resume=True)
    _assert_same(_weights(last), _weights(reference.last_checkpoint), atol=0)
