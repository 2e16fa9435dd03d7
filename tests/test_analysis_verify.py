"""Tests of clsctl.analysis.verify."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from clsctl.analysis.verify import check_image, verify_dataset, verify_files
from clsctl.recipe import load_recipe


def png_bytes(size: int = 32) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def jpeg_bytes() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 10, 10)).save(buffer, "JPEG")
    return buffer.getvalue()


def break_files(folder: Path) -> dict[str, str]:
    """Write one file of each kind of breakage; returns file name -> expected reason fragment."""
    data = png_bytes(64)
    (folder / "truncated.png").write_bytes(data[: len(data) // 2])
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.png").write_text("not an image at all")
    (folder / "really_jpeg.png").write_bytes(jpeg_bytes())
    return {"truncated.png": "cannot decode (PNG)", "empty.jpg": "empty file", "text.png": "not an image",
            "really_jpeg.png": "wrong extension: JPEG content in a '.png' file"}


def test_check_image_reasons(tmp_path: Path) -> None:
    expected = break_files(tmp_path)
    (tmp_path / "good.png").write_bytes(png_bytes())
    (tmp_path / "good.JPEG").write_bytes(jpeg_bytes())
    assert check_image(str(tmp_path / "good.png")) is None
    assert check_image(str(tmp_path / "good.JPEG")) is None
    for name, fragment in expected.items():
        reason = check_image(str(tmp_path / name))
        assert reason is not None and fragment in reason, (name, reason)
    assert "cannot read" in check_image(str(tmp_path / "missing.png"))


def test_verify_dataset_lists_every_broken_file(tiny_recipe: Path, image_root: Path, tmp_path: Path) -> None:
    expected = break_files(image_root / "train" / "green")
    (image_root / "train" / "green" / "notes.txt").write_text("a stray file")
    recipe = load_recipe(tiny_recipe)
    seen: list[int] = []
    total: list[int] = []
    log = tmp_path / "logs" / "broken.log"
    result = verify_dataset(recipe, "train", out_path=log, progress=seen.append, on_start=total.append)
    assert result.checked == 24 + 4 == total[0] == sum(seen)
    assert sorted(Path(b.path).name for b in result.broken) == sorted(expected)
    assert not result.ok
    assert [Path(s.path).name for s in result.skipped] == ["notes.txt"]
    lines = log.read_text().splitlines()
    assert len(lines) == 4 and all("\t" in line for line in lines)
    assert any(line.startswith(str(image_root / "train" / "green" / "empty.jpg")) for line in lines)
    clean = verify_dataset(recipe, "val", out_path=log)
    assert clean.ok and clean.checked == 12 and log.read_text() == ""


def test_worker_processes_give_the_same_answer(tmp_path: Path) -> None:
    break_files(tmp_path)
    for index in range(6):
        (tmp_path / f"good{index}.png").write_bytes(png_bytes(8))
    paths = sorted(str(p) for p in tmp_path.iterdir())
    counted: list[int] = []
    parallel = verify_files(paths, num_process=2, progress=counted.append)
    assert parallel == verify_files(paths, num_process=1)
    assert len(parallel) == 4 and sum(counted) == len(paths)


@pytest.mark.parametrize("split", ["val", "test"])
def test_val_and_test_splits(tiny_recipe: Path, split: str) -> None:
    assert verify_dataset(load_recipe(tiny_recipe), split).checked == 12  # test falls back to val


def test_file_failing_inside_open_is_reported_not_raised(tmp_path: Path) -> None:
    bad = tmp_path / "garbage_after_signature.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really")  # Pillow raises OSError inside open, before the format
    reason = check_image(str(bad))
    assert reason is not None and reason.startswith("cannot decode (")
