"""clsctl train --gpus N: worker processes through torch's elastic launcher (gloo on the CPU here)."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from clsctl.cli.main import app
from clsctl.readers import read_checkpoint
from clsctl.engine.loop import train
from clsctl.recipe import validate_recipe

from helpers import allow_ctrl_c, tiny_recipe_dict, write_image_folder


def _records(run: Path, mode: str) -> list[dict]:
    return [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if r["mode"] == mode]


@pytest.fixture()
def ddp_recipe(tmp_path: Path) -> dict:
    """The tiny recipe on LeNet-5, 4 images per process.

    LeNet-5 has no BatchNorm and no dropout. With BatchNorm each process would normalise its 4 images by
    their own statistics, not by the 8 of the global batch, and the runs would differ by design
    (SyncBatchNorm, the fix, runs on CUDA only). Without it, DDP's gradient average over 2 x 4 images must
    equal one process's gradient over the same 8.
    """
    write_image_folder(tmp_path / "data" / "train", per_class=8, seed=1)  # 24 images: 3 steps of 8
    write_image_folder(tmp_path / "data" / "val", per_class=3, seed=2)  # 9 images: uneven over 2 processes
    data = tiny_recipe_dict(tmp_path / "data", tmp_path / "run", epochs=2)
    data["model"]["name"] = "lenet5"
    data["data"]["loader"]["batch_size"] = 4
    return data


@pytest.mark.slow  # two spawned workers importing torch: about 15 s
def test_two_gloo_workers_match_one_process_with_the_same_global_batch(
        runner: CliRunner, ddp_recipe: dict, tmp_path: Path) -> None:
    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump(ddp_recipe), encoding="utf-8")
    ddp_run = tmp_path / "ddp"
    handlers_before = [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)]
    result = runner.invoke(app, ["train", str(path), "--gpus", "2", "--device", "cpu", "--no-progress",
                                 "--work-dir", str(ddp_run)])
    assert result.exit_code == 0, result.output
    # the launcher's own handlers are gone again: a later Ctrl-C in this process is an ordinary one
    assert [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)] == handlers_before
    assert f"last checkpoint: {ddp_run / 'last.pt'}" in result.output

    single = dict(ddp_recipe, data={**ddp_recipe["data"], "loader": {"batch_size": 8, "num_workers": 0}})
    train(validate_recipe(single), tmp_path / "single", device="cpu", show_progress=False)

    got = read_checkpoint(ddp_run / "last.pt")["model"]
    expected = read_checkpoint(tmp_path / "single" / "last.pt")["model"]
    assert got.keys() == expected.keys()
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], atol=1e-5, rtol=0, msg=key)
    # Rank 0 alone writes the log: one record per step (3 per epoch), with the loss averaged over both ranks.
    ddp_train, single_train = _records(ddp_run, "train"), _records(tmp_path / "single", "train")
    assert [r["step"] for r in ddp_train] == [1, 2, 3, 4, 5, 6]
    assert [r["loss"] for r in ddp_train] == pytest.approx([r["loss"] for r in single_train], abs=1e-5)
    # Validation gathered over ranks: 9 images split 5 + 4 (one padding repeat dropped), same metrics.
    ddp_val, single_val = _records(ddp_run, "val"), _records(tmp_path / "single", "val")
    assert len(ddp_val) == 2
    for mine, theirs in zip(ddp_val, single_val):
        for key in ("accuracy/top1", "accuracy/top5", "loss", "macro/f1"):
            assert mine[key] == pytest.approx(theirs[key], abs=1e-5), key
    assert sorted(p.name for p in ddp_run.iterdir()) == ["best.pt", "last.pt", "metrics.jsonl", "recipe.yaml"]


@pytest.mark.slow  # two spawned workers importing torch: about 15 s
def test_divergence_in_workers_stops_all_and_exits_like_one_process(
        runner: CliRunner, ddp_recipe: dict, tmp_path: Path) -> None:
    ddp_recipe["schedule"] = {"type": "multistep", "milestones": [1], "gamma": 1e30}  # lr 5e28 from epoch 2
    path = tmp_path / "diverge.yaml"
    path.write_text(yaml.safe_dump(ddp_recipe), encoding="utf-8")
    result = runner.invoke(app, ["train", str(path), "--gpus", "2", "--device", "cpu", "--no-progress"])
    assert result.exit_code == 3, result.output
    assert "at epoch 2" in result.output and "last good checkpoint is kept" in result.output
    assert "Traceback" not in result.output
    assert read_checkpoint(tmp_path / "run" / "last.pt")["epoch"] == 1


def test_several_nodes_need_a_master_address(runner: CliRunner, ddp_recipe: dict, tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(ddp_recipe), encoding="utf-8")
    result = runner.invoke(app, ["train", str(path), "--gpus", "2", "--nnodes", "2", "--device", "cpu"])
    assert result.exit_code == 2 and "needs --master-addr" in result.output
    assert not (tmp_path / "run").exists()


def test_more_cuda_workers_than_gpus_is_a_clear_error(runner: CliRunner, ddp_recipe: dict, tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("about machines without enough GPUs")
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(ddp_recipe), encoding="utf-8")
    result = runner.invoke(app, ["train", str(path), "--gpus", "2", "--device", "cuda"])
    assert result.exit_code == 2 and "CUDA is not available" in result.output


@pytest.mark.slow  # five 2-worker runs: about 80 s
def test_signals_stop_every_worker_at_one_step_and_resume_is_exact(tmp_path: Path) -> None:
    """SIGTERM (Kubernetes, Slurm's time limit) and SIGUSR1 (Slurm's ``--signal``) to the launching process
    alone, then Ctrl-C to the whole process group (a terminal): each stops both workers at one step with the
    position saved, and the run resumed after each ends bit-equal to an uninterrupted one.

    Also: each worker keeps its own random streams (dropout, mixup) across the stops, and validation scores
    the BatchNorm statistics that are saved (rank 0's)."""
    import os
    import subprocess
    import sys
    import time

    from clsctl.engine.evaluate import evaluate

    write_image_folder(tmp_path / "data" / "train", per_class=16, seed=1)  # 48 images: 6 steps of 2 x 4
    write_image_folder(tmp_path / "data" / "val", per_class=2, seed=2)
    data = tiny_recipe_dict(tmp_path / "data", tmp_path / "unused", epochs=8)
    data["data"]["loader"]["batch_size"] = 4
    data["model"]["kwargs"] = {"drop_rate": 0.3}  # each rank's dropout stream must continue where it stopped
    data["data"]["batch_augments"] = [{"type": "mixup", "alpha": 0.4}]  # and so must its mixing generator
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(data), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])

    def command(run: Path, *extra: str) -> list[str]:
        return [sys.executable, "-m", "clsctl", "train", str(recipe), "--gpus", "2", "--device", "cpu",
                "--no-progress", "--work-dir", str(run), *extra]

    reference = subprocess.run(command(tmp_path / "reference"), env=env, capture_output=True, text=True, timeout=300)
    assert reference.returncode == 0, reference.stderr

    run = tmp_path / "stopped"

    def stop_midway(sig: int, whole_group: bool, *extra: str) -> tuple[str, dict]:
        log = run / "metrics.jsonl"
        lines_before = len(log.read_text().splitlines()) if log.exists() else 0
        # A session of its own, so that a signal to the group reaches the launcher and both workers, as Ctrl-C
        # in a terminal does.
        proc = subprocess.Popen(command(run, *extra), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True, preexec_fn=allow_ctrl_c)
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None and '"val"' not in "".join(
                (log.read_text().splitlines() if log.exists() else [])[lines_before + 1:]):
            time.sleep(0.05)
        sent = time.monotonic()
        if whole_group:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=60)
        assert time.monotonic() - sent < 28  # not the launcher's 30 s wait before it kills the workers
        assert proc.returncode == 128 + sig, stderr
        assert "training interrupted" in stderr and "continue with --resume" in stderr
        assert "Traceback" not in stderr
        stopped = read_checkpoint(run / "last.pt")
        assert 1 <= stopped["position"] < 6 and stopped["epoch"] < 8  # inside an epoch
        return stderr, stopped

    stderr, stopped = stop_midway(signal.SIGTERM, False)
    assert "training interrupted at epoch" in stderr and stderr.count("stopping after this step") == 1  # rank 0
    ranks = stopped["rank_states"]  # one entry per worker: their streams differ
    assert len(ranks) == 2 and not torch.equal(ranks[0]["rng"]["torch"], ranks[1]["rng"]["torch"])
    assert ranks[0]["mix_state"]["generator"].tolist() != ranks[1]["mix_state"]["generator"].tolist()
    stop_midway(signal.SIGUSR1, False, "--resume")
    stop_midway(signal.SIGINT, True, "--resume")

    resumed = subprocess.run(command(run, "--resume"), env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    final = read_checkpoint(run / "last.pt")["model"]
    expected = read_checkpoint(tmp_path / "reference" / "last.pt")["model"]
    assert final.keys() == expected.keys()
    for key in expected:
        assert torch.equal(final[key], expected[key]), key
    # The last validation (both workers, each its half) scored the saved model: rank 0's BatchNorm statistics.
    logged = _records(run, "val")[-1]
    rescored = evaluate(run / "last.pt", split="val", device="cpu", show_progress=False).metrics
    assert logged["loss"] == pytest.approx(rescored["loss"], abs=1e-6)


def test_more_gpus_than_cuda_devices_stops_at_once(runner: CliRunner, ddp_recipe: dict, tmp_path: Path) -> None:
    """--gpus N without N CUDA devices is an error, not N CPU workers: those need an explicit --device cpu."""
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(ddp_recipe), encoding="utf-8")
    result = runner.invoke(app, ["train", str(path), "--gpus", str(count + 1), "--no-progress"])
    assert result.exit_code == 2, result.output
    have = "CUDA is not available here (0 GPUs)" if count == 0 else f"this machine has {count} GPU(s)"
    assert f"--gpus {count + 1} asked for, but {have}; for {count + 1} CPU worker processes give --device cpu" in (
        " ".join(result.output.split()))
    assert not (tmp_path / "run").exists()
