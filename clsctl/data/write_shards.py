"""``clsctl prepare-data shards``: an image folder written as WebDataset tar shards.

Each sample becomes ``<key>.<ext>`` (the image file's bytes, unchanged) and ``<key>.cls`` (the class index);
samples are written in a seeded random order, so a worker's shuffle buffer only has to mix neighbours. The
output folder also gets ``classes.txt`` (one name per line, index order) and ``index.json`` (samples and
bytes per shard), which the reader uses instead of counting samples. Tar headers carry no owner or time, so
the same input gives the same bytes.
"""

from __future__ import annotations

import io
import json
import os
import random
import re
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from clsctl.data.shards import CLASSES_FILE, INDEX_FILE
from clsctl.errors import ClsctlError

_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
          "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_size(text: str) -> int:
    """``1GB`` -> 10**9, ``512MiB`` -> 512 * 2**20, ``4096`` -> 4096 bytes.

    Raises:
        ClsctlError: Not a size.
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _UNITS:
        raise ClsctlError(f"'{text}' is not a size (e.g. 1GB, 500MB, 256MiB or a number of bytes)")
    size = int(float(match.group(1)) * _UNITS[unit])
    if size <= 0:
        raise ClsctlError(f"the shard size must be positive, got '{text}'")
    return size


@dataclass
class ShardsWritten:
    """What :func:`write_shards` wrote."""

    out_dir: Path
    shards: list[Path]
    classes: list[str]
    samples: int

    @property
    def pattern(self) -> str:
        """A brace pattern naming every shard, for a recipe's ``urls``."""
        if len(self.shards) == 1:
            return str(self.shards[0])
        first, last = self.shards[0].stem.rpartition("-")[2], self.shards[-1].stem.rpartition("-")[2]
        return str(self.out_dir / f"shard-{{{first}..{last}}}.tar")


def _member(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _tar_bytes(size: int) -> int:
    """Bytes a member of ``size`` bytes takes in a tar file: a 512-byte header and the data padded to 512."""
    return 512 + -(-size // 512) * 512


def write_shards(src_dir: str | Path, out_dir: str | Path, *, shard_size: int = 10**9,
                 classes: str | Path | None = None, seed: int = 0, shuffle: bool = True,
                 progress: Callable[[int], None] | None = None, on_start: Callable[[int], None] | None = None
                 ) -> ShardsWritten:
    """Write the images of an image folder (``src_dir/<class>/...``) as tar shards under ``out_dir``.

    Args:
        src_dir: Image folder; classes are its sorted sub-folders unless ``classes`` is given.
        out_dir: Destination: ``shard-000000.tar``, ..., ``classes.txt``, ``index.json``.
        shard_size: Largest shard in bytes (a single larger image gets a shard of its own).
        classes: A class-name file (one per line): those folders, in that order (the label is the line index).
        seed: Seed of the sample order.
        shuffle: Write samples in a random order (else folder order).
        progress: Called with the number of samples just written.
        on_start: Called with the number of samples about to be written.
    """
    from clsctl.data.datasets import scan_image_folder
    from clsctl.data.layouts import read_class_names

    src, out = Path(src_dir), Path(out_dir)
    names = read_class_names(str(classes), Path.cwd()) if classes is not None else None
    samples, class_names = scan_image_folder(src, names)
    if shuffle:
        random.Random(seed).shuffle(samples)
    if on_start:
        on_start(len(samples))
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("shard-*.tar"):  # a shorter rewrite must not leave shards of the previous one
        old.unlink()
    shards: list[Path] = []
    index: dict[str, dict[str, int]] = {}
    tar: tarfile.TarFile | None = None
    used = in_shard = 0
    tmp: Path | None = None

    def finish() -> None:
        nonlocal tar
        if tar is not None and tmp is not None:
            tar.close()
            target = out / f"shard-{len(shards):06d}.tar"
            os.replace(tmp, target)
            index[target.name] = {"samples": in_shard, "bytes": target.stat().st_size}
            shards.append(target)
            tar = None

    for number, (path, label) in enumerate(samples):
        data = Path(path).read_bytes()
        ext = Path(path).suffix.lower().lstrip(".")
        label_text = f"{label}\n".encode()
        size = _tar_bytes(len(data)) + _tar_bytes(len(label_text))
        if tar is not None and used + size + 1024 > shard_size:  # 1024: the two zero blocks closing a tar
            finish()
        if tar is None:
            tmp = out / f".shard-{len(shards):06d}.tar.tmp"
            tar = tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT)
            used = in_shard = 0
        key = f"{number:08d}"
        tar.addfile(_member(f"{key}.{ext}", len(data)), io.BytesIO(data))
        tar.addfile(_member(f"{key}.cls", len(label_text)), io.BytesIO(label_text))
        used += size
        in_shard += 1
        if progress:
            progress(1)
    finish()
    from clsctl.atomic import write_text_atomic

    write_text_atomic(out / CLASSES_FILE, "".join(f"{name}\n" for name in class_names))
    write_text_atomic(out / INDEX_FILE, json.dumps({"classes": class_names, "samples": len(samples), "shards": index},
                                                   indent=1) + "\n")
    return ShardsWritten(out, shards, class_names, len(samples))
