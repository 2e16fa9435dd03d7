"""Sharded datasets: tar files in the WebDataset layout, streamed with the standard library's ``tarfile``.

A shard is a tar file whose members are grouped into samples by key: ``<key>.jpg`` (or png, webp, ...) holds
the encoded image and ``<key>.cls`` the class index as text. Samples are read in file order, so a shard can
come from anywhere that gives a byte stream: a local file, ``pipe:COMMAND`` (the command's standard output,
e.g. ``pipe:aws s3 cp s3://bucket/shard-000001.tar -``) or an ``http(s)://`` URL.

How an epoch is split, so that no two readers read the same shard:

* across processes (DDP ranks), once for the whole run: shards are dealt to ranks balancing their sample
  counts; every rank then yields the same number of samples per epoch (the largest rank's count, or
  ``epoch_size / world_size`` when given), a short rank repeating the start of its own pass, as
  ``DistributedSampler`` pads, so every process takes the same number of steps;
* across each process's loader workers, every epoch: the rank's shards in a new order (seeded by run seed and
  epoch), dealt round-robin to the workers; each worker mixes its samples in a shuffle buffer.

Workers hand chunks of decoded, transformed samples to the main process, which cuts them into batches (in
the DataLoader's fixed worker order), so batches, their order and every sample's augmentation seed depend
only on (seed, epoch): a stream is as reproducible as a sampler. A stream has no position to seek to:
``--resume`` from an epoch checkpoint starts the next epoch's stream; from a Ctrl-C checkpoint in the
middle of an epoch it reads that epoch's stream again from its start and drops the samples already
trained on.

We read tar files ourselves rather than depend on the ``webdataset`` package: the format needs only
``tarfile``, and the exact per-rank and per-worker split (no duplicates, equal step counts, resumable,
deterministic order) is the part that has to be right, so it lives here, in a few lines we test.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import re
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from clsctl.data.dataset_base import BadSampleCounter, OnBadImage, sample_seed, seed_sample
from clsctl.data.decode import DECODE_ERRORS, decode, decode_pil
from clsctl.data.layouts import read_class_names
from clsctl.errors import DataError

logger = logging.getLogger("clsctl")

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "bmp", "ppm", "pgm", "tif", "tiff")
LABEL_EXTENSION = "cls"
INDEX_FILE = "index.json"  # sample counts of the shards in a folder, written by prepare-data shards
CLASSES_FILE = "classes.txt"
REMOTE_PREFIXES = ("pipe:", "http://", "https://")


# --------------------------------------------------------------------------- urls


def expand_braces(pattern: str) -> list[str]:
    """Expand ``{a,b}`` alternatives and ``{000..009}`` ranges (zero padding kept), as shells and WebDataset do.

    >>> expand_braces("s-{00..02}.tar")
    ['s-00.tar', 's-01.tar', 's-02.tar']
    """
    match = re.search(r"\{([^{}]*)\}", pattern)
    if match is None:
        return [pattern]
    body = match.group(1)
    numbers = re.fullmatch(r"(\d+)\.\.(\d+)", body)
    if numbers:
        low, high = numbers.group(1), numbers.group(2)
        width = len(low) if low.startswith("0") or len(low) == len(high) else 0
        choices = [str(n).zfill(width) for n in range(int(low), int(high) + 1)]
    else:
        choices = body.split(",")
    head, tail = pattern[:match.start()], pattern[match.end():]
    return [expanded for choice in choices for expanded in expand_braces(head + choice + tail)]


def is_remote(url: str) -> bool:
    """Whether ``url`` is a pipe or an HTTP URL rather than a local file."""
    return url.startswith(REMOTE_PREFIXES)


def resolve_urls(urls: str | list[str], base: Path) -> list[str]:
    """Every shard of ``urls`` (brace patterns expanded, local paths made absolute against ``base``).

    Raises:
        DataError: No shard, or a local shard that does not exist.
    """
    resolved = []
    for spec in [urls] if isinstance(urls, str) else urls:
        for url in expand_braces(spec.strip()):
            if not is_remote(url):
                path = Path(url.removeprefix("file:")).expanduser()
                path = path if path.is_absolute() else base / path
                if not path.is_file():
                    raise DataError(f"shard not found: {path}")
                url = str(path)
            resolved.append(url)
    if not resolved:
        raise DataError("data.<split>.urls names no shard")
    return resolved


@contextlib.contextmanager
def open_shard(url: str) -> Iterator[IO[bytes]]:
    """A binary stream of a shard: a local file, ``pipe:COMMAND`` output or an HTTP response.

    Raises:
        DataError: The command fails or the URL cannot be read.
    """
    if url.startswith("pipe:"):
        process = subprocess.Popen(url[len("pipe:"):], shell=True, stdout=subprocess.PIPE)  # noqa: S602  the user's own command
        assert process.stdout is not None
        try:
            yield process.stdout
        finally:
            process.stdout.close()
            code = process.wait()
        if code != 0:
            raise DataError(f"shard command exited with status {code}: {url[len('pipe:'):]}")
    elif url.startswith(("http://", "https://")):
        from urllib.error import URLError
        from urllib.request import urlopen

        try:
            response = urlopen(url, timeout=60)  # noqa: S310  http(s) only, checked above
        except (URLError, OSError) as exc:
            raise DataError(f"cannot read shard {url}: {exc}") from exc
        with response:
            yield response
    else:
        with open(url, "rb", buffering=1 << 20) as handle:
            yield handle


def split_name(name: str) -> tuple[str, str]:
    """``dir/key.ext.more`` -> ``("dir/key", "ext.more")``: a sample's key and a member's extension, as
    WebDataset splits them (at the first dot of the file name)."""
    folder, _, base = name.rpartition("/")
    stem, _, ext = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), ext.lower()


def iter_tar_samples(stream: IO[bytes], url: str) -> Iterator[tuple[str, dict[str, bytes]]]:
    """``(key, {extension: bytes})`` of each sample in a tar stream, in file order (read front to back once).

    Raises:
        tarfile.TarError: The stream is not a tar file or ends early.
    """
    key, parts = None, {}
    with tarfile.open(fileobj=stream, mode="r|*") as tar:
        for member in tar:
            if not member.isfile():
                continue
            name_key, ext = split_name(member.name)
            if name_key.rpartition("/")[2].startswith(".") or not ext:
                continue
            handle = tar.extractfile(member)
            data = handle.read() if handle is not None else b""
            if name_key != key:
                if key is not None:
                    yield key, parts
                key, parts = name_key, {}
            parts[ext] = data
    if key is not None:
        yield key, parts


def image_part(parts: dict[str, bytes]) -> bytes | None:
    """The encoded image of a sample (the first image extension it has), or None."""
    for ext in IMAGE_EXTENSIONS:
        if ext in parts:
            return parts[ext]
    return None


def count_samples(url: str) -> int:
    """Samples (keys with an image) in a local shard: from ``index.json`` beside it when it matches the file's
    size, else by reading the tar headers (the file data is skipped over, not read)."""
    path = Path(url)
    index = _read_index(path.parent)
    entry = index.get(path.name)
    if entry and entry.get("bytes") == path.stat().st_size:
        return int(entry["samples"])
    keys = set()
    try:
        with tarfile.open(path, mode="r:*") as tar:
            for member in tar:
                key, ext = split_name(member.name)
                if member.isfile() and ext in IMAGE_EXTENSIONS:
                    keys.add(key)
    except tarfile.TarError as exc:
        raise DataError(f"{path} is not a readable tar shard ({exc})") from exc
    return len(keys)


def _read_index(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads((folder / INDEX_FILE).read_text(encoding="utf-8"))
        return dict(data.get("shards", {}))
    except (OSError, ValueError, AttributeError):
        return {}


# --------------------------------------------------------------------------- splitting


def deal_to_ranks(counts: list[int] | None, num_shards: int, world_size: int) -> list[list[int]]:
    """Shard indices of each rank: largest shards first to the rank with the fewest samples so far (ties: the
    lowest rank), which balances ranks whatever the shard sizes; round-robin when the counts are unknown."""
    if counts is None:
        return [list(range(rank, num_shards, world_size)) for rank in range(world_size)]
    totals = [0] * world_size
    shards: list[list[int]] = [[] for _ in range(world_size)]
    for index in sorted(range(num_shards), key=lambda i: (-counts[i], i)):
        rank = min(range(world_size), key=lambda r: (totals[r], r))
        shards[rank].append(index)
        totals[rank] += counts[index]
    return [sorted(s) for s in shards]


# --------------------------------------------------------------------------- dataset


@dataclass
class StreamPlan:
    """What the loader told the dataset about the run (set before workers start)."""

    train: bool = False
    seed: int = 0
    epoch: int = 0
    num_replicas: int = 1
    rank: int = 0
    chunk_size: int = 32


class ShardDataset(BadSampleCounter, IterableDataset):
    """A stream of ``(image, target)`` samples from tar shards (see the module docstring for the splitting).

    Without a transform (tools such as ``browse-dataset``), :meth:`iter_samples` gives decoded images;
    with one, iterating the dataset (inside a :class:`StreamLoader`) gives chunks of transformed samples.

    Args:
        urls: Every shard, resolved.
        classes: Class names.
        transform: Applied to each decoded image, as the folder datasets apply it.
        on_bad_image: ``skip`` (leave the sample out, count it, warn once per sample and process) or ``fail``.
        shuffle_buffer: Samples each worker mixes (training only).
        epoch_size: Samples per epoch over all ranks (None: the shards' count).
        counts: Samples per shard (None when unknown: remote shards).
    """

    def __init__(self, urls: list[str], classes: list[str], transform: Callable | None = None, *,
                 on_bad_image: OnBadImage = "skip", shuffle_buffer: int = 1000, epoch_size: int | None = None,
                 counts: list[int] | None = None) -> None:
        if on_bad_image not in ("skip", "fail"):
            raise ValueError(f"on_bad_image must be skip or fail, got {on_bad_image!r}")
        self.urls = list(urls)
        self.classes = list(classes)
        self.transform = transform
        self.on_bad_image = on_bad_image
        self.shuffle_buffer = shuffle_buffer
        self.epoch_size = epoch_size
        self.counts = counts
        self.plan = StreamPlan()
        self.multi_label = False
        self.exclude_replaced = False
        self._start_bad_sample_count()
        self._warned: set[str] = set()

    def __len__(self) -> int:
        """Samples per epoch over all ranks."""
        if self.epoch_size is not None:
            return self.epoch_size
        if self.counts is None:
            raise DataError("the length of a stream of remote shards is unknown; set epoch_size")
        return sum(self.counts)

    # ----------------------------------------------------------------- the split

    def rank_shards(self, rank: int | None = None) -> list[int]:
        """Shard indices of ``rank`` (default: this process's), fixed for the run."""
        world = self.plan.num_replicas
        if len(self.urls) < world:
            raise DataError(f"{len(self.urls)} shard(s) for {world} processes: every process needs at least one; "
                            "write smaller shards (prepare-data shards --shard-size)")
        return deal_to_ranks(self.counts, len(self.urls), world)[self.plan.rank if rank is None else rank]

    def rank_count(self, rank: int | None = None) -> int | None:
        """Samples in the shards of ``rank`` (None when the counts are unknown)."""
        if self.counts is None:
            return None
        return sum(self.counts[i] for i in self.rank_shards(rank))

    def quota(self) -> int | None:
        """Samples every rank yields per training epoch (None for evaluation: each rank its own shards, once)."""
        if not self.plan.train:
            return None
        if self.epoch_size is not None:
            return math.ceil(self.epoch_size / self.plan.num_replicas)
        if self.counts is None:
            raise DataError("training on pipe: or http shards needs data.train.epoch_size (their sample count "
                            "cannot be known before reading them)")
        return max(self.rank_count(r) or 0 for r in range(self.plan.num_replicas))

    def worker_shards(self, worker: int, num_workers: int) -> list[int]:
        """This rank's shards that ``worker`` reads this epoch (a new order every training epoch)."""
        shards = self.rank_shards()
        if self.plan.train:
            rng = random.Random(f"{self.plan.seed}/{self.plan.epoch}/{self.plan.rank}/shards")
            rng.shuffle(shards)
        return shards[worker::num_workers]

    # ----------------------------------------------------------------- reading

    def raw_samples(self, shards: list[int]) -> Iterator[tuple[int, str, dict[str, bytes]]]:
        """``(sample id, "url:key", parts)`` of the given shards in order; the id is ``shard << 32 | position``."""
        for shard in shards:
            url = self.urls[shard]
            position = 0
            try:
                with open_shard(url) as stream:
                    for key, parts in iter_tar_samples(stream, url):
                        if image_part(parts) is None and LABEL_EXTENSION not in parts:
                            continue  # not a sample (metadata file in the tar)
                        yield (shard << 32) | position, f"{url}:{key}", parts
                        position += 1
            except (tarfile.TarError, OSError) as exc:
                if self.on_bad_image == "fail":
                    raise DataError(f"cannot read shard {url}: {exc}") from exc
                logger.warning("shard %s cannot be read further (%s); going on with the next one", url, exc)

    def decode(self, name: str, parts: dict[str, bytes]) -> tuple[Any, int] | None:
        """The decoded image and class index of a sample; None when it is unreadable and ``skip`` is set."""
        data = image_part(parts)
        try:
            if data is None:
                raise OSError(f"no image (expected one of .{', .'.join(IMAGE_EXTENSIONS)})")
            if LABEL_EXTENSION not in parts:
                raise ValueError("no .cls label")
            label = int(parts[LABEL_EXTENSION].decode("ascii").strip())
            # The one decode layer, as for image files: a uint8 tensor for the pipeline, PIL for tools
            image = decode(data, name) if self.transform is not None else decode_pil(data, name)
        except (*DECODE_ERRORS, UnicodeDecodeError) as exc:
            if self.on_bad_image == "fail":
                raise DataError(f"cannot read sample {name}: {exc} (set data.on_bad_image: skip to skip "
                                "unreadable samples)") from exc
            self._count_bad_sample()
            if name not in self._warned:
                self._warned.add(name)
                logger.warning("skipping unreadable sample %s (%s)", name, exc)
            return None
        if not 0 <= label < len(self.classes):
            raise DataError(f"sample {name}: label {label} is out of range for {len(self.classes)} classes")
        return image, label

    def iter_samples(self, shards: list[int] | None = None) -> Iterator[tuple[Any, int, str]]:
        """Decoded ``(image, label, "url:key")`` of the shards (default: all), in file order, unreadable
        samples left out; the transform is not applied (for tools)."""
        for _, name, parts in self.raw_samples(list(range(len(self.urls))) if shards is None else shards):
            decoded = self.decode(name, parts)
            if decoded is not None:
                yield decoded[0], decoded[1], name

    def _shuffled(self, samples: Iterator[Any], rng: random.Random) -> Iterator[Any]:
        """Samples through a shuffle buffer of ``shuffle_buffer`` entries."""
        buffer: list[Any] = []
        for sample in samples:
            if len(buffer) < self.shuffle_buffer:
                buffer.append(sample)
                continue
            pick = rng.randrange(len(buffer))
            buffer[pick], sample = sample, buffer[pick]
            yield sample
        rng.shuffle(buffer)
        yield from buffer

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Chunks ``(images, targets, sample ids)`` of this worker's share of the epoch."""
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        plan = self.plan
        samples: Iterator[Any] = self.raw_samples(self.worker_shards(worker, workers))
        if plan.train and self.shuffle_buffer > 1:
            samples = self._shuffled(samples, random.Random(f"{plan.seed}/{plan.epoch}/{plan.rank}/{worker}"))
        images, targets, ids = [], [], []
        for sample_id, name, parts in samples:
            decoded = self.decode(name, parts)
            if decoded is None:
                continue
            image, label = decoded
            if self.transform is not None:
                if plan.train:
                    seed_sample(sample_seed(plan.seed, plan.epoch, sample_id))
                image = self.transform(image)
            images.append(image)
            targets.append(label)
            ids.append(sample_id)
            if len(images) == plan.chunk_size:
                yield torch.stack(images), torch.tensor(targets), torch.tensor(ids)
                images, targets, ids = [], [], []
        if images:
            yield torch.stack(images), torch.tensor(targets), torch.tensor(ids)


# --------------------------------------------------------------------------- loader


class StreamPosition:
    """What the training loop asks a loader's sampler: the epoch to yield, samples per rank, and (after a
    pass) the sample ids in the order they came."""

    def __init__(self, loader: StreamLoader) -> None:
        self.loader = loader
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Yield ``epoch`` next, skipping its first ``start`` samples (resuming inside an epoch)."""
        self.epoch, self.start = epoch, start
        self.loader.dataset.plan.epoch = epoch

    def per_replica(self) -> int:
        """Samples this rank yields in a whole epoch (its own shards' count in evaluation; 0 when unknown)."""
        dataset = self.loader.dataset
        quota = dataset.quota()
        if quota is not None:
            return quota
        return dataset.rank_count() or 0

    def __len__(self) -> int:
        return max(self.per_replica() - self.start, 0)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        """``(sample id, 0)`` of the last pass, in order (what validation gathers results by)."""
        return ((index, 0) for index in self.loader.last_ids)

    def indices(self) -> list[int]:
        """Sample ids of the last pass, in order (what ``clsctl test`` gathers results by)."""
        return list(self.loader.last_ids)


class StreamLoader:
    """Batches from a :class:`ShardDataset`: workers decode and transform chunks; the main process cuts them
    into batches of exactly ``batch_size`` and pads or cuts each rank's epoch to the same length.

    Workers are started for every pass (the dataset must see the epoch it is asked for).

    Args:
        dataset: The shard dataset (with its transform).
        batch_size: Samples per batch.
        num_workers: Loader worker processes (0: read in this process).
        train: Shuffle, pad to the common per-rank length, and drop the last partial batch if asked.
        drop_last: Leave out the last partial batch (training).
        seed: Base seed (shard order, shuffle buffers, augmentation).
        pin_memory: Page-locked batches for faster copies to a GPU.
        prefetch_factor: Chunks each worker prepares ahead.
        num_replicas: Processes sharing the data.
        rank: This process's index.
    """

    def __init__(self, dataset: ShardDataset, *, batch_size: int, num_workers: int, train: bool,
                 drop_last: bool = False, seed: int = 0, pin_memory: bool = False, prefetch_factor: int = 2,
                 num_replicas: int = 1, rank: int = 0) -> None:
        self.dataset = dataset
        self.batch_size = batch_size
        self.drop_last = train and drop_last
        self.pin_memory = pin_memory
        dataset.plan = StreamPlan(train=train, seed=seed, num_replicas=num_replicas, rank=rank,
                                  chunk_size=batch_size)
        dataset.rank_shards()  # fail now, not in a worker, when there are fewer shards than processes
        if train:
            dataset.quota()
        self.loader = DataLoader(dataset, batch_size=None, num_workers=num_workers, persistent_workers=False,
                                 prefetch_factor=prefetch_factor if num_workers > 0 else None)
        self.sampler = StreamPosition(self)
        self.batch_sampler = self.sampler  # evaluation asks batch_sampler.indices()
        self.last_ids: list[int] = []

    def __len__(self) -> int:
        """Batches of the coming pass."""
        samples = len(self.sampler)
        return samples // self.batch_size if self.drop_last else math.ceil(samples / self.batch_size)

    def _chunks(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """This rank's chunks for the epoch, cut or padded (by another pass) to the quota in training."""
        quota = self.dataset.quota()
        produced = 0
        while True:
            got = 0
            for images, targets, ids in self.loader:
                if quota is not None and produced + len(ids) > quota:
                    keep = quota - produced
                    images, targets, ids = images[:keep], targets[:keep], ids[:keep]
                produced += len(ids)
                got += len(ids)
                yield images, targets, ids
                if quota is not None and produced >= quota:
                    return
            if quota is None:
                return
            if got == 0:
                raise DataError(f"the shards of process {self.dataset.plan.rank} hold no readable sample")
            # A rank with fewer samples than the quota repeats its pass (same samples, same augmentation).

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        self.last_ids = []
        skip = self.sampler.start
        pending: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        count = 0
        for images, targets, ids in self._chunks():
            if skip:  # resuming inside the epoch: drop what was already trained on
                cut = min(skip, len(ids))
                skip -= cut
                images, targets, ids = images[cut:], targets[cut:], ids[cut:]
                if not len(ids):
                    continue
            pending.append((images, targets, ids))
            count += len(ids)
            while count >= self.batch_size:
                merged = [torch.cat([part[i] for part in pending]) for i in range(3)]
                yield self._batch(*(m[:self.batch_size] for m in merged))
                rest = tuple(m[self.batch_size:] for m in merged)
                pending = [rest] if len(rest[2]) else []
                count -= self.batch_size
        if count and not self.drop_last:
            yield self._batch(*(torch.cat([part[i] for part in pending]) for i in range(3)))

    def _batch(self, images: torch.Tensor, targets: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, ...]:
        self.last_ids += ids.tolist()
        if self.pin_memory:
            images, targets = images.pin_memory(), targets.pin_memory()
        return images, targets


# --------------------------------------------------------------------------- building


def build_shard_dataset(config: Any, transform: Callable | None, base: Path, *,
                        on_bad_image: OnBadImage = "skip") -> ShardDataset:
    """The :class:`ShardDataset` of a recipe's ``type: webdataset`` entry."""
    urls = resolve_urls(config.urls, base)
    local = [u for u in urls if not is_remote(u)]
    if config.classes is not None:
        classes = read_class_names(config.classes, base)
    elif local:
        classes = read_class_names(str(Path(local[0]).parent / CLASSES_FILE), base)
    else:
        raise DataError("shards that are not local files need data.<split>.classes (names or a file)")
    counts = [count_samples(u) for u in urls] if len(local) == len(urls) else None
    return ShardDataset(urls, classes, transform, on_bad_image=on_bad_image, shuffle_buffer=config.shuffle_buffer,
                        epoch_size=config.epoch_size, counts=counts)
