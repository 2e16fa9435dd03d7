"""The CUDA path on a real GPU (issue 18): each test is a first-GPU-run crash or stall found by reading the code.

Skipped without CUDA (see conftest); ``benchmarks/gpu_check.sh`` runs them with ``pytest -m cuda``.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

from clsctl.engine import distributed as D
from clsctl.engine import loop
from clsctl.readers import read_checkpoint
from clsctl.engine.loop import train
from clsctl.recipe import validate_recipe

from helpers import tiny_recipe_dict, write_train_val

pytestmark = pytest.mark.cuda


@pytest.fixture()
def data_root(tmp_path: Path) -> Path:
    write_train_val(tmp_path / "data", train_per_class=8, val_per_class=2)
    return tmp_path / "data"


@pytest.fixture()
def no_sync_debug() -> Any:
    """Leaves the CUDA sync debug mode as it was."""
    previous = torch.cuda.get_sync_debug_mode()
    yield
    torch.cuda.set_sync_debug_mode(previous)


def test_checkpoints_move_between_cpu_and_fp16_on_cuda(data_root: Path, tmp_path: Path) -> None:
    data = tiny_recipe_dict(data_root, tmp_path / "run", epochs=1)
    data["data"]["batch_augments"] = [{"type": "cutmix", "alpha": 1.0}]
    recipe = validate_recipe(data)
    train(recipe, device="cpu", show_progress=False)  # scaler: {}
    assert read_checkpoint(tmp_path / "run" / "last.pt")["scaler"] == {}
    data["runtime"].update(epochs=2, amp="fp16")
    train(validate_recipe(data), resume=True, device="cuda", show_progress=False)  # the scaler starts fresh
    ckpt = read_checkpoint(tmp_path / "run" / "last.pt")
    assert ckpt["epoch"] == 2 and ckpt["scaler"]["scale"] > 0
    assert ckpt["rng"]["cuda_index"] == torch.cuda.current_device()
    data["runtime"]["epochs"] = 3
    train(validate_recipe(data), resume=True, device="cpu", show_progress=False)  # and back
    assert read_checkpoint(tmp_path / "run" / "last.pt")["epoch"] == 3


def test_rng_state_round_trip_on_the_gpu_in_use() -> None:
    device = torch.device("cuda", torch.cuda.current_device())
    state = loop.rng_state(device)
    first = torch.rand(4, device=device)
    loop.set_rng_state(state, device)
    assert torch.equal(torch.rand(4, device=device), first)
    # a checkpoint from a node with more GPUs than this one (one state per GPU) restores this GPU's entry
    legacy = {**state, "cuda": [state["cuda"]] + [torch.cuda.get_rng_state(device)] * 15}
    loop.set_rng_state(legacy, device)
    assert torch.equal(torch.rand(4, device=device), first)


@pytest.mark.parametrize("augment", [{"type": "mixup", "alpha": 0.4}, {"type": "cutmix", "alpha": 1.0},
                                     {"type": "resizemix"}], ids=lambda a: a["type"])
def test_batch_mixing_never_waits_for_the_gpu(augment: dict, no_sync_debug: None) -> None:
    from clsctl.data.mixing import apply_batch_augment
    from clsctl.recipe import schema as S
    from pydantic import TypeAdapter

    config = TypeAdapter(S.BatchAugment).validate_python({**augment, "prob": 1.0})
    images = torch.rand(8, 3, 32, 32, device="cuda")
    targets = torch.randint(0, 5, (8,), device="cuda")
    generator = torch.Generator().manual_seed(0)
    apply_batch_augment(images, targets, 5, [config], generator)  # warm-up: first-call allocations
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # any host-device synchronisation now raises
    mixed, soft = apply_batch_augment(images, targets, 5, [config], generator)
    torch.cuda.set_sync_debug_mode("default")
    assert mixed.device.type == "cuda" and soft.shape == (8, 5)


def test_validation_synchronises_once_not_per_batch(no_sync_debug: None) -> None:
    from clsctl.engine.progress import make_progress
    from clsctl.models import create_model

    class Loader:
        sampler = [(i, None) for i in range(16)]

        def __iter__(self) -> Any:
            return iter([(torch.rand(4, 3, 32, 32).pin_memory(), torch.arange(4) % 3) for _ in range(4)])

    device = torch.device("cuda", torch.cuda.current_device())
    model = create_model("test_resnet", num_classes=3).to(device).eval()
    with torch.no_grad():
        model(torch.rand(4, 3, 32, 32, device=device))  # warm-up
    torch.cuda.synchronize()
    with make_progress(False) as progress, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        loop.validate(model, Loader(), device, 3, D.DistContext(device=device), progress, "val")
        torch.cuda.set_sync_debug_mode("default")
    syncs = [w for w in caught if "synchroniz" in str(w.message)]
    assert 1 <= len(syncs) < 4, [str(w.message) for w in syncs]  # the single copy of the logits, not 4


def test_a_single_process_run_makes_its_gpu_current() -> None:
    index = torch.cuda.device_count() - 1
    ctx = D.setup(f"cuda:{index}")
    try:
        assert ctx.device == torch.device("cuda", index) and torch.cuda.current_device() == index
    finally:
        torch.cuda.set_device(0)


def test_benchmark_peak_memory_leaves_out_warmup(monkeypatch: pytest.MonkeyPatch) -> None:
    from clsctl.deploy import benchmark as B

    class FirstCallAllocates(torch.nn.Module):
        """Holds 512 MiB during its first call only, as cuDNN's algorithm search or compilation may."""

        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(3, 4)
            self.calls = 0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.calls += 1
            if self.calls == 1:
                scratch = torch.empty(512 * 2**20, dtype=torch.uint8, device=x.device)
                del scratch
            return self.linear(x.mean((2, 3)))

    model = FirstCallAllocates().cuda()
    monkeypatch.setattr(B, "prepare_model", lambda settings, device: (model, "first-call", (8, 8)))
    settings = B.BenchmarkSettings(source="x", batch_size=2, iters=3, warmup=2, device="cuda")
    result = B.run_benchmark(settings)
    assert model.calls == 5 and result.peak_memory_mb < 256


def test_bf16_warning_follows_the_gpu(caplog: pytest.LogCaptureFixture) -> None:
    from clsctl.engine.build import warn_if_bf16_is_emulated

    device = torch.device("cuda", torch.cuda.current_device())
    with caplog.at_level("WARNING", logger="clsctl"):
        warn_if_bf16_is_emulated(torch.bfloat16, device)
    emulated = torch.cuda.get_device_capability(device)[0] < 8
    assert ("is emulated" in caplog.text) == emulated
