"""Tests of clsctl.analysis.hashing."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clsctl.analysis.hashing import MAX_THRESHOLD, dhash_of, hamming, inspect_file, near_pairs, phash_of
from clsctl.analysis.verify import check_image


def chelsea() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.chelsea())


def noise(seed: int, size: int = 32) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8))


@pytest.mark.parametrize("image", [chelsea(), chelsea().resize((61, 47)), noise(0), noise(1, 9)])
def test_hashes_equal_imagehash_bit_for_bit(image: Image.Image) -> None:
    imagehash = pytest.importorskip("imagehash")
    assert phash_of(image) == int(str(imagehash.phash(image)), 16)
    assert dhash_of(image) == int(str(imagehash.dhash(image)), 16)


def test_dhash_bits_follow_brightness_left_to_right() -> None:
    rising = Image.fromarray(np.tile(np.arange(0, 250, 25, dtype=np.uint8)[:9], (8, 1)))  # 9 x 8, brighter rightward
    assert dhash_of(rising) == 2**64 - 1
    assert dhash_of(Image.fromarray(np.asarray(rising)[:, ::-1].copy())) == 0


def test_resized_reencoded_copy_is_near_and_other_images_are_far() -> None:
    original = chelsea()
    buffer = io.BytesIO()
    original.resize((200, 130)).save(buffer, "JPEG", quality=70)
    copy = Image.open(io.BytesIO(buffer.getvalue()))
    for hash_of in (phash_of, dhash_of):
        assert hamming(hash_of(original), hash_of(copy)) <= 4
        assert hamming(hash_of(original), hash_of(noise(3, 64))) >= 16


def test_near_pairs_equal_brute_force() -> None:
    rng = np.random.default_rng(0)
    hashes = rng.integers(0, 2**63, 400, dtype=np.uint64)
    flips = [np.uint64(1) << rng.integers(0, 64, 30).astype(np.uint64) for _ in range(3)]
    hashes[100:130] = hashes[:30] ^ flips[0] ^ flips[1] ^ flips[2]  # 1 to 3 bits away
    hashes = np.unique(hashes)
    distances = hamming(hashes[:, None], hashes[None, :])
    for threshold in (0, 2, 5):
        expected = {(i, j, int(distances[i, j])) for i in range(len(hashes)) for j in range(i + 1, len(hashes))
                    if distances[i, j] <= threshold}
        found = list(near_pairs(hashes, threshold, block_elements=64))  # tiny blocks: the blocking is exercised
        assert len(found) == len(set(found)) and set(found) == expected
    assert len(expected) >= 30


def test_near_pairs_rejects_thresholds_out_of_range() -> None:
    with pytest.raises(ValueError):
        list(near_pairs(np.zeros(2, dtype=np.uint64), MAX_THRESHOLD + 1))


def test_inspect_file_reports_verify_reason_and_size(tmp_path: Path) -> None:
    good, broken, missing = tmp_path / "a.png", tmp_path / "b.png", tmp_path / "nope.png"
    noise(0, 20).resize((20, 10)).save(good)
    broken.write_bytes(good.read_bytes()[:60])
    facts = inspect_file(str(good))
    assert (facts.width, facts.height, facts.problem) == (20, 10, None)
    assert len(facts.digest) == 32 and facts.phash == phash_of(Image.open(good))
    bad = inspect_file(str(broken))
    assert bad.problem == check_image(str(broken)) and bad.problem.startswith("cannot decode")
    assert inspect_file(str(missing)).problem.startswith("cannot read")
