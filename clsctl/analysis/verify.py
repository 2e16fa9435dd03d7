"""``verify-dataset``: decode every image of a split and list the files that would break training.

This module imports no torch, so worker processes start fast.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from clsctl.recipe import Recipe

# The container format each image extension promises, as Pillow names it (MPO is a multi-picture JPEG).
EXPECTED_FORMATS: dict[str, tuple[str, ...]] = {
    ".jpg": ("JPEG", "MPO"), ".jpeg": ("JPEG", "MPO"), ".png": ("PNG",), ".bmp": ("BMP",), ".ppm": ("PPM",),
    ".pgm": ("PPM",), ".tif": ("TIFF",), ".tiff": ("TIFF",), ".webp": ("WEBP",),
}


@dataclass(frozen=True)
class BrokenFile:
    """A file that cannot be used, and why."""

    path: str
    reason: str


@dataclass
class VerifyResult:
    """Outcome of :func:`verify_dataset`.

    Attributes:
        checked: Image files decoded.
        broken: Files that fail to decode or whose content does not match their extension.
        skipped: Files in class folders the loader ignores (extension not an image extension), with the reason.
        log_path: Where the broken files were written, if anywhere.
    """

    checked: int
    broken: list[BrokenFile] = field(default_factory=list)
    skipped: list[BrokenFile] = field(default_factory=list)
    log_path: Path | None = None

    @property
    def ok(self) -> bool:
        """No broken file."""
        return not self.broken


def check_image(path: str) -> str | None:
    """Why ``path`` cannot be used as an image, or None when it decodes and its format fits its extension."""
    from PIL import Image, UnidentifiedImageError

    file = Path(path)
    try:
        size = file.stat().st_size
    except OSError as exc:
        return f"cannot read: {exc.strerror or exc}"
    if size == 0:
        return "empty file (0 bytes)"
    image_format = "unknown"  # a file can fail inside Image.open, before its format is known
    try:
        with Image.open(file) as image:
            image_format = image.format or "unknown"
            image.load()  # decode every pixel: a truncated file fails here, not at open
            image.convert("RGB")
    except UnidentifiedImageError:
        return "not an image (no decoder recognises its content)"
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        message = str(exc).split("\n")[0] or type(exc).__name__
        return f"cannot decode ({image_format}): {message}"
    expected = EXPECTED_FORMATS.get(file.suffix.lower())
    if expected is not None and image_format not in expected:
        return f"wrong extension: {image_format} content in a '{file.suffix}' file"
    return None


def _check(path: str) -> tuple[str, str | None]:
    return path, check_image(path)


def ignored_files(root: Path, classes: Iterable[str]) -> list[BrokenFile]:
    """Files in class folders that the image-folder scanner skips for their extension."""
    from clsctl.data.datasets import IMG_EXTENSIONS

    found = []
    for name in classes:
        for file in sorted((root / name).rglob("*")):
            if file.is_file() and file.suffix.lower() not in IMG_EXTENSIONS and not file.name.startswith("."):
                found.append(BrokenFile(str(file), f"'{file.suffix or '(no extension)'}' is not an image "
                                                   f"extension, so the loader ignores it"))
    return found


def verify_files(paths: list[str], num_process: int = 1,
                 progress: Callable[[int], None] | None = None) -> list[BrokenFile]:
    """Check ``paths`` with ``num_process`` worker processes; broken files in path order.

    Args:
        paths: Image files.
        num_process: Worker processes (1: check in this process).
        progress: Called with the number of files just checked.
    """
    results: list[tuple[str, str | None]] = []
    if num_process <= 1 or len(paths) < 2:
        for path in paths:
            results.append(_check(path))
            if progress:
                progress(1)
    else:
        import multiprocessing

        # Chunks keep inter-process traffic low while still updating the progress bar often.
        chunk = max(1, min(64, len(paths) // (num_process * 8)))
        with multiprocessing.get_context("spawn").Pool(num_process) as pool:
            for result in pool.imap_unordered(_check, paths, chunksize=chunk):
                results.append(result)
                if progress:
                    progress(1)
    return sorted((BrokenFile(path, reason) for path, reason in results if reason), key=lambda b: b.path)


def dataset_files(recipe: Recipe, split: str) -> tuple[list[str], list[BrokenFile]]:
    """Image paths of a split, and the files the loader would skip (image-folder datasets only)."""
    from clsctl.data.datasets import ImageListDataset, build_dataset
    from clsctl.engine.build import dataset_config
    from clsctl.errors import ClsctlError
    from clsctl.recipe import schema as S

    config = dataset_config(recipe, split)
    dataset = build_dataset(config)
    paths = [str(path) for path, _ in dataset.samples]
    if not isinstance(dataset, ImageListDataset) and not all(Path(p).is_file() for p in paths[:10]):
        raise ClsctlError(f"the {split} split holds decoded images in memory (type {config.type}); there are no "
                          f"image files to verify")
    skipped = []
    if isinstance(config, S.ImageFolderDataset):
        root = Path(config.root)
        skipped = ignored_files(root if root.is_absolute() else Path.cwd() / root, dataset.classes)
    return paths, skipped


def verify_dataset(recipe: Recipe, split: str = "train", *, num_process: int = 1, out_path: str | Path | None = None,
                   progress: Callable[[int], None] | None = None,
                   on_start: Callable[[int], None] | None = None) -> VerifyResult:
    """Decode every image of a split; list the broken ones (and write them to ``out_path``).

    Args:
        recipe: Validated recipe.
        split: ``train``, ``val`` or ``test``.
        num_process: Worker processes.
        out_path: Log file: one ``path<TAB>reason`` line per broken file (written even when empty).
        progress: Called with the number of files just checked.
        on_start: Called with the number of files about to be checked.
    """
    from clsctl.recipe import schema as S

    from clsctl.engine.build import dataset_config

    if isinstance(dataset_config(recipe, split), S.WebDatasetShards):
        result = verify_shard_split(recipe, split, num_process=num_process, progress=progress, on_start=on_start)
        return _write_log(result, out_path)
    paths, skipped = dataset_files(recipe, split)
    if on_start:
        on_start(len(paths))
    broken = verify_files(paths, num_process, progress)
    return _write_log(VerifyResult(len(paths), broken, skipped), out_path)


def _write_log(result: VerifyResult, out_path: str | Path | None) -> VerifyResult:
    broken = result.broken
    if out_path is not None:
        out = Path(out_path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("".join(f"{b.path}\t{b.reason}\n" for b in broken), encoding="utf-8")
        result.log_path = out
    return result


def check_encoded(data: bytes, ext: str) -> str | None:
    """Why encoded image bytes (a tar member with extension ``ext``) cannot be used, or None (as
    :func:`check_image` for files)."""
    import io

    from PIL import Image, UnidentifiedImageError

    if not data:
        return "empty image (0 bytes)"
    try:
        with Image.open(io.BytesIO(data)) as image:
            image_format = image.format or "unknown"
            image.load()
            image.convert("RGB")
    except UnidentifiedImageError:
        return "not an image (no decoder recognises its content)"
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        message = str(exc).split("\n")[0] or type(exc).__name__
        return f"cannot decode ({image_format}): {message}"
    expected = EXPECTED_FORMATS.get(f".{ext}")
    if expected is not None and image_format not in expected:
        return f"wrong extension: {image_format} content in a '.{ext}' member"
    return None


def check_shard(url: str, num_classes: int) -> tuple[int, list[BrokenFile]]:
    """Samples in one shard and the broken ones (``url:key``): unreadable image, missing or bad label; a
    shard that is not a readable tar is one broken entry."""
    import tarfile

    from clsctl.data.shards import IMAGE_EXTENSIONS, LABEL_EXTENSION, iter_tar_samples, open_shard
    from clsctl.errors import DataError

    checked, broken = 0, []
    try:
        with open_shard(url) as stream:
            for key, parts in iter_tar_samples(stream, url):
                ext = next((e for e in IMAGE_EXTENSIONS if e in parts), None)
                if ext is None and LABEL_EXTENSION not in parts:
                    continue
                checked += 1
                name = f"{url}:{key}"
                if ext is None:
                    broken.append(BrokenFile(name, "no image member (.jpg, .png, ...)"))
                    continue
                reason = check_encoded(parts[ext], ext)
                if reason is None:
                    label = parts.get(LABEL_EXTENSION, b"").decode("ascii", "replace").strip()
                    if not label:
                        reason = "no .cls label"
                    elif not label.isdigit() or int(label) >= num_classes:
                        reason = f"label {label!r} is not a class index below {num_classes}"
                if reason is not None:
                    broken.append(BrokenFile(name, reason))
    except (tarfile.TarError, OSError, DataError) as exc:
        broken.append(BrokenFile(url, f"not a readable tar shard: {exc}"))
    return checked, broken


def _check_shard_star(args: tuple[str, int]) -> tuple[int, list[BrokenFile]]:
    return check_shard(*args)


def verify_shard_split(recipe: Recipe, split: str, *, num_process: int = 1,
                       progress: Callable[[int], None] | None = None,
                       on_start: Callable[[int], None] | None = None) -> VerifyResult:
    """Read every sample of a split's tar shards (``num_process`` shards at a time) and list the broken ones."""
    from clsctl.data.datasets import build_dataset

    from clsctl.engine.build import dataset_config

    dataset = build_dataset(dataset_config(recipe, split))
    if on_start:
        on_start(sum(dataset.counts) if dataset.counts is not None else 0)
    jobs = [(url, len(dataset.classes)) for url in dataset.urls]
    results: list[tuple[int, list[BrokenFile]]] = []
    if num_process <= 1 or len(jobs) < 2:
        for job in jobs:
            results.append(check_shard(*job))
            if progress:
                progress(results[-1][0])
    else:
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(num_process) as pool:
            for result in pool.imap(_check_shard_star, jobs):
                results.append(result)
                if progress:
                    progress(result[0])
    broken = [b for _, found in results for b in found]
    return VerifyResult(sum(count for count, _ in results), broken)
