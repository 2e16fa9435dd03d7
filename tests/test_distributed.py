"""Distributed helpers: finding the ranks in the environment, gathering evaluation rows, launcher settings."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from clsctl.engine import distributed as D
from clsctl.engine.launch import launch_training
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
        launch_training({}, D.LaunchOptions(2), device="cpu")


@pytest.mark.slow  # two processes importing torch: about 10 s
def test_processes_started_like_srun_join_one_run(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    import yaml

    from clsctl.readers import read_checkpoint
    from helpers import tiny_recipe_dict, write_train_val

    write_train_val(tmp_path / "data", train_per_class=4, val_per_class=1)
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
    assert read_checkpoint(tmp_path / "run" / "last.pt")["epoch"] == 1
    steps = [r for r in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines() if '"train"' in r]
    assert len(steps) == 1  # 12 images over 2 processes: 6 each, one batch (of at most 8) each, so one step


def test_any_ranks_in_a_single_process_are_the_flags_themselves() -> None:
    assert D.any_ranks([True, False], D.DistContext()) == [True, False]



# --------------------------------------------------------------------------- the CUDA path, on the CPU (issue 18)


@pytest.fixture()
def fake_gpus(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict]:
    """A machine with ``state["count"]`` GPUs as far as clsctl can tell; records set_device and the process group."""
    state: dict = {"count": 1, "current": [], "init": []}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: state["count"])
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: state["current"].append(torch.device(device)))
    monkeypatch.setattr(D.dist, "init_process_group", lambda *args, **kwargs: state["init"].append((args, kwargs)))
    monkeypatch.setattr(D.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(D.dist, "get_backend", lambda group=None: "nccl")
    monkeypatch.setattr(D.dist, "new_group", lambda **kwargs: ("gloo group", kwargs))
    saved_env = dict(os.environ)  # setup() sets RANK, WORLD_SIZE... itself: all of it must go afterwards
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "SLURM_PROCID", "SLURM_NTASKS",
                "SLURM_LOCALID", "SLURM_STEP_ID", "SLURM_STEPID", "SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST"):
        os.environ.pop(key, None)
    yield state
    os.environ.clear()
    os.environ.update(saved_env)


def test_a_single_process_on_cuda_n_makes_it_the_current_gpu(fake_gpus: dict) -> None:
    fake_gpus["count"] = 4
    assert D.setup("cuda:2").device == torch.device("cuda", 2)
    assert D.setup("cuda").device == torch.device("cuda", 0)
    assert fake_gpus["current"] == [torch.device("cuda", 2), torch.device("cuda", 0)]
    assert fake_gpus["init"] == []  # one process: no process group


def test_slurm_task_seeing_one_gpu_uses_it_and_binds_the_process_group(
        fake_gpus: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    import datetime
    import logging

    # srun --ntasks-per-node=8 --gpus-per-task=1: task 3 sees one GPU (CUDA_VISIBLE_DEVICES=3), SLURM_LOCALID=3.
    for key, value in {"SLURM_PROCID": "3", "SLURM_NTASKS": "8", "SLURM_LOCALID": "3", "SLURM_STEP_ID": "0",
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29999"}.items():
        monkeypatch.setenv(key, value)
    log = logging.getLogger("clsctl")
    monkeypatch.setattr(log, "level", log.level)  # setup() quietens the log of ranks other than 0
    ctx = D.setup("cuda", timeout_s=600)
    assert (ctx.rank, ctx.world_size, ctx.local_rank, ctx.device) == (3, 8, 3, torch.device("cuda", 0))
    assert fake_gpus["current"] == [torch.device("cuda", 0)]
    (args, kwargs), = fake_gpus["init"]
    assert args == ("nccl",) and kwargs["rank"] == 3 and kwargs["world_size"] == 8
    assert kwargs["device_id"] == torch.device("cuda", 0)
    assert kwargs["timeout"] == datetime.timedelta(minutes=10)
    assert ctx.control_group[1]["timeout"] == datetime.timedelta(minutes=10)  # the gloo group waits as long


def test_local_gpu_is_the_local_rank_unless_one_gpu_is_visible() -> None:
    assert D.local_gpu(rank=5, local_rank=1, visible=8) == 1
    assert D.local_gpu(rank=5, local_rank=5, visible=1) == 0
    with pytest.raises(ClsctlError, match="process 5 wants GPU 3, but this machine has 2"):
        D.local_gpu(rank=5, local_rank=3, visible=2)


# One small variant per family, and what it needs to run on a tiny input (default: 32x32, no arguments).
_FAMILY_INPUT = {"inception": 75}
_FAMILY_KWARGS = {"deit": {"image_size": 32}}


def _tiny_variants() -> dict[str, str]:
    from clsctl.models import list_models, model_info

    smallest: dict[str, tuple[int, str]] = {}
    for name in list_models():
        meta = model_info(name)
        size = (meta.num_params or 0, name)
        if meta.family not in smallest or size < smallest[meta.family]:
            smallest[meta.family] = size
    return {family: name for family, (_, name) in sorted(smallest.items())}


def _train_every_family(rank: int, port: int, out: str) -> None:
    """One gloo worker of two: each family's tiny variant, in DDP as training wraps it, for two steps."""
    import datetime
    import json
    import os

    import torch.distributed as dist
    import torch.nn.functional as F

    from clsctl.models import create_model

    torch.set_num_threads(1)
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    dist.init_process_group("gloo", rank=rank, world_size=2, timeout=datetime.timedelta(seconds=60))
    ctx = D.DistContext(rank, 2, rank, torch.device("cpu"))
    results = {}
    # Checkpoint data (tensors in it) from every rank, as a mid-epoch save gathers the ranks' RNG states.
    gathered = D.gather_objects({"rank": rank, "torch": torch.get_rng_state(), "python": (3, None)}, ctx)
    results["(gather_objects)"] = "ok" if [g["rank"] for g in gathered] == [0, 1] and all(
        torch.is_tensor(g["torch"]) and g["python"] == (3, None) for g in gathered) else repr(gathered)[:200]
    for family, name in _tiny_variants().items():
        try:
            torch.manual_seed(0)
            model = create_model(name, num_classes=3, **_FAMILY_KWARGS.get(family, {})).train()
            ddp = D.wrap_ddp(model, ctx)
            optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01)
            size = _FAMILY_INPUT.get(family, 32)
            g = torch.Generator().manual_seed(rank)
            for _ in range(2):
                loss = F.cross_entropy(ddp(torch.randn(2, 3, size, size, generator=g)), torch.tensor([0, 1]))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            results[family] = "ok"
        except Exception as exc:  # noqa: BLE001 - reported per family below
            results[family] = f"{name}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    dist.destroy_process_group()
    Path(out, f"rank{rank}.json").write_text(json.dumps(results), encoding="utf-8")


@pytest.mark.slow  # two processes, every family: about 30 s on 2 cores
def test_every_family_trains_two_steps_in_two_gloo_workers(tmp_path: Path) -> None:
    import json
    import time

    import torch.multiprocessing as mp

    context = mp.start_processes(_train_every_family, args=(D._free_port(), str(tmp_path)), nprocs=2, join=False,
                                 start_method="spawn")
    deadline = time.monotonic() + 300
    try:
        while not context.join(timeout=1):
            assert time.monotonic() < deadline, "the workers hang"
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()
    results = json.loads((tmp_path / "rank0.json").read_text())
    assert set(results) == set(_tiny_variants()) | {"(gather_objects)"}
    assert {family: result for family, result in results.items() if result != "ok"} == {}
