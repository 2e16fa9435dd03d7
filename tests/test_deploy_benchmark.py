"""clsctl.deploy.benchmark: timing protocol, modes, precisions and model sources."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from clsctl.deploy import benchmark as B
from clsctl.deploy.benchmark import BenchmarkSettings, percentile, prepare_model, run_benchmark
from clsctl.errors import ClsctlError

from deploy_helpers import make_checkpoint

CPU = torch.device("cpu")


def _settings(**kwargs: object) -> BenchmarkSettings:
    defaults: dict = dict(source="test_resnet", batch_size=2, shape=(32, 32), iters=4, warmup=2, device="cpu")
    return BenchmarkSettings(**{**defaults, **kwargs})


def test_percentile_interpolates() -> None:
    values = [5.0, 1.0, 3.0, 2.0, 4.0]
    assert percentile(values, 0) == 1.0 and percentile(values, 50) == 3.0 and percentile(values, 100) == 5.0
    assert percentile(values, 10) == pytest.approx(1.4) and percentile([7.0], 90) == 7.0


class _Counter(nn.Module):
    """Counts forward calls and whether autograd and autocast were on."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 4)
        self.calls: list[tuple[bool, torch.dtype]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.linear(x.mean((2, 3)))
        self.calls.append((torch.is_grad_enabled(), out.dtype))
        return out


def test_warmup_is_run_but_not_timed(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _Counter()
    monkeypatch.setattr(B, "prepare_model", lambda settings, device, loaded=None: (model, "counter", (8, 8)))
    result = run_benchmark(_settings(iters=5, warmup=3))
    assert len(model.calls) == 8 and len(result.samples_ms) == 5
    assert not any(grad for grad, _ in model.calls)  # inference: forward only, no autograd
    assert result.ms_per_batch == pytest.approx(sorted(result.samples_ms)[2])
    assert result.ms_per_batch_p10 <= result.ms_per_batch <= result.ms_per_batch_p90
    assert result.images_per_second == pytest.approx(2 * 1000 / result.ms_per_batch)
    assert result.ms_per_image == pytest.approx(result.ms_per_batch / 2)
    assert result.input_shape == (2, 3, 8, 8) and result.peak_memory_kind == "process peak RSS"
    assert result.peak_memory_mb > 10  # the process holds torch, so well above 10 MiB


def test_train_mode_steps_the_optimizer_and_bf16_autocasts(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _Counter()
    before = model.linear.weight.detach().clone()
    monkeypatch.setattr(B, "prepare_model", lambda settings, device, loaded=None: (model.train(), "counter", (8, 8)))
    run_benchmark(_settings(mode="train", amp="bf16", iters=2, warmup=1))
    assert len(model.calls) == 3 and all(grad for grad, _ in model.calls)
    assert all(dtype == torch.bfloat16 for _, dtype in model.calls)  # CPU autocast
    assert not torch.equal(before, model.linear.weight)


def test_real_model_infer_and_train() -> None:
    infer = run_benchmark(_settings())
    train = run_benchmark(_settings(mode="train"))
    for result in (infer, train):
        assert result.model_name == "test_resnet" and result.device == "cpu" and result.params == 78_002
        assert result.images_per_second > 0 and len(result.samples_ms) == 4
    assert train.to_dict()["settings"]["mode"] == "train" and train.to_dict()["input_shape"] == [2, 3, 32, 32]


def test_prepare_model_options(tmp_path: Path, tiny_recipe: Path) -> None:
    fused, name, size = prepare_model(_settings(fuse_conv_bn=True, channels_last=True), CPU)
    assert name == "test_resnet" and size == (32, 32) and not fused.training
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    assert fused.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    trained, _, _ = prepare_model(_settings(mode="train", shape=None), CPU)
    assert trained.training
    compiled, _, _ = prepare_model(_settings(compile=True), CPU)  # compiled lazily, on the first call
    assert isinstance(compiled, torch._dynamo.eval_frame.OptimizedModule)
    # A recipe and a checkpoint work as sources too.
    assert prepare_model(_settings(source=str(tiny_recipe)), CPU)[1] == "test_resnet"
    checkpoint = make_checkpoint(tmp_path, "test_repvgg")
    deployed, name, size = prepare_model(_settings(source=str(checkpoint), fuse_conv_bn=True, shape=None), CPU)
    assert name == "test_repvgg" and size == (32, 32) and hasattr(deployed.stage0, "rbr_reparam")


def test_impossible_settings() -> None:
    with pytest.raises(ClsctlError, match="fp16 needs a CUDA device"):
        run_benchmark(_settings(amp="fp16"))
    with pytest.raises(ClsctlError, match="--fuse-conv-bn .* use --mode infer"):
        run_benchmark(_settings(mode="train", fuse_conv_bn=True))
    with pytest.raises(ClsctlError, match="--mode must be infer or train"):
        run_benchmark(_settings(mode="eval"))
    with pytest.raises(ClsctlError, match="unknown model 'resnt18'"):
        run_benchmark(_settings(source="resnt18"))
    with pytest.raises(ClsctlError, match="does not run on a 2x3x0x32 input|--shape must be positive"):
        run_benchmark(_settings(shape=(0, 32)))


@pytest.mark.slow
def test_compile_runs_end_to_end() -> None:
    result = run_benchmark(_settings(compile=True, iters=2, warmup=1))
    assert result.settings["compile"] is True and len(result.samples_ms) == 2


def test_compile_without_warmup_is_refused() -> None:
    with pytest.raises(ClsctlError, match="--compile needs --warmup 1 or more"):
        run_benchmark(_settings(compile=True, warmup=0))


def test_peak_memory_counts_from_after_warmup_with_cudnn_benchmark_on(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _Counter()
    cudnn_during: list[bool] = []
    model.register_forward_hook(lambda *args: cudnn_during.append(torch.backends.cudnn.benchmark))
    resets: list[int] = []
    monkeypatch.setattr(B, "prepare_model", lambda settings, device, loaded=None: (model, "counter", (8, 8)))
    monkeypatch.setattr(B, "_reset_peak_memory", lambda device: resets.append(len(model.calls)))
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    run_benchmark(_settings(iters=2, warmup=3))
    assert resets == [3]  # after the 3 warm-up calls, before the timed ones
    assert cudnn_during == [True] * 5  # as training sets it ...
    assert torch.backends.cudnn.benchmark is False  # ... and put back afterwards
