"""``clsctl benchmark``: throughput and latency measured the way model-zoo tables are.

Warm-up iterations are run and discarded; each timed iteration is bracketed by ``torch.cuda.synchronize()`` on
CUDA (kernels are asynchronous, so a bare wall clock would time only the launches); inference is forward only
under ``torch.inference_mode()``; training is forward, backward and an optimizer step. The input is created on
the device once, so data loading and host-to-device copies are not part of the figure.
"""

from __future__ import annotations

import platform
import resource
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from clsctl.errors import ClsctlError

MODES = ("infer", "train")
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class BenchmarkSettings:
    """What to measure.

    Attributes:
        source: Registered model name, recipe YAML or checkpoint.
        mode: ``infer`` (forward only) or ``train`` (forward, backward, optimizer step).
        batch_size: Images per iteration.
        shape: ``(H, W)``; None for the model's input size.
        amp: ``bf16`` or ``fp16`` autocast, None for float32.
        channels_last: Model and input in channels-last memory format.
        compile: Wrap the model in ``torch.compile`` (its compilation happens during warm-up).
        fuse_conv_bn: Convert to deploy form first (re-parameterize, fold BatchNorm; inference only).
        iters: Timed iterations.
        warmup: Untimed iterations before them.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        overrides: ``path.to.key=value`` changes to a recipe ``source``.
    """

    source: str
    mode: str = "infer"
    batch_size: int = 32
    shape: tuple[int, int] | None = None
    amp: str | None = None
    channels_last: bool = False
    compile: bool = False
    fuse_conv_bn: bool = False
    iters: int = 50
    warmup: int = 10
    device: str | None = None
    overrides: tuple[str, ...] = ()


@dataclass
class BenchmarkResult:
    """Timings of :func:`run_benchmark`; times in milliseconds.

    Attributes:
        model_name: Registered model name.
        device: Device the model ran on, e.g. ``cpu`` or ``cuda:0``.
        device_name: Human name of the device (GPU model, or CPU architecture).
        input_shape: ``(batch, 3, H, W)``.
        images_per_second: ``batch_size`` / median batch time.
        ms_per_batch: Median time of one iteration.
        ms_per_batch_p10: 10th percentile.
        ms_per_batch_p90: 90th percentile.
        ms_per_batch_mean: Mean.
        ms_per_image: Median batch time / batch size.
        peak_memory_mb: ``torch.cuda.max_memory_allocated`` on CUDA; the process's peak resident set on CPU.
        peak_memory_kind: Which of the two ``peak_memory_mb`` is.
        params: Parameters of the measured model.
        samples_ms: Every timed iteration, in order.
        settings: The :class:`BenchmarkSettings`.
        versions: torch and Python versions, thread count.
    """

    model_name: str
    device: str
    device_name: str
    input_shape: tuple[int, ...]
    images_per_second: float
    ms_per_batch: float
    ms_per_batch_p10: float
    ms_per_batch_p90: float
    ms_per_batch_mean: float
    ms_per_image: float
    peak_memory_mb: float
    peak_memory_kind: str
    params: int
    samples_ms: list[float] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        data = asdict(self)
        data["input_shape"] = list(self.input_shape)
        return data


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation between order statistics."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def check_settings(settings: BenchmarkSettings, device: torch.device) -> None:
    """Reject combinations that cannot be measured, with one clear line each."""
    if settings.mode not in MODES:
        raise ClsctlError(f"--mode must be infer or train, got '{settings.mode}'")
    if settings.amp is not None and settings.amp not in AMP_DTYPES:
        raise ClsctlError(f"--amp must be bf16 or fp16, got '{settings.amp}'")
    if settings.amp == "fp16" and device.type == "cpu":
        raise ClsctlError("--amp fp16 needs a CUDA device; on CPU use --amp bf16")
    if settings.fuse_conv_bn and settings.mode == "train":
        raise ClsctlError("--fuse-conv-bn measures the deploy form, which is for inference: use --mode infer")
    if settings.batch_size < 1 or settings.iters < 1 or settings.warmup < 0:
        raise ClsctlError("--batch-size and --iters must be at least 1, --warmup at least 0")
    if settings.compile and settings.warmup < 1:
        raise ClsctlError("--compile needs --warmup 1 or more: torch.compile compiles on the first call, which "
                          "would otherwise be timed")
    if settings.shape is not None and min(settings.shape) < 1:
        raise ClsctlError(f"--shape must be positive, got {settings.shape}")


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:  # Linux names the CPU model here; platform.processor() says only "x86_64"
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


def _autocast(device: torch.device, amp: str | None) -> AbstractContextManager[Any]:
    if amp is None:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=AMP_DTYPES[amp])


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak_memory(device: torch.device) -> None:
    """Start counting peak memory now (after warm-up: cuDNN's algorithm search and compilation allocate
    workspaces that training and inference at steady state do not hold)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


@contextmanager
def _cudnn_benchmark() -> Iterator[None]:
    """cuDNN picks its fastest algorithms for the input shape, as ``clsctl train`` lets it (the search runs in
    warm-up); the previous setting is restored afterwards."""
    previous = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = previous


def _infer_step(model: nn.Module, inputs: torch.Tensor, device: torch.device, amp: str | None) -> Any:
    def step() -> None:
        with torch.inference_mode(), _autocast(device, amp):
            model(inputs)

    return step


def _train_step(model: nn.Module, inputs: torch.Tensor, device: torch.device, amp: str | None) -> Any:
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    # Loss scaling is part of an fp16 training step, so it is part of the measurement; other precisions skip it.
    scaler = torch.amp.GradScaler(device.type) if amp == "fp16" else None
    targets = torch.zeros(inputs.shape[0], dtype=torch.long, device=device)  # their values cost nothing

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with _autocast(device, amp):
            logits = model(inputs)
            loss = nn.functional.cross_entropy(logits.float(), targets)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()

    return step


def prepare_model(settings: BenchmarkSettings, device: torch.device,
                  loaded: Any = None) -> tuple[nn.Module, str, tuple[int, int]]:
    """The model to measure, on ``device``, in the mode, memory format and form the settings ask for.

    Args:
        settings: What to measure.
        device: Where.
        loaded: An already loaded model (:class:`~clsctl.engine.loading.LoadedModel`) to measure instead of
            loading ``settings.source``; it is copied when the settings would change it.
    """
    from clsctl.engine.loading import load_model

    if loaded is None:
        # No weights from a recipe: they do not change the timing (a checkpoint's are in it anyway).
        loaded = load_model(settings.source, overrides=tuple(settings.overrides), load_weights=False)
        model = loaded.module
    else:
        model = loaded.module
        if loaded.is_pytorch and (settings.fuse_conv_bn or settings.mode == "train" or settings.compile
                                  or settings.channels_last or model_device(model) != device):
            import copy

            model = copy.deepcopy(model)  # the caller's model stays as it was
    name = loaded.model_name
    if not loaded.is_pytorch and (settings.mode == "train" or settings.fuse_conv_bn or settings.compile):
        raise ClsctlError(f"{loaded.origin.kind} exports are measured in inference mode as they are; drop --mode "
                          f"train, --fuse-conv-bn and --compile")
    size = tuple(settings.shape) if settings.shape is not None else loaded.input_size
    if settings.fuse_conv_bn:
        from clsctl.models.reparam import to_deploy

        to_deploy(model, fuse_conv_bn=True)
    model = model.to(device)
    model.train(settings.mode == "train")
    if settings.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if settings.compile:
        model = torch.compile(model)
    return model, name, (int(size[0]), int(size[1]))  # type: ignore[return-value]


def _measure(step: Any, settings: BenchmarkSettings, device: torch.device) -> list[float]:
    """Milliseconds of each of ``settings.iters`` timed steps, after ``settings.warmup`` untimed ones."""
    for _ in range(settings.warmup):
        step()
    _synchronize(device)
    _reset_peak_memory(device)
    times = []
    for _ in range(settings.iters):
        start = time.perf_counter()
        step()
        _synchronize(device)
        times.append((time.perf_counter() - start) * 1000)
    return times


def model_device(model: nn.Module) -> torch.device:
    """Where a model's first parameter is (the CPU for a model without parameters, such as an export runner)."""
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


def run_benchmark(settings: BenchmarkSettings, loaded: Any = None) -> BenchmarkResult:
    """Measure ``settings.iters`` iterations after ``settings.warmup`` untimed ones.

    Args:
        settings: What to measure.
        loaded: An already loaded model to measure (see :func:`prepare_model`); default: load ``settings.source``.

    Raises:
        ClsctlError: Impossible settings, or the model does not run on the input.
    """
    from clsctl.engine.build import resolve_device

    device = resolve_device(settings.device)
    check_settings(settings, device)
    if settings.amp is not None:
        from clsctl.engine.build import warn_if_bf16_is_emulated

        warn_if_bf16_is_emulated(AMP_DTYPES[settings.amp], device)
    model, name, (height, width) = prepare_model(settings, device, loaded)
    params = sum(p.numel() for p in model.parameters())
    inputs = torch.randn(settings.batch_size, 3, height, width, device=device)
    if settings.channels_last:
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    make_step = _train_step if settings.mode == "train" else _infer_step
    try:
        with _cudnn_benchmark():
            times = _measure(make_step(model, inputs, device, settings.amp), settings, device)
    except RuntimeError as exc:
        if "out of memory" in str(exc).lower():
            raise ClsctlError(f"out of memory at batch size {settings.batch_size}: lower --batch-size") from exc
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ClsctlError(f"{name} does not run on a {settings.batch_size}x3x{height}x{width} input: {first}") from exc
    if device.type == "cuda":
        peak, kind = torch.cuda.max_memory_allocated(device) / 2**20, "cuda max_memory_allocated"
    else:
        peak, kind = _peak_rss_mb(), "process peak RSS"
    median = statistics.median(times)
    return BenchmarkResult(
        model_name=name, device=str(device), device_name=_device_name(device),
        input_shape=(settings.batch_size, 3, height, width), images_per_second=settings.batch_size * 1000 / median,
        ms_per_batch=median, ms_per_batch_p10=percentile(times, 10), ms_per_batch_p90=percentile(times, 90),
        ms_per_batch_mean=statistics.fmean(times), ms_per_image=median / settings.batch_size,
        peak_memory_mb=peak, peak_memory_kind=kind, params=params, samples_ms=times,
        settings={**asdict(settings), "source": str(settings.source)},
        versions={"torch": torch.__version__, "python": platform.python_version(),
                  "threads": torch.get_num_threads()},
    )

