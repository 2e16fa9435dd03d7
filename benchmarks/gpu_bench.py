"""The measurements of ``benchmarks/gpu_check.sh``, one kind per sub-command, each printing JSON lines.

    python benchmarks/gpu_bench.py synthetic --configs fp32,bf16,bf16_cl    # clsctl's training loop
    python benchmarks/gpu_bench.py timm                                     # a loop from timm's public API
    python benchmarks/gpu_bench.py infer                                    # own timed loop vs clsctl benchmark
    python benchmarks/gpu_bench.py jpeg --decode cpu                        # clsctl.train on generated JPEGs
    python benchmarks/gpu_bench.py collect DIR                              # merge DIR/*.jsonl into one JSON

Every measurement is wrapped on its own: an exception becomes ``{"name": ..., "error": ...}`` and the next
one still runs; each result line is flushed at once, so a step killed by its time limit keeps what it had.
CUDA APIs as documented for PyTorch 2.14: ``torch.cuda.synchronize()`` before reading a host clock (kernels
run asynchronously), ``torch.cuda.Event(enable_timing=True)`` recorded on the current stream and
``elapsed_time`` (milliseconds) after ``synchronize()`` on the end event, ``torch.cuda.reset_peak_memory_stats``
then ``torch.cuda.max_memory_allocated`` (bytes) for the peak, ``torch.autocast("cuda", dtype=torch.bfloat16)``
(no GradScaler: bf16 has fp32's range), ``Tensor.pin_memory()`` + ``to(non_blocking=True)``, ``torch.compile``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

BATCH = 256  # --batch changes it (the CPU smoke test uses a few images)
DEVICE = "cuda"  # --device cpu runs the same code on the CPU (the smoke test in tests/test_benchmarks.py)
MODEL, SIZE = "resnet50", 224
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# name -> (autocast dtype name or None, channels_last, compile)
CONFIGS = {
    "fp32": (None, False, False),
    "bf16": ("bf16", False, False),
    "bf16_cl": ("bf16", True, False),
    "bf16_cl_compile": ("bf16", True, True),
}


def emit(record: dict[str, Any]) -> None:
    """One JSON line on stdout, flushed (a later kill keeps it)."""
    print(json.dumps(record), flush=True)


def guarded(name: str, measure: Callable[[], dict[str, Any]]) -> None:
    """Run one measurement; emit its result or its error, never raise."""
    import torch

    start = time.perf_counter()
    try:
        result = measure()
        emit({"name": name, **result, "seconds": round(time.perf_counter() - start, 1)})
    except Exception as exc:  # a benchmark step reports any failure and lets the next one run
        emit({"name": name, "error": f"{type(exc).__name__}: {exc}"[:2000],
              "trace": traceback.format_exc()[-3000:], "seconds": round(time.perf_counter() - start, 1)})
    finally:
        if DEVICE == "cuda":
            torch.cuda.empty_cache()


class SyntheticLoader:
    """``steps`` batches of one random uint8 image batch in pinned memory (what a DataLoader with
    ``pin_memory=True`` hands over), so the step includes the host-to-device copy and normalisation."""

    def __init__(self, steps: int, classes: int = 1000) -> None:
        import torch

        batch = BATCH
        self.images = torch.randint(0, 256, (batch, 3, SIZE, SIZE), dtype=torch.uint8)
        self.targets = torch.randint(0, classes, (batch,))
        if DEVICE == "cuda":
            self.images, self.targets = self.images.pin_memory(), self.targets.pin_memory()
        self.batch_size, self.steps = batch, steps
        self.sampler = SimpleNamespace(per_replica=lambda: batch * steps)

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[Any]:
        for _ in range(self.steps):
            yield self.images, self.targets


class _Quiet:
    """Progress bar and metrics log that record nothing."""

    def add_task(self, *args: Any, **kwargs: Any) -> int:
        return 0

    def advance(self, *args: Any) -> None:
        pass

    def update(self, *args: Any, **kwargs: Any) -> None:
        pass

    def write(self, record: dict[str, Any]) -> None:
        self.last = record


def _bench_recipe(**runtime: Any) -> Any:
    from clsctl.recipe import validate_recipe

    return validate_recipe({
        "model": {"name": MODEL},
        "data": {"train": {"type": "image_folder", "root": "unused"}, "loader": {"batch_size": BATCH}},
        "optim": {"type": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4},
        "schedule": {"type": "constant"},
        "runtime": {"device": DEVICE, **runtime},
    })


def timed_cuda(run: Callable[[], None]) -> tuple[float, float]:
    """Wall seconds and GPU milliseconds (CUDA events) of ``run``, synchronised before and after."""
    import torch

    if DEVICE != "cuda":
        start = time.perf_counter()
        run()
        wall = time.perf_counter() - start
        return wall, wall * 1000
    start_event, end_event = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start = time.perf_counter()
    start_event.record()
    run()
    end_event.record()
    end_event.synchronize()
    torch.cuda.synchronize()
    return time.perf_counter() - start, start_event.elapsed_time(end_event)


def reset_peak() -> None:
    """Start the peak-memory count afresh (CUDA only)."""
    import torch

    if DEVICE == "cuda":
        torch.cuda.reset_peak_memory_stats()


def peak_mib() -> int | None:
    """Peak memory held by tensors since :func:`reset_peak`, MiB (None on the CPU)."""
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**20) if DEVICE == "cuda" else None


def synthetic(config: str, steps: int, warmup: int) -> dict[str, Any]:
    """ResNet-50 training img/s through clsctl's own ``train_one_epoch`` on synthetic uint8 batches."""
    import torch

    from clsctl.engine import distributed as D
    from clsctl.engine import loop
    from clsctl.engine.build import build_model, device_input
    from clsctl.engine.optim import LrSchedule, build_optimizer

    amp, channels_last, compile_ = CONFIGS[config]
    # log_interval: one train record per epoch (its end), as each record reads the loss (a GPU sync)
    recipe = _bench_recipe(amp=amp or False, channels_last=channels_last, compile=compile_, log_interval=10**9)
    device = torch.device(DEVICE)
    torch.backends.cudnn.benchmark = True
    raw = build_model(recipe, 1000).to(device)
    if channels_last:
        raw = raw.to(memory_format=torch.channels_last)
    model = torch.compile(raw) if compile_ else raw
    optimizer = build_optimizer(raw, recipe.optim)
    schedule = LrSchedule(optimizer, recipe.schedule, warmup + steps, 2)
    dtype = loop.amp_dtype(recipe.runtime.amp, device)
    scaler = torch.amp.GradScaler(DEVICE, enabled=dtype == torch.float16)
    criterion = loop.build_criterion(recipe).to(device)
    inputs = device_input(recipe, device)
    quiet = _Quiet()
    state = loop.RunState(raw, model, optimizer, schedule, scaler)

    def epoch(loader: SyntheticLoader, index: int) -> None:
        run = loop.Run(recipe, D.DistContext(device=device), Path("."), [], loader, None, criterion, inputs,
                       autocast_dtype=dtype, channels_last=channels_last, log=quiet, progress=quiet)
        state.epoch = index
        loop.train_one_epoch(run, state)

    warm_start = time.perf_counter()
    timed_cuda(lambda: epoch(SyntheticLoader(warmup), 0))  # cudnn autotuning, torch.compile, allocator warm-up
    warm_s = time.perf_counter() - warm_start
    reset_peak()
    loader = SyntheticLoader(steps)
    wall, gpu_ms = timed_cuda(lambda: epoch(loader, 1))
    return {"config": config, "img_per_s": round(steps * BATCH / wall, 1), "gpu_img_per_s":
            round(steps * BATCH / (gpu_ms / 1000), 1), "ms_per_step": round(wall / steps * 1000, 2),
            "peak_memory_mib": peak_mib(), "warmup_s": round(warm_s, 1), "steps": steps, "batch": BATCH,
            "loss": quiet.last.get("loss")}


def timm_loop(steps: int, warmup: int) -> dict[str, Any]:
    """The same model, batch and precision (bf16 + channels_last) in a loop written with timm's public API."""
    import timm
    import timm.optim
    import torch

    device = torch.device(DEVICE)
    torch.backends.cudnn.benchmark = True
    model = timm.create_model(MODEL, num_classes=1000).to(device).to(memory_format=torch.channels_last)
    optimizer = timm.optim.create_optimizer_v2(model, opt="sgd", lr=0.1, momentum=0.9, weight_decay=1e-4)
    criterion = torch.nn.CrossEntropyLoss().to(device)
    loader = SyntheticLoader(1)
    mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1) * 255
    std = torch.tensor(STD, device=device).view(1, 3, 1, 1) * 255
    model.train()

    def run(count: int) -> None:
        for _ in range(count):  # timm's train.py: loader normalises on the GPU, autocast forward, backward, step
            images = loader.images.to(device, non_blocking=True).to(memory_format=torch.channels_last).float()
            images = images.sub_(mean).div_(std)
            targets = loader.targets.to(device, non_blocking=True)
            with torch.autocast(DEVICE, dtype=torch.bfloat16):
                loss = criterion(model(images), targets)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    timed_cuda(lambda: run(warmup))
    reset_peak()
    wall, gpu_ms = timed_cuda(lambda: run(steps))
    return {"config": "bf16_cl", "img_per_s": round(steps * BATCH / wall, 1),
            "gpu_img_per_s": round(steps * BATCH / (gpu_ms / 1000), 1), "peak_memory_mib": peak_mib(),
            "timm": timm.__version__}


def inference(iters: int, warmup: int) -> dict[str, Any]:
    """ResNet-50 inference img/s, bf16 + channels_last, batch 256: a plain timed loop."""
    import torch

    from clsctl.models import create_model

    device = torch.device(DEVICE)
    torch.backends.cudnn.benchmark = True
    model = create_model(MODEL, num_classes=1000).to(device).eval().to(memory_format=torch.channels_last)
    images = torch.randn(BATCH, 3, SIZE, SIZE, device=device).contiguous(memory_format=torch.channels_last)

    def run(count: int) -> None:
        with torch.inference_mode(), torch.autocast(DEVICE, dtype=torch.bfloat16):
            for _ in range(count):
                model(images)

    timed_cuda(lambda: run(warmup))
    reset_peak()
    wall, gpu_ms = timed_cuda(lambda: run(iters))
    return {"img_per_s": round(iters * BATCH / wall, 1), "gpu_img_per_s": round(iters * BATCH / (gpu_ms / 1000), 1),
            "peak_memory_mib": peak_mib()}


def clsctl_benchmark(iters: int, warmup: int) -> dict[str, Any]:
    """What ``clsctl benchmark resnet50 -b 256 --amp bf16 --channels-last --device cuda`` measures (its library
    function, which the command calls)."""
    from clsctl.deploy.benchmark import BenchmarkSettings, run_benchmark

    result = run_benchmark(BenchmarkSettings(source=MODEL, mode="infer", batch_size=BATCH, amp="bf16",
                                             shape=(SIZE, SIZE), channels_last=True, iters=iters, warmup=warmup,
                                             device=DEVICE))
    return {"img_per_s": round(result.images_per_second, 1), "ms_per_batch": round(result.ms_per_batch, 2),
            "peak_memory_mib": round(result.peak_memory_mb), "device_name": result.device_name}


def _write_jpeg(job: tuple[str, int, int, int]) -> None:
    import numpy as np
    from PIL import Image

    path, seed, width, height = job
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (height // 16 + 1, width // 16 + 1, 3), dtype=np.uint8))
    smooth = np.asarray(coarse.resize((width, height), Image.BICUBIC), dtype=np.int16)
    pixels = np.clip(smooth + rng.integers(-10, 11, smooth.shape), 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path, quality=90)


def jpeg_pipeline(decode: str, images: int, workers: int, epochs: int) -> dict[str, Any]:
    """``clsctl.train`` of ResNet-50 (bf16, channels_last, batch 256) on generated ImageNet-like JPEGs (500x375,
    q90; RandomResizedCrop 224 + flip): img/s from its own metrics.jsonl, first epoch left out."""
    import multiprocessing
    import tempfile

    import torch

    from clsctl.engine.loop import train
    from clsctl.recipe import validate_recipe

    root = Path(tempfile.mkdtemp(prefix="clsctl-gpu-jpegs-"))
    jobs = []
    for index in range(images):
        folder = root / "train" / f"c{index % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        jobs.append((str(folder / f"{index}.jpg"), index, *((500, 375) if SIZE == 224 else (SIZE + 8, SIZE + 4))))
    start = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(os.cpu_count()) as pool:
        pool.map(_write_jpeg, jobs, chunksize=32)
    made_s = time.perf_counter() - start
    steps = images // BATCH
    recipe = validate_recipe({
        "model": {"name": MODEL},
        "data": {"train": {"type": "image_folder", "root": str(root / "train"),
                           "pipeline": [{"type": "random_resized_crop", "size": SIZE},
                                        {"type": "random_horizontal_flip"}]},
                 # prefetch 2: 2 x workers x 38 MB batches in shared memory (/dev/shm) is plenty ahead
                 "loader": {"batch_size": BATCH, "num_workers": workers, "drop_last": True, "prefetch_factor": 2},
                 "decode": decode},
        "optim": {"type": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4},
        "schedule": {"type": "constant"},
        "runtime": {"device": DEVICE, "amp": "bf16", "channels_last": True, "epochs": epochs,
                    "work_dir": str(root / "run"), "log_interval": steps, "checkpoint_interval": epochs},
    })
    reset_peak()
    train(recipe, show_progress=False)
    records = [json.loads(line) for line in (root / "run" / "metrics.jsonl").read_text().splitlines()]
    rates = [r["img_per_s"] for r in records if r["mode"] == "train"][1:]  # epoch 1: workers starting, autotune
    data_share = [r["data_time"] / r["time"] for r in records if r["mode"] == "train"][1:]
    return {"decode": decode, "workers": workers, "img_per_s": round(max(rates), 1), "epochs_timed": len(rates),
            "data_wait_share": round(min(data_share), 3), "peak_memory_mib": peak_mib(), "images": images,
            "jpeg_write_s": round(made_s, 1)}


def collect(folder: Path) -> None:
    """Print one JSON document from every step's JSON lines, exit code and log (always prints)."""
    import platform
    import xml.etree.ElementTree as ET

    import shutil

    report: dict[str, Any] = {"python": platform.python_version(), "cpus": os.cpu_count(), "steps": {},
                              "results": {}}
    if Path("/dev/shm").exists():  # loader workers hand batches over through it
        report["dev_shm_gib"] = round(shutil.disk_usage("/dev/shm").total / 2**30, 1)
    try:
        import torch

        report["torch"] = torch.__version__
        report["cuda"] = torch.version.cuda
        report["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception as exc:  # the report still prints without torch
        report["torch"] = f"unavailable: {exc}"
    for status in sorted(folder.glob("*.status")):
        name = status.stem
        fields = dict(line.split("=", 1) for line in status.read_text().split() if "=" in line)
        step: dict[str, Any] = {k: (int(v) if v.lstrip("-").isdigit() else v) for k, v in fields.items()}
        if step.get("rc") in (124, 137):
            step["timed_out"] = True
        log = folder / f"{name}.log"
        if step.get("rc") not in (0, None) and log.exists():
            step["log_tail"] = log.read_text(errors="replace")[-1500:]
        report["steps"][name] = step
    for lines in sorted(folder.glob("*.jsonl")):
        for line in lines.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and "name" in record:
                report["results"][record.pop("name")] = record
    junit = folder / "pytest.xml"
    if junit.exists():
        try:
            suite = ET.parse(junit).getroot()
            suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
            failed = [f"{case.get('classname')}::{case.get('name')}" for case in suite.iter("testcase")
                      if case.find("failure") is not None or case.find("error") is not None]
            report["results"]["pytest_cuda"] = {key: int(suite.get(key, 0)) for key in
                                                ("tests", "failures", "errors", "skipped")}
            report["results"]["pytest_cuda"].update(seconds=float(suite.get("time", 0)), failed=failed)
        except Exception as exc:  # a truncated file (killed run): say so, keep the rest
            report["results"]["pytest_cuda"] = {"error": f"unreadable junit XML: {exc}"}
    results = report["results"]
    ratios = {}
    ours, theirs = results.get("train_synthetic_bf16_cl", {}), results.get("timm_bf16_cl", {})
    if "img_per_s" in ours and "img_per_s" in theirs:
        ratios["clsctl_vs_timm_train_bf16_cl"] = round(ours["img_per_s"] / theirs["img_per_s"], 3)
    plain, tool = results.get("infer_loop_bf16_cl", {}), results.get("infer_clsctl_benchmark_bf16_cl", {})
    if "img_per_s" in plain and "img_per_s" in tool:
        ratios["clsctl_benchmark_vs_plain_infer"] = round(tool["img_per_s"] / plain["img_per_s"], 3)
    real, synth = results.get("train_jpeg_cpu_decode", {}), results.get("train_synthetic_bf16_cl", {})
    if "img_per_s" in real and "img_per_s" in synth:
        ratios["jpeg_cpu_pipeline_vs_synthetic"] = round(real["img_per_s"] / synth["img_per_s"], 3)
    real_gpu = results.get("train_jpeg_gpu_decode", {})
    if "img_per_s" in real_gpu and "img_per_s" in synth:
        ratios["jpeg_gpu_decode_vs_synthetic"] = round(real_gpu["img_per_s"] / synth["img_per_s"], 3)
    report["ratios"] = ratios
    print(json.dumps(report, indent=2))


def main() -> None:
    global BATCH, DEVICE, MODEL, SIZE
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    synth = sub.add_parser("synthetic")
    synth.add_argument("--configs", default="fp32,bf16,bf16_cl")
    for name in ("synthetic", "timm", "infer"):
        command = synth if name == "synthetic" else sub.add_parser(name)
        command.add_argument("--steps", type=int, default=20)
        command.add_argument("--warmup", type=int, default=5)
    jpeg = sub.add_parser("jpeg")
    jpeg.add_argument("--decode", choices=("cpu", "gpu"), default="cpu")
    jpeg.add_argument("--images", type=int, default=BATCH * 10)
    jpeg.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 2))
    jpeg.add_argument("--epochs", type=int, default=3)
    merge = sub.add_parser("collect")
    merge.add_argument("folder", type=Path)
    for command in (synth, sub.choices["timm"], sub.choices["infer"], jpeg):
        command.add_argument("--device", default="cuda", help="cpu: a quick run of the same code (smoke test)")
        command.add_argument("--batch", type=int, default=BATCH)
        command.add_argument("--model", default=MODEL)
        command.add_argument("--size", type=int, default=SIZE)
    args = parser.parse_args()
    if args.command == "collect":
        collect(args.folder)
        return
    BATCH, DEVICE, MODEL, SIZE = args.batch, args.device, args.model, args.size
    if args.command == "synthetic":
        for config in args.configs.split(","):
            guarded(f"train_synthetic_{config}", lambda c=config: synthetic(c, args.steps, args.warmup))
    elif args.command == "timm":
        guarded("timm_bf16_cl", lambda: timm_loop(args.steps, args.warmup))
    elif args.command == "infer":
        guarded("infer_loop_bf16_cl", lambda: inference(args.steps, args.warmup))
        guarded("infer_clsctl_benchmark_bf16_cl", lambda: clsctl_benchmark(args.steps, args.warmup))
    elif args.command == "jpeg":
        guarded(f"train_jpeg_{args.decode}_decode",
                lambda: jpeg_pipeline(args.decode, args.images, args.workers, args.epochs))


if __name__ == "__main__":
    sys.exit(main())
