"""The CUDA path, run where a GPU is: AMP (fp16 + GradScaler, bf16), channels_last, torch.compile, pinned
non-blocking copies with device-side normalisation, EMA, GPU JPEG decoding, ``--gpus`` through the launcher,
NCCL with DDP and SyncBatchNorm, Ctrl-C under NCCL with exact resume.

Every test is marked ``cuda``: tests/conftest.py skips them where ``torch.cuda.is_available()`` is false (CI,
the development machines), and ``benchmarks/gpu_check.sh`` runs them (``pytest -m cuda tests``) on a GPU.
Tests that need two GPUs (NCCL between processes: NCCL refuses two ranks on one device) skip on one.
APIs as documented for PyTorch 2.14: ``torch.amp.GradScaler("cuda")``, ``torch.autocast("cuda", dtype)``,
``Tensor.pin_memory``/``is_pinned`` and ``to(non_blocking=True)`` (asynchronous only from pinned memory),
``torchvision.io.decode_jpeg(list of CPU tensors, device="cuda")``, ``init_process_group("nccl")``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from clsctl.readers import read_checkpoint
from clsctl.engine.loop import train
from clsctl.recipe import validate_recipe

from helpers import allow_ctrl_c, tiny_recipe_dict, write_image_folder, write_train_val

pytestmark = pytest.mark.cuda
REPO = Path(__file__).resolve().parents[1]
two_gpus = pytest.mark.skipif(not torch.cuda.is_available() or torch.cuda.device_count() < 2,
                              reason="needs two CUDA devices (NCCL takes one GPU per process)")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_train_val(root, train_per_class=8, val_per_class=4)
    return root


def _recipe(data_root: Path, run: Path, **runtime: Any) -> dict:
    data = tiny_recipe_dict(data_root, run, device="cuda", **runtime)
    data["schedule"] = {"type": "constant"}
    return data


def _records(run: Path, mode: str) -> list[dict]:
    return [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if r["mode"] == mode]


def _finite(state: dict[str, torch.Tensor]) -> bool:
    return all(bool(torch.isfinite(v.float()).all()) for v in state.values() if v.is_floating_point())


def test_fp16_autocast_with_grad_scaler_trains_and_saves_the_scale(data_root: Path, tmp_path: Path) -> None:
    result = train(validate_recipe(_recipe(data_root, tmp_path / "run", amp="fp16")), show_progress=False)
    ckpt = read_checkpoint(result.last_checkpoint)
    assert ckpt["scaler"]["scale"] > 0 and "_growth_tracker" in ckpt["scaler"]  # an enabled scaler's state
    assert all(np.isfinite(r["loss"]) for r in _records(tmp_path / "run", "train"))
    assert _finite(ckpt["model"])


@pytest.mark.parametrize(("amp", "dtype"), [("bf16", torch.bfloat16), ("fp16", torch.float16), (False, None)])
def test_the_model_gets_normalised_input_in_the_autocast_dtype_and_channels_last(
        data_root: Path, tmp_path: Path, amp: Any, dtype: torch.dtype | None, monkeypatch: pytest.MonkeyPatch) -> None:
    from clsctl.engine import loop

    seen: list[tuple[torch.dtype, bool, bool]] = []
    real_build = loop.build_model

    def build_with_probe(*args: Any, **kwargs: Any) -> torch.nn.Module:
        model = real_build(*args, **kwargs)
        model.register_forward_pre_hook(lambda _, inputs: seen.append(
            (inputs[0].dtype, inputs[0].is_cuda, inputs[0].is_contiguous(memory_format=torch.channels_last))))
        return model

    monkeypatch.setattr("clsctl.engine.loop.build_model", build_with_probe)
    data = _recipe(data_root, tmp_path / "run", amp=amp, channels_last=True, epochs=1)
    train(validate_recipe(data), show_progress=False)
    assert seen and all(s == (dtype or torch.float32, True, True) for s in seen)


def test_pinned_uint8_batches_are_normalised_on_the_gpu_like_on_the_cpu(data_root: Path) -> None:
    from clsctl.data.device import DeviceInput
    from clsctl.data.loaders import build_loader
    from clsctl.engine.build import build_split, device_input

    recipe = validate_recipe(_recipe(data_root, data_root / "unused"))
    loader = build_loader(build_split(recipe, "val", output="uint8"), recipe.data.loader, train=False,
                          pin_memory=True)
    images, targets = next(iter(loader))
    assert images.dtype == torch.uint8 and images.is_pinned()  # the DataLoader pinned them
    inputs = device_input(recipe, torch.device("cuda"))
    on_gpu, _ = inputs(images, targets, torch.device("cuda"))  # to(non_blocking=True) from pinned memory
    on_cpu, _ = DeviceInput(inputs.mean.flatten().tolist(), inputs.std.flatten().tolist())(
        images, targets, torch.device("cpu"))
    torch.cuda.synchronize()  # the copy and the kernels were queued without waiting
    torch.testing.assert_close(on_gpu.cpu(), on_cpu, atol=1e-6, rtol=1e-6)


@pytest.mark.slow
def test_compile_true_trains_on_cuda(data_root: Path, tmp_path: Path) -> None:
    data = _recipe(data_root, tmp_path / "run", compile=True, amp="bf16", epochs=1)
    result = train(validate_recipe(data), show_progress=False)
    assert _finite(read_checkpoint(result.last_checkpoint)["model"])
    assert all(np.isfinite(r["loss"]) for r in _records(tmp_path / "run", "train"))


def test_ema_on_the_gpu_is_validated_and_saved(data_root: Path, tmp_path: Path) -> None:
    data = _recipe(data_root, tmp_path / "run", amp="bf16")
    data["ema"] = {"decay": 0.6, "warmup": False}
    result = train(validate_recipe(data), show_progress=False)
    ckpt = read_checkpoint(result.last_checkpoint)
    assert [r["epoch"] for r in _records(tmp_path / "run", "val_ema")] == [1, 2]
    assert ckpt["ema"]["updates"] == 6 and _finite(ckpt["ema"]["module"])
    assert (tmp_path / "run" / "best_ema.pt").exists()


def _jpeg_folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for label, name in enumerate(("red", "green", "blue")):
        (root / name).mkdir(parents=True, exist_ok=True)
        for index in range(8):
            pixels = rng.integers(0, 90, (40 + index, 48, 3))
            pixels[..., label] += 150
            Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(root / name / f"{index}.jpg", quality=90)
    Image.fromarray(np.full((40, 48, 3), 200, np.uint8)).save(root / "red" / "png.png")  # the CPU fallback
    return root


def test_gpu_decode_matches_cpu_decode_and_trains(tmp_path: Path) -> None:
    from clsctl.data.datasets import encode_jpegs
    from clsctl.data.gpu_decode import collate
    from clsctl.engine.build import build_split, device_input

    root = _jpeg_folder(tmp_path / "jpegs")
    data = tiny_recipe_dict(tmp_path, tmp_path / "run", device="cuda", amp="bf16")
    data["data"]["train"]["root"] = data["data"]["val"]["root"] = str(root)
    data["data"]["train"]["pipeline"] = [{"type": "random_resized_crop", "size": 32},
                                         {"type": "random_horizontal_flip"}]
    data["data"]["decode"] = "gpu"
    recipe = validate_recipe(data)
    cpu_set = build_split(recipe.model_copy(update={"data": recipe.data.model_copy(update={"decode": "cpu"})}),
                          "train", output="uint8")
    gpu_set = build_split(recipe, "train", output="uint8")
    assert encode_jpegs(gpu_set, "train")
    keys = [(i, 100 + i) for i in range(len(gpu_set))]
    inputs = device_input(recipe, torch.device("cuda"))
    images, targets = inputs.decoder(*collate([gpu_set[k] for k in keys]), torch.device("cuda"))
    assert images.is_cuda and images.dtype == torch.uint8
    expected = torch.stack([cpu_set[k][0] for k in keys])
    # nvJPEG and libjpeg-turbo round their IDCTs differently: close, not equal
    assert (images.cpu().float() - expected.float()).abs().mean() < 2.0
    result = train(recipe, show_progress=False)
    assert _finite(read_checkpoint(result.last_checkpoint)["model"])


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["PYTHONPATH"] = str(REPO)
    return env


def _clsctl_train(recipe: Path, run: Path, gpus: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "clsctl", "train", str(recipe), "--gpus", str(gpus), "--device", "cuda",
            "--no-progress", "--work-dir", str(run), *extra]


def test_gpus_1_through_the_launcher_trains_on_cuda(data_root: Path, tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(_recipe(data_root, tmp_path / "unused")), encoding="utf-8")
    done = subprocess.run(_clsctl_train(recipe, tmp_path / "run", 1), env=_env(), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert len(_records(tmp_path / "run", "val")) == 2


def test_nccl_ddp_with_sync_batchnorm_steps_on_one_gpu(tmp_path: Path) -> None:
    """A one-process NCCL group: what a ``--gpus N`` worker builds (DDP over SyncBatchNorm), on one GPU."""
    import torch.distributed as dist
    from torch import nn

    from clsctl.models import create_model

    torch.cuda.set_device(0)  # NCCL uses the current device, so choose it before joining the group
    dist.init_process_group("nccl", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(create_model("test_resnet", num_classes=3)).cuda()
        assert any(isinstance(m, nn.SyncBatchNorm) for m in model.modules())
        model = model.to(memory_format=torch.channels_last)
        ddp = nn.parallel.DistributedDataParallel(model, device_ids=[0])
        optimizer = torch.optim.SGD(ddp.parameters(), lr=0.1)
        scaler = torch.amp.GradScaler("cuda")
        images = torch.randn(8, 3, 32, 32, device="cuda").contiguous(memory_format=torch.channels_last)
        targets = torch.randint(0, 3, (8,), device="cuda")
        before = {k: v.clone() for k, v in model.state_dict().items()}
        with torch.autocast("cuda", dtype=torch.float16):
            loss = nn.functional.cross_entropy(ddp(images), targets)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        torch.cuda.synchronize()
        after = model.state_dict()
        assert any(not torch.equal(before[k], after[k]) for k in before if "running_mean" in k)
        assert _finite(after)
    finally:
        dist.destroy_process_group()


@two_gpus
@pytest.mark.slow
def test_two_nccl_workers_with_sync_batchnorm_train(data_root: Path, tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(_recipe(data_root, tmp_path / "unused", sync_bn=True)), encoding="utf-8")
    done = subprocess.run(_clsctl_train(recipe, tmp_path / "run", 2), env=_env(), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert _finite(read_checkpoint(tmp_path / "run" / "last.pt")["model"])


@two_gpus
@pytest.mark.slow
def test_ctrl_c_under_nccl_stops_every_worker_at_one_step_and_resume_is_exact(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "data" / "train", per_class=16, seed=1)  # 48 images: 6 steps of 2 x 4
    write_image_folder(tmp_path / "data" / "val", per_class=2, seed=2)
    data = _recipe(tmp_path / "data", tmp_path / "unused", epochs=8, deterministic=True)
    data["model"]["name"] = "lenet5"  # no BatchNorm: per-process statistics would not matter, but keep it plain
    data["data"]["loader"]["batch_size"] = 4
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(data), encoding="utf-8")
    reference = subprocess.run(_clsctl_train(recipe, tmp_path / "reference", 2), env=_env(), capture_output=True,
                               text=True, timeout=300)
    assert reference.returncode == 0, reference.stderr

    run = tmp_path / "stopped"
    proc = subprocess.Popen(_clsctl_train(recipe, run, 2), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, preexec_fn=allow_ctrl_c)
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None and '"val"' not in (
            (run / "metrics.jsonl").read_text() if (run / "metrics.jsonl").exists() else ""):
        time.sleep(0.05)
    pressed = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=90)
    assert time.monotonic() - pressed < 25  # every rank stopped at the same step; no launcher kill after 30 s
    assert proc.returncode == 130, stderr
    assert "training interrupted at epoch" in stderr and "Traceback" not in stderr
    stopped = read_checkpoint(run / "last.pt")
    assert 1 <= stopped["position"] < 6 and stopped["epoch"] < 8

    resumed = subprocess.run(_clsctl_train(recipe, run, 2, "--resume"), env=_env(), capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    final = read_checkpoint(run / "last.pt")["model"]
    expected = read_checkpoint(tmp_path / "reference" / "last.pt")["model"]
    assert final.keys() == expected.keys()
    for key in expected:  # deterministic kernels: the same numbers as the uninterrupted run
        torch.testing.assert_close(final[key], expected[key], atol=1e-6, rtol=1e-5, msg=key)
