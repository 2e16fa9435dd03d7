"""Tests of clsctl.analysis.browse."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from analysis_helpers import assert_picture, differ, read_png
from clsctl.analysis._draw import caption, rescale
from clsctl.analysis.browse import browse_dataset
from clsctl.errors import ClsctlError
from clsctl.recipe import load_recipe


@pytest.fixture()
def recipe(tiny_recipe: Path):
    # A pipeline whose every step visibly changes the 32x32 picture: crop, then a certain flip.
    return load_recipe(tiny_recipe, ["data.train.pipeline=[{type: random_crop, size: 24}, "
                                     "{type: random_horizontal_flip, prob: 1.0}]"])


def test_original_mode_shows_the_file_with_its_class(recipe, tmp_path: Path) -> None:
    result = browse_dataset(recipe, tmp_path / "out", mode="original", num=3)
    assert [p.name for p in result.files] == ["0000_blue.png", "0001_blue.png", "0002_blue.png"]
    assert result.total == 24
    pixels = assert_picture(result.files[0])
    # The image sits at the bottom left, under the caption strip, unchanged.
    from PIL import Image

    source = np.asarray(Image.open(recipe.data.train.root + "/blue/0.png").convert("RGB"))
    assert (pixels[-32:, :32] == source).all()
    assert (pixels[:10] == 255).mean() > 0.5  # the white caption strip with dark text
    assert (pixels[:10] < 128).any()


def test_modes_change_the_picture(recipe, tmp_path: Path) -> None:
    widths = {}
    for mode in ("original", "transformed", "concat", "pipeline"):
        file = browse_dataset(recipe, tmp_path / mode, mode=mode, num=1).files[0]
        widths[mode] = assert_picture(file).shape[1]
    assert widths["concat"] > widths["original"]
    assert widths["pipeline"] > widths["concat"]  # original + two steps


def test_transformed_is_cropped_and_flipped(recipe, tmp_path: Path) -> None:
    from PIL import Image

    shown = read_png(browse_dataset(recipe, tmp_path, mode="transformed", num=1).files[0])
    crop = shown[-24:, :24][:, ::-1]  # undo the flip
    source = np.asarray(Image.open(recipe.data.train.root + "/blue/0.png").convert("RGB"))
    windows = [(y, x) for y in range(9) for x in range(9) if (source[y:y + 24, x:x + 24] == crop).all()]
    assert len(windows) == 1
    steps = browse_dataset(recipe, tmp_path / "p", mode="pipeline", num=1).files[0]
    again = browse_dataset(recipe, tmp_path / "q", mode="pipeline", num=1).files[0]
    assert not differ(read_png(steps), read_png(again))  # seeded: the same augmentation every time


def test_rescale_uses_nearest_neighbour(recipe, tmp_path: Path) -> None:
    small = read_png(browse_dataset(recipe, tmp_path / "a", mode="original", num=1).files[0])
    big = read_png(browse_dataset(recipe, tmp_path / "b", mode="original", num=1, rescale_factor=4).files[0])
    image, image4 = small[-32:, :32], big[-128:, :128]
    assert (image4[::4, ::4] == image).all() and (image4[3::4, 3::4] == image).all()


def test_bgr_swaps_red_and_blue(recipe, tmp_path: Path) -> None:
    rgb = read_png(browse_dataset(recipe, tmp_path / "a", mode="original", num=1).files[0])
    bgr = read_png(browse_dataset(recipe, tmp_path / "b", mode="original", num=1, channel_order="bgr").files[0])
    assert (bgr[-32:, :32] == rgb[-32:, :32, ::-1]).all()


def test_val_split_and_number(recipe, tmp_path: Path) -> None:
    result = browse_dataset(recipe, tmp_path, split="val", num=100)
    assert len(result.files) == result.total == 12


@pytest.mark.parametrize("kwargs", [{"mode": "grid"}, {"channel_order": "HSV"}, {"rescale_factor": 0}])
def test_bad_options(recipe, tmp_path: Path, kwargs: dict) -> None:
    with pytest.raises(ClsctlError):
        browse_dataset(recipe, tmp_path, **kwargs)


def test_caption_widens_for_long_text() -> None:
    image = np.zeros((8, 8, 3), dtype=np.uint8)
    out = caption(image, "a rather long class name")
    assert out.shape[1] > 8 and out.shape[0] > 8
    assert (out[-8:, :8] == 0).all()
    assert rescale(image, 3).shape == (24, 24, 3)
