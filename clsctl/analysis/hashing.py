"""Content and perceptual hashes of image files, and the search for near-equal hashes.

Perceptual hashes are 64-bit integers built as the ``imagehash`` package builds them (tests compare bit for bit):

* dHash (Krawetz, "Kind of like that", 2013): the grey image resized to 9 x 8 with Lanczos; bit ``(r, c)`` says
  whether pixel ``(r, c + 1)`` is brighter than pixel ``(r, c)``.
* pHash (Krawetz, "Looks like it", 2011): the grey image resized to 32 x 32 with Lanczos, a 2-D DCT-II, the
  8 x 8 lowest frequencies, each bit says whether that coefficient is above their median.

Two images whose hashes differ in few bits (Hamming distance) look alike: the same picture resized or re-encoded
differs by a few bits, unrelated pictures by about 32. This module imports no torch, so the worker processes that
hash files start fast.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from clsctl.analysis.verify import check_image

HASH_KINDS = ("phash", "dhash")
MAX_THRESHOLD = 16  # the bucket search below slows down quadratically as the chunks it matches on get shorter
_SQRT2 = float(np.sqrt(2.0))


@dataclass(frozen=True)
class FileFacts:
    """What one pass over an image file found.

    Attributes:
        path: The file.
        digest: BLAKE2b-128 of the file's bytes (hex); empty when the file cannot be read.
        phash: 64-bit perceptual hash, 0 when the image cannot be decoded.
        dhash: 64-bit difference hash, 0 when the image cannot be decoded.
        width: Width in pixels (0 when unknown).
        height: Height in pixels.
        problem: Why the file is unusable (``verify-dataset``'s reason), or None.
    """

    path: str
    digest: str
    phash: int
    dhash: int
    width: int
    height: int
    problem: str | None


def _bits_to_int(bits: np.ndarray) -> int:
    """Row-major boolean array of 64 bits -> integer (first bit most significant)."""
    return int.from_bytes(np.packbits(bits.reshape(-1).astype(np.uint8)).tobytes(), "big")


def dhash_of(gray: Any) -> int:
    """dHash of a PIL image (any mode; converted to grey)."""
    from PIL import Image

    pixels = np.asarray(gray.convert("L").resize((9, 8), Image.Resampling.LANCZOS), dtype=np.float64)
    return _bits_to_int(pixels[:, 1:] > pixels[:, :-1])


def phash_of(gray: Any) -> int:
    """pHash of a PIL image (any mode; converted to grey).

    OpenCV's DCT is orthonormal; scaling its first row and column by sqrt(2) gives the unnormalised DCT-II (up
    to one constant factor) that ``imagehash`` computes with SciPy, so the medians and bits are the same.
    """
    import cv2
    from PIL import Image

    pixels = np.asarray(gray.convert("L").resize((32, 32), Image.Resampling.LANCZOS), dtype=np.float64)
    low = cv2.dct(pixels)[:8, :8].copy()
    low[0, :] *= _SQRT2
    low[:, 0] *= _SQRT2
    return _bits_to_int(low > np.median(low))


def inspect_file(path: str) -> FileFacts:
    """Hash one file: content digest, size, perceptual hashes, and ``verify-dataset``'s verdict on it."""
    from PIL import Image

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return FileFacts(path, "", 0, 0, 0, 0, f"cannot read: {exc.strerror or exc}")
    digest = hashlib.blake2b(data, digest_size=16).hexdigest()
    problem = check_image(path)
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            image.draft("RGB", (64, 64))  # JPEG: decode at a reduced scale (the hashes need 32 x 32 at most)
            image.load()
            return FileFacts(path, digest, phash_of(image), dhash_of(image), width, height, problem)
    except Exception:  # noqa: BLE001 - any decoder failure: check_image has said why
        return FileFacts(path, digest, 0, 0, 0, 0, problem or "cannot decode")


def hamming(a: np.ndarray | int, b: np.ndarray | int) -> np.ndarray:
    """Bits that differ between 64-bit hashes (broadcasting)."""
    return np.bitwise_count(np.bitwise_xor(np.asarray(a, dtype=np.uint64), np.asarray(b, dtype=np.uint64)))


def near_pairs(hashes: np.ndarray, threshold: int, *, block_elements: int = 1 << 22) -> Iterator[tuple[int, int, int]]:
    """Every pair ``(i, j, distance)`` with ``i < j`` of distinct hash values at most ``threshold`` bits apart.

    Pigeonhole search (multi-index hashing): cut the 64 bits into ``threshold + 1`` chunks; two hashes within
    ``threshold`` bits agree exactly on at least one chunk, so only hashes sharing a chunk value are compared. A
    pair is reported from the first chunk it agrees on. Memory stays bounded: comparisons run in blocks of at most
    ``block_elements`` distances.

    Args:
        hashes: ``(N,)`` unsigned 64-bit hashes, all different (collapse equal ones first).
        threshold: Largest Hamming distance reported, 0 to :data:`MAX_THRESHOLD`.
        block_elements: Distances computed at a time.
    """
    if not 0 <= threshold <= MAX_THRESHOLD:
        raise ValueError(f"threshold must be 0 to {MAX_THRESHOLD}")
    hashes = np.asarray(hashes, dtype=np.uint64)
    if threshold == 0 or len(hashes) < 2:
        return
    chunks = threshold + 1
    bounds = np.linspace(0, 64, chunks + 1).round().astype(int)
    keys = []
    for start, stop in zip(bounds[:-1], bounds[1:]):
        mask = np.uint64((1 << int(stop - start)) - 1)
        keys.append((hashes >> np.uint64(start)) & mask)
    for chunk, key in enumerate(keys):
        order = np.argsort(key, kind="stable")
        sorted_keys = key[order]
        starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
        stops = np.r_[starts[1:], len(order)]
        for start, stop in zip(starts, stops):
            if stop - start < 2:
                continue
            members = np.sort(order[start:stop])
            rows_per_block = max(1, block_elements // len(members))
            for first in range(0, len(members) - 1, rows_per_block):
                rows = members[first:first + rows_per_block]
                distances = hamming(hashes[rows][:, None], hashes[members][None, :])
                hit_r, hit_c = np.nonzero((distances <= threshold) & (members[None, :] > rows[:, None]))
                for r, c in zip(hit_r.tolist(), hit_c.tolist()):
                    i, j = int(rows[r]), int(members[c])
                    # Report each pair once: from the first chunk on which the two agree.
                    if any(keys[earlier][i] == keys[earlier][j] for earlier in range(chunk)):
                        continue
                    yield i, j, int(distances[r, c])
