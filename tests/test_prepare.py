"""prepare_data: the offline digits tree and the offline message for downloads."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clsctl.data.prepare import digits_arrays, prepare_data
from clsctl.errors import ClsctlError


def test_digits_written_as_image_folders(tmp_path: Path) -> None:
    result = prepare_data("digits", tmp_path / "digits")
    assert result.counts == {"train": 1437, "val": 360}
    assert result.classes == [str(i) for i in range(10)]
    files = sorted((tmp_path / "digits" / "val").rglob("*.png"))
    assert len(files) == 360
    image = np.asarray(Image.open(files[0]))
    assert image.shape == (8, 8) and image.dtype == np.uint8 and image.max() > 200
    from sklearn.datasets import load_digits

    totals = np.bincount(load_digits().target)
    val_counts = [len(list((tmp_path / "digits" / "val" / c).iterdir())) for c in result.classes]
    assert all(abs(v - 0.2 * t) <= 1 for v, t in zip(val_counts, totals))  # stratified split


def test_digits_split_is_fixed() -> None:
    first, second = digits_arrays(seed=0), digits_arrays(seed=0)
    assert np.array_equal(first["val"][1], second["val"][1])
    assert not np.array_equal(first["val"][1], digits_arrays(seed=1)["val"][1])


def test_download_failure_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from torchvision import datasets

    def offline(*args: object, **kwargs: object) -> None:
        raise RuntimeError("Error downloading: no network")

    monkeypatch.setattr(datasets, "CIFAR10", offline)
    with pytest.raises(ClsctlError, match="needs internet access"):
        prepare_data("cifar10", tmp_path / "c")
    with pytest.raises(ClsctlError, match="unknown dataset 'digitz'; did you mean 'digits'"):
        prepare_data("digitz", tmp_path / "d")
