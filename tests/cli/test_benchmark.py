"""clsctl benchmark."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from typer.testing import CliRunner

from clsctl.cli.main import app

from deploy_helpers import make_checkpoint

FAST = ["-b", "2", "--iters", "3", "--warmup", "1", "--device", "cpu"]


def test_benchmark_table(runner: CliRunner) -> None:
    result = runner.invoke(app, ["benchmark", "test_resnet", *FAST, "--shape", "32", "40", "--amp", "bf16",
                                 "--channels-last"])
    assert result.exit_code == 0, result.output
    assert "test_resnet infer on cpu" in result.output and "2x3x32x40, amp bf16, channels-last" in result.output
    throughput = float(re.search(r"throughput\s*│\s*([\d,.]+) img/s", result.output).group(1).replace(",", ""))
    median = float(re.search(r"ms / batch \(median\)\s*│\s*([\d.]+)", result.output).group(1))
    assert throughput > 0 and abs(throughput - 2000 / median) / throughput < 0.02  # img/s = batch / median
    assert re.search(r"ms / batch \(p10 - p90\)\s*│\s*[\d.]+ - [\d.]+", result.output)
    assert "peak memory (process peak RSS)" in result.output and "3 timed after 1 warm-up" in result.output


def test_benchmark_json_train_and_checkpoint(runner: CliRunner, tmp_path: Path) -> None:
    checkpoint = make_checkpoint(tmp_path, "test_repvgg")
    result = runner.invoke(app, ["benchmark", str(checkpoint), *FAST, "--mode", "train", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["model_name"] == "test_repvgg" and data["settings"]["mode"] == "train"
    assert data["input_shape"] == [2, 3, 32, 32] and len(data["samples_ms"]) == 3
    assert data["images_per_second"] > 0 and data["peak_memory_mb"] > 0
    deploy = json.loads(runner.invoke(app, ["benchmark", str(checkpoint), *FAST, "--fuse-conv-bn", "--json",
                                            "--shape", "24x24"]).output)
    assert deploy["params"] < data["params"] and deploy["input_shape"] == [2, 3, 24, 24]


def test_benchmark_errors(runner: CliRunner) -> None:
    fp16 = runner.invoke(app, ["benchmark", "test_resnet", *FAST, "--amp", "fp16"])
    assert fp16.exit_code == 2 and "--amp fp16 needs a CUDA device; on CPU use --amp bf16" in fp16.output
    unknown = runner.invoke(app, ["benchmark", "resnt18", *FAST])
    assert unknown.exit_code == 2 and "did you mean 'resnet18'" in unknown.output
    shape = runner.invoke(app, ["benchmark", "test_resnet", *FAST, "--shape", "big"])
    assert shape.exit_code == 2 and "'big' is not a size" in shape.output
    train_fused = runner.invoke(app, ["benchmark", "test_resnet", *FAST, "--mode", "train", "--fuse-conv-bn"])
    assert train_fused.exit_code == 2 and "use --mode infer" in train_fused.output
    assert "Traceback" not in fp16.output + unknown.output + train_fused.output


def test_compile_flag_reaches_the_library(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    from clsctl.deploy import benchmark
    from clsctl.errors import ClsctlError

    seen = []

    def fake_run(settings: benchmark.BenchmarkSettings) -> None:
        seen.append(settings)
        raise ClsctlError("stop here")

    monkeypatch.setattr(benchmark, "run_benchmark", fake_run)
    result = runner.invoke(app, ["benchmark", "test_resnet", "--compile", "--warmup", "20", "--iters", "7"])
    assert result.exit_code == 2 and "stop here" in result.output
    assert seen[0].compile is True and seen[0].warmup == 20 and seen[0].iters == 7 and seen[0].batch_size == 32
