"""The training loop: run folder contents, metrics, resume after Ctrl-C and kill -9, exact reproducibility."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from clsctl.engine.checkpoint import load_checkpoint
from clsctl.engine.loop import train
from clsctl.engine.optim import entry_factor
from clsctl.engine.runs import newest_checkpoint
from clsctl.errors import DataError
from clsctl.recipe import load_recipe, validate_recipe

from helpers import allow_ctrl_c, tiny_recipe_dict, write_image_folder

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
    ckpt = load_checkpoint(run / "last.pt")
    assert ckpt["epoch"] == 2 and ckpt["class_names"] == ["blue", "green", "red"]
    assert ckpt["recipe"] == recipe.to_dict()
    assert ckpt["preprocessing"]["input_size"] == [32, 32]
    assert {"model", "optimizer", "schedule", "scaler", "rng", "best_metric"} <= ckpt.keys()
    best = load_checkpoint(run / "best.pt")
    assert best["best_metric"] == max(r["accuracy/top1"] for r in val_records)


def test_training_learns_the_colour_classes(tmp_path: Path, image_root: Path) -> None:
    data = tiny_recipe_dict(image_root, tmp_path / "run", epochs=6)
    result = train(validate_recipe(data), show_progress=False)
    assert result.best_metric is not None and result.best_metric >= 90.0


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path: Path, image_root: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from clsctl.engine import loop
    from clsctl.errors import TrainingDivergedError

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
    kept = load_checkpoint(tmp_path / "run" / "last.pt")
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
    return load_checkpoint(run / "last.pt")["model"]


@pytest.fixture(scope="module")
def slow_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A recipe with enough epochs that a signal lands mid-run, and the final weights of an uninterrupted run."""
    root = tmp_path_factory.mktemp("slow")
    write_image_folder(root / "data" / "train", per_class=16, seed=1)
    write_image_folder(root / "data" / "val", per_class=4, seed=2)
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
        stopped = load_checkpoint(interrupted / "recovery.pt")
        assert stopped["position"] > 0  # inside an epoch
    else:
        assert proc.returncode == 128 + sig, stderr
        assert "Traceback" not in stderr
        stopped = load_checkpoint(interrupted / "last.pt")
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
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
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
    from clsctl.engine import loop
    from clsctl.engine.loop import TrainingInterrupted

    write_image_folder(tmp_path / "data" / "train", per_class=16, seed=1)
    write_image_folder(tmp_path / "data" / "val", per_class=4, seed=2)
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
    ckpt = load_checkpoint(tmp_path / "stopped" / "last.pt")
    assert ckpt["epoch"] == 1 and ckpt["position"] == 3 and ckpt["schedule"]["step"] == 9
    assert signal.getsignal(signal.SIGINT) is handler_before  # our handler is gone again

    monkeypatch.setattr(loop, "build_criterion", original)
    resumed = train(validate_recipe(data), resume=True, show_progress=False)
    final = load_checkpoint(resumed.last_checkpoint)["model"]
    expected = load_checkpoint(reference.last_checkpoint)["model"]
    assert all(torch.equal(final[k], expected[k]) for k in expected)
    iters = [(r["epoch"], r["iter"]) for r in map(json.loads, (tmp_path / "stopped" / "metrics.jsonl").read_text().splitlines())
             if r["mode"] == "train"]
    assert iters[:9] == [(1, i) for i in range(1, 7)] + [(2, i) for i in range(1, 4)]
    assert iters[9:] == [(2, i) for i in range(4, 7)] + [(3, i) for i in range(1, 7)]


def test_graceful_stop_takes_a_forwarded_ctrl_c_as_the_same_press(ctrl_c_enabled: None) -> None:
    from clsctl.engine.loop import GracefulStop

    handler_before = signal.getsignal(signal.SIGINT)
    with GracefulStop(same_press_s=0.3) as stop:
        assert not stop.requested()
        os.kill(os.getpid(), signal.SIGINT)  # the terminal's Ctrl-C
        os.kill(os.getpid(), signal.SIGINT)  # the launcher forwarding it a moment later: no interruption
        assert stop.requested()
        time.sleep(0.35)
        with pytest.raises(KeyboardInterrupt):  # a second press: stop at once
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)  # the handler runs here, between bytecodes
    assert signal.getsignal(signal.SIGINT) is handler_before
