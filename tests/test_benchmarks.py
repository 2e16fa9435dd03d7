"""The benchmark scripts run and print their ratios (tiny settings: this checks they work, not the numbers)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(*args: str) -> str:
    done = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_loop_overhead_prints_both_ratios() -> None:
    out = _run("benchmarks/loop_overhead.py", "--steps", "2", "--epochs", "2", "--rounds", "1", "--batch", "8")
    assert "2 steps x 1 timed epochs x 1 rounds on cpu" in out
    assert "clsctl's dataset (loop overhead alone)" in out and "torchvision ImageFolder" in out
    ratios = [float(r) for r in re.findall(r"ratio (\d+\.\d+)x", out)]
    # two steps per epoch are too few for a meaningful ratio (one-off costs dominate): only check they are there
    assert len(ratios) == 4 and all(r > 0 for r in ratios)


def test_decode_prints_a_speed_up_per_image_kind() -> None:
    out = _run("benchmarks/decode.py", "--rounds", "1", "--number", "5")
    rows = re.findall(r"^(\d+px \w+)\s+[\d.]+\s+[\d.]+\s+([\d.]+)x$", out, re.MULTILINE)
    assert [name for name, _ in rows] == ["32px png", "32px jpg", "224px png", "224px jpg"]


@pytest.mark.slow  # a subprocess importing torch and torchvision, two passes
def test_eval_vs_torchvision_prints_both_throughputs_and_their_ratios() -> None:
    out = _run("benchmarks/eval_vs_torchvision.py", "--model", "test_resnet", "--images", "8", "--batch", "4",
               "--workers", "0", "--rounds", "1")
    assert "clsctl test" in out and "hand-written torchvision loop" in out and "ImageFolder + PIL" in out
    ratios = [float(r) for r in re.findall(r"ratio (\d+\.\d+)x", out)]
    assert len(ratios) == 2 and all(r > 0 for r in ratios)


@pytest.mark.slow
def test_dataset_doctor_prints_time_per_10k_and_ratio() -> None:
    out = _run("benchmarks/dataset_doctor.py", "--images", "80", "--size", "16", "--workers", "2")
    assert len(re.findall(r"^\d hashing process\(es\): .* s per 10k images .*CPU time", out, re.MULTILINE)) == 2
    assert re.search(r"ratio \d+\.\d+x", out) and "'leaks': 0" in out


@pytest.mark.slow  # four loaders, with and without a worker process: ~15 s
def test_pipeline_prints_img_per_s_of_each_loader_and_the_ratios() -> None:
    out = _run("benchmarks/pipeline.py", "--images", "8", "--rounds", "1", "--workers", "1", "--batch", "4",
               "--size", "16", "--jpeg-size", "40", "30")
    for name in ("clsctl", "clsctl + CPU normalise", "torchvision ImageFolder + PIL", "decode_jpeg + v2"):
        rows = re.findall(rf"^  {re.escape(name)}\s+(\d+)\s+(\d+)\s+(\d+\.\d+)x$", out, re.MULTILINE)
        assert len(rows) == 2 and all(int(img_s) > 0 for img_s, _, _ in rows), (name, out)
    assert "one core (num_workers=0, 1 thread):" in out and "1 loader workers:" in out
    reference = re.findall(r"^  torchvision ImageFolder \+ PIL\s+\d+\s+\d+\s+(\d+\.\d+)x$", out, re.MULTILINE)
    assert reference == ["1.00", "1.00"]


def test_gpu_check_collects_whatever_the_steps_left(tmp_path: Path) -> None:
    import json

    assert subprocess.run(["bash", "-n", "benchmarks/gpu_check.sh"], cwd=REPO).returncode == 0
    (tmp_path / "train_synthetic.status").write_text("rc=0 seconds=40 limit=100")
    (tmp_path / "train_synthetic.jsonl").write_text(
        'noise from a library\n{"name": "train_synthetic_bf16_cl", "img_per_s": 3000.0}\n'
        '{"name": "train_synthetic_fp32", "error": "OutOfMemoryError: ..."}\n')
    (tmp_path / "timm.status").write_text("rc=0 seconds=20 limit=60")
    (tmp_path / "timm.jsonl").write_text('{"name": "timm_bf16_cl", "img_per_s": 2500.0}\n')
    (tmp_path / "pytest.status").write_text("rc=124 seconds=170 limit=170")
    (tmp_path / "pytest.log").write_text("killed")
    (tmp_path / "jpeg_gpu.status").write_text("rc=-1 skipped=out_of_budget")
    report = json.loads(_run("benchmarks/gpu_bench.py", "collect", str(tmp_path)))
    assert report["ratios"]["clsctl_vs_timm_train_bf16_cl"] == 1.2
    assert report["results"]["train_synthetic_fp32"]["error"].startswith("OutOfMemoryError")
    assert report["steps"]["pytest"]["timed_out"] and report["steps"]["pytest"]["log_tail"] == "killed"
    assert report["steps"]["jpeg_gpu"]["skipped"] == "out_of_budget"


@pytest.mark.slow
@pytest.mark.parametrize("mode", [[], ["--sequential"]], ids=["lanes", "sequential"])
def test_vs_timm_prints_a_row_per_setting(mode: list[str]) -> None:
    out = _run("benchmarks/vs_timm.py", "--families", "resnet", "--epochs", "1", "--limit", "40", "--batch", "8",
               "--warmup", "0", "--seeds", "0", *mode)
    lanes = not mode and len(os.sched_getaffinity(0)) >= 2  # a 1-core machine falls back to one at a time
    assert ("both sides at once" in out) == lanes and ("one training at a time" in out) != lanes, out
    rows = re.findall(r"^resnet\s+resnet18\s+0\s+([\d.]+)\s+([\d.]+)\s+[\d.]+\s+[\d.]+\s+([\d.]+)x\s+([\d.]+)x",
                      out, re.MULTILINE)
    assert len(rows) == 1, out
    timm_top1, clsctl_top1, ratio, cpu_ratio = map(float, rows[0])
    # One epoch of five steps says nothing about the ratios or accuracies: only check they were measured.
    assert 0 <= timm_top1 <= 100 and 0 <= clsctl_top1 <= 100 and ratio > 0 and cpu_ratio > 0
