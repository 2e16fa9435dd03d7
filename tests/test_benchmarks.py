"""The benchmark scripts run and print their ratios (tiny settings: this checks they work, not the numbers)."""

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
def test_test_by_name_prints_both_throughputs_and_their_ratio() -> None:
    out = _run("benchmarks/test_by_name.py", "--model", "test_resnet", "--images", "8", "--batch", "4",
               "--workers", "0", "--rounds", "1")
    assert "clsctl test by name" in out and "hand-written loop" in out
    assert float(re.search(r"ratio (\d+\.\d+)x", out).group(1)) > 0


@pytest.mark.slow
def test_dataset_doctor_prints_time_per_10k_and_ratio() -> None:
    out = _run("benchmarks/dataset_doctor.py", "--images", "80", "--size", "16", "--workers", "2")
    assert len(re.findall(r"^\d hashing process\(es\): .* s per 10k images .*CPU time", out, re.MULTILINE)) == 2
    assert re.search(r"ratio \d+\.\d+x", out) and "'leaks': 0" in out
