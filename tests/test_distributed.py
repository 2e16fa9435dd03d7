"""Distributed helpers: finding the ranks in the environment, gathering evaluation rows, launcher settings."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from clsctl.engine import distributed as D
from clsctl.errors import ClsctlError


def test_torchrun_environment_is_detected() -> None:
    env = {"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "SLURM_PROCID": "0", "SLURM_NTASKS": "2"}
    assert D.env_ranks(env) == (3, 8, 1)  # torchrun's variables win over Slurm's


def test_srun_environment_is_detected() -> None:
    env = {"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1", "SLURM_STEP_ID": "0"}
    assert D.env_ranks(env) == (5, 8, 1)


def test_plain_process_and_sbatch_script_are_not_distributed() -> None:
    assert D.env_ranks({}) is None
    # An sbatch script has SLURM_PROCID too, but no job step: it is one process that may launch others.
    assert D.env_ranks({"SLURM_PROCID": "0", "SLURM_NTASKS": "4", "SLURM_JOB_ID": "7"}) is None
    assert D.env_ranks({"SLURM_PROCID": "0", "SLURM_NTASKS": "1", "SLURM_STEP_ID": "0"}) is None


def test_setup_without_distributed_environment_is_single_process(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("RANK", "WORLD_SIZE", "SLURM_PROCID", "SLURM_NTASKS"):
        monkeypatch.delenv(key, raising=False)
    ctx = D.setup("cpu")
    assert (ctx.rank, ctx.world_size, ctx.distributed, ctx.is_main) == (0, 1, False, True)
    assert ctx.device == torch.device("cpu") and not ctx.owns_group


def test_gather_by_index_drops_padding_repeats_and_restores_order() -> None:
    # What two ranks of a 5-sample validation set compute: rank 0 takes 0, 2, 4; rank 1 takes 1, 3 and the
    # padding repeat of 0. Here both parts arrive in one process, interleaved as the sampler yields them.
    indices = [0, 2, 4, 1, 3, 0]
    rows = torch.tensor([[0.0], [2.0], [4.0], [1.0], [3.0], [0.5]])
    labels = torch.tensor([10, 12, 14, 11, 13, 10])
    out_rows, out_labels = D.gather_by_index(indices, rows, labels, ctx=D.DistContext())
    assert out_rows.flatten().tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]  # the first row of index 0 is kept
    assert out_labels.tolist() == [10, 11, 12, 13, 14]


def test_gather_to_main_sorts_rows_by_dataset_index_and_keeps_every_row() -> None:
    # rank 0's batches [0, 1] and [4], rank 1's [2, 3], arriving in one process: sorted, nothing dropped
    rows = torch.tensor([[0.0], [1.0], [4.0], [2.0], [3.0]])
    gathered = D.gather_to_main([0, 1, 4, 2, 3], rows, torch.arange(5), ctx=D.DistContext(), extra=1.5)
    assert gathered is not None
    (out_rows, out_order), extras = gathered
    assert out_rows.flatten().tolist() == [0.0, 1.0, 2.0, 3.0, 4.0] and out_order.tolist() == [0, 1, 3, 4, 2]
    assert extras == [1.5]


def test_launch_config_single_node_uses_private_rendezvous() -> None:
    config = D.launch_config(D.LaunchOptions(nproc_per_node=2))
    assert (config.min_nodes, config.max_nodes, config.nproc_per_node) == (1, 1, 2)
    assert config.rdzv_backend == "c10d" and config.rdzv_endpoint.startswith("127.0.0.1:")
    assert config.max_restarts == 0
    assert D.launch_config(D.LaunchOptions(2, master_port=29777)).rdzv_endpoint == "127.0.0.1:29777"


def test_launch_config_multi_node_uses_static_rendezvous_at_master() -> None:
    config = D.launch_config(D.LaunchOptions(4, nnodes=2, node_rank=1, master_addr="10.0.0.1", master_port=29600))
    assert (config.min_nodes, config.max_nodes, config.nproc_per_node) == (2, 2, 4)
    assert config.rdzv_backend == "static" and config.rdzv_endpoint == "10.0.0.1:29600"
    assert config.rdzv_configs["rank"] == 1


@pytest.mark.parametrize(("options", "message"), [
    (D.LaunchOptions(2, nnodes=2), "needs --master-addr"),
    (D.LaunchOptions(2, nnodes=2, node_rank=2, master_addr="h"), r"--node-rank must be in \[0, 1\]"),
    (D.LaunchOptions(0), "at least 1"),
])
def test_launch_config_rejects_inconsistent_options(options: D.LaunchOptions, message: str) -> None:
    with pytest.raises(ClsctlError, match=message):
        D.launch_config(options)


def test_launch_inside_torchrun_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ClsctlError, match="started by torchrun or srun already"):
        D.launch_training({}, D.LaunchOptions(2), device="cpu")


@pytest.mark.slow  # two processes importing torch: about 10 s
def test_processes_started_like_srun_join_one_run(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    import yaml

    from clsctl.engine.checkpoint import load_checkpoint
    from helpers import tiny_recipe_dict, write_image_folder

    write_image_folder(tmp_path / "data" / "train", per_class=4, seed=1)
    write_image_folder(tmp_path / "data" / "val", per_class=1, seed=2)
    data = tiny_recipe_dict(tmp_path / "data", tmp_path / "run", epochs=1)
    data["model"]["name"] = "lenet5"
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(data), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update({"SLURM_NTASKS": "2", "SLURM_STEP_ID": "0", "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": str(D._free_port()), "OMP_NUM_THREADS": "1",
                "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    command = [sys.executable, "-m", "clsctl", "train", str(recipe), "--device", "cpu", "--no-progress"]
    procs = [subprocess.Popen(command, env={**env, "SLURM_PROCID": str(rank), "SLURM_LOCALID": str(rank)},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for rank in (0, 1)]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert "distributed: 2 processes" in outputs[0] and "last checkpoint:" in outputs[0]
    assert outputs[1].strip() == ""  # rank 1 neither logs nor reports
    assert load_checkpoint(tmp_path / "run" / "last.pt")["epoch"] == 1
    steps = [r for r in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines() if '"train"' in r]
    assert len(steps) == 1  # 12 images over 2 processes: 6 each, one batch (of at most 8) each, so one step


def test_any_rank_in_a_single_process_is_the_flag_itself() -> None:
    ctx = D.DistContext()
    assert D.any_rank(True, ctx) is True
    assert D.any_rank(False, ctx) is False

