"""``dataset-doctor``: what is wrong with a dataset before it is trained on.

One streamed pass over every file of the chosen splits, in parallel worker processes, finds: unreadable files
(``verify-dataset``'s check), exact duplicates (same bytes) and near-duplicates (perceptual hashes at most
``threshold`` bits apart, see :mod:`clsctl.analysis.hashing`) within a split and across splits (leakage of held-out
images into train), class counts and the imbalance ratio, and image size and aspect-ratio outliers. With a
checkpoint it also ranks likely label errors (:mod:`clsctl.analysis.label_issues`).

Memory per image is a few dozen bytes of facts (digest, two 64-bit hashes, size), never pixels, so 100k images
fit easily; the near-duplicate search compares only hashes that agree on a chunk of bits, in bounded blocks.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from clsctl.analysis import _html as H
from clsctl.analysis.hashing import HASH_KINDS, MAX_THRESHOLD, FileFacts, hamming, inspect_file, near_pairs
from clsctl.analysis.verify import BrokenFile
from clsctl.errors import ClsctlError
from clsctl.recipe import Recipe

DEFAULT_THRESHOLD = 6  # bits of 64: a resized or re-encoded copy differs by 0-4, unrelated images by ~32
SIZE_FACTOR = 4.0  # an image whose area is this many times above or below the median area is an outlier
ASPECT_FACTOR = 2.0  # ... or whose aspect ratio (width / height) is this many times off the median's
SMALL_CLASS_FRACTION = 0.2  # a class with fewer images than this fraction of the split's median count is small
LISTED = 200  # most items of one kind kept in the JSON and on the page (the counts are always complete)
IN_SAMPLE_NOTE = ("probabilities on the train split come from a model trained on those very images (in-sample): it "
                  "has partly memorised their labels, so this list understates the label errors; out-of-sample "
                  "probabilities (e.g. from k-fold runs) find more")


@dataclass
class SplitStats:
    """Class balance of one split.

    Attributes:
        split: ``train``, ``val`` or ``test``.
        files: Samples in the split.
        classes: Class names, in label order.
        counts: Images per class (a multi-label image counts for each of its classes).
        imbalance: Largest class count / smallest (None when a class has no images).
        small_classes: ``(class, count)`` of classes with fewer than ``min_class_images`` images or under
            :data:`SMALL_CLASS_FRACTION` of the median count.
    """

    split: str
    files: int
    classes: list[str]
    counts: dict[str, int]
    imbalance: float | None
    small_classes: list[tuple[str, int]] = field(default_factory=list)


@dataclass
class DoctorResult:
    """Everything :func:`dataset_doctor` found; lists are capped at :data:`LISTED` entries, counts are not.

    Attributes:
        splits: Class statistics per split.
        files: Files inspected (each distinct path once).
        unreadable: Files ``verify-dataset`` reports as broken.
        skipped: Files in class folders that the loader ignores (not image extensions).
        exact_groups: Groups of files with identical bytes (``{"digest", "members": [{path, split, label}]}``).
        near_groups: Groups of look-alike files that are not all identical bytes.
        leaks: Held-out images with a copy or look-alike in an earlier split, each paired with it.
        size_outliers: Images far off the median size or aspect ratio, with the reason.
        label_issues: Per split, likely label errors, most likely first (only with a checkpoint).
        notes: Warnings worth reading (class lists that differ, in-sample probabilities, ...).
        counts: Totals of every finding (uncapped).
        seconds: Wall time of the hashing pass.
        json_path: Where the JSON was written.
        html_path: Where the page was written.
    """

    splits: dict[str, SplitStats]
    files: int
    unreadable: list[BrokenFile] = field(default_factory=list)
    skipped: list[BrokenFile] = field(default_factory=list)
    exact_groups: list[dict[str, Any]] = field(default_factory=list)
    near_groups: list[dict[str, Any]] = field(default_factory=list)
    leaks: list[dict[str, Any]] = field(default_factory=list)
    size_outliers: list[dict[str, Any]] = field(default_factory=list)
    label_issues: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    json_path: Path | None = None
    html_path: Path | None = None

    @property
    def failed(self) -> bool:
        """Leakage or unreadable files: what makes ``dataset-doctor`` exit with 1."""
        return bool(self.counts.get("leaks") or self.counts.get("unreadable"))

    @property
    def clean(self) -> bool:
        """Nothing found at all."""
        return not any(self.counts.values()) and not self.notes_that_matter

    @property
    def notes_that_matter(self) -> list[str]:
        """Notes other than the in-sample caveat."""
        return [n for n in self.notes if n != IN_SAMPLE_NOTE]

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the JSON file."""
        data = asdict(self)
        data["json_path"] = str(self.json_path) if self.json_path else None
        data["html_path"] = str(self.html_path) if self.html_path else None
        data["failed"] = self.failed
        return data


@dataclass
class _Entry:
    path: str
    split: str
    label: Any  # class index, or a tuple of them (multi-label)


class _UnionFind:
    """Disjoint sets over ``0..n-1`` with path halving."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, x: int) -> int:
        parent = self.parent
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _load_splits(recipe: Recipe, phases: Sequence[str]) -> tuple[dict[str, Any], list[BrokenFile]]:
    """The dataset of each phase (no transform), and the files the loader skips."""
    from clsctl.analysis.verify import ignored_files
    from clsctl.data.datasets import ImageListDataset, build_dataset
    from clsctl.engine.build import dataset_config
    from clsctl.recipe import schema as S

    datasets, skipped = {}, []
    for phase in phases:
        if getattr(recipe.data, phase) is None:  # no fallback from test to val here: val would "leak" into itself
            raise ClsctlError(f"the recipe has no data.{phase} dataset")
        config = dataset_config(recipe, phase)
        dataset = build_dataset(config)
        paths = [str(p) for p, _ in dataset.samples[:10]]
        if not isinstance(dataset, ImageListDataset) and not all(Path(p).is_file() for p in paths):
            raise ClsctlError(f"the {phase} split holds decoded images in memory (type {config.type}); there are no "
                              f"image files to examine")
        datasets[phase] = dataset
        if isinstance(config, S.ImageFolderDataset):
            root = Path(config.root)
            skipped += ignored_files(root if root.is_absolute() else Path.cwd() / root, dataset.classes)
    return datasets, skipped


def hash_files(paths: Sequence[str], num_process: int = 1,
               progress: Callable[[int], None] | None = None) -> list[FileFacts]:
    """:func:`~clsctl.analysis.hashing.inspect_file` on every path, in ``num_process`` worker processes; results in
    the order of ``paths``. Results stream back in chunks, so memory holds facts, never images."""
    if num_process <= 1 or len(paths) < 64:
        results = []
        for path in paths:
            results.append(inspect_file(path))
            if progress:
                progress(1)
        return results
    import multiprocessing

    index = {path: i for i, path in enumerate(paths)}
    ordered: list[FileFacts | None] = [None] * len(paths)
    chunk = max(1, min(256, len(paths) // (num_process * 16)))
    with multiprocessing.get_context("spawn").Pool(num_process) as pool:
        for facts in pool.imap_unordered(inspect_file, paths, chunksize=chunk):
            ordered[index[facts.path]] = facts
            if progress:
                progress(1)
    return ordered  # type: ignore[return-value]


def split_stats(split: str, dataset: Any, min_class_images: int) -> SplitStats:
    """Class counts, imbalance ratio and small classes of one split."""
    counter: Counter[int] = Counter()
    for _, target in dataset.samples:
        counter.update(target if isinstance(target, tuple) else (target,))
    counts = {name: counter.get(i, 0) for i, name in enumerate(dataset.classes)}
    values = list(counts.values())
    imbalance = max(values) / min(values) if values and min(values) > 0 else None
    median = float(np.median(values)) if values else 0.0
    small = [(name, n) for name, n in counts.items() if n < min_class_images or n < SMALL_CLASS_FRACTION * median]
    return SplitStats(split, len(dataset.samples), list(dataset.classes), counts, imbalance, small)


def size_outliers(facts: Sequence[FileFacts]) -> list[dict[str, Any]]:
    """Images whose area is :data:`SIZE_FACTOR` times above or below the median, or whose aspect ratio is
    :data:`ASPECT_FACTOR` times off the median aspect ratio."""
    sized = [f for f in facts if f.width > 0 and f.height > 0]
    if len(sized) < 3:
        return []
    width = np.array([f.width for f in sized], dtype=np.float64)
    height = np.array([f.height for f in sized], dtype=np.float64)
    area, aspect = width * height, width / height
    median_area, median_aspect = float(np.median(area)), float(np.median(aspect))
    median_w, median_h = float(np.median(width)), float(np.median(height))
    found = []
    for i in np.flatnonzero((np.abs(np.log(area / median_area)) > np.log(SIZE_FACTOR))
                            | (np.abs(np.log(aspect / median_aspect)) > np.log(ASPECT_FACTOR))):
        f = sized[i]
        reasons = []
        if abs(np.log(area[i] / median_area)) > np.log(SIZE_FACTOR):
            reasons.append(f"{area[i] / median_area:.3g}x the median area")
        if abs(np.log(aspect[i] / median_aspect)) > np.log(ASPECT_FACTOR):
            reasons.append(f"aspect {aspect[i]:.2f} vs median {median_aspect:.2f}")
        found.append({"path": f.path, "width": f.width, "height": f.height,
                      "reason": f"{f.width}x{f.height} (median {median_w:.0f}x{median_h:.0f}): " + ", ".join(reasons)})
    return found


def _probabilities(checkpoint: str | Path, recipe: Recipe, split: str, device: str | None,
                   progress: Any) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Softmax outputs of the checkpoint's model on ``split`` of ``recipe`` (evaluation pipeline of the
    checkpoint), a mask of the samples that could be read, and the class names."""
    from clsctl.data.datasets import build_dataset, exclude_replaced_samples
    from clsctl.data.loaders import build_loader
    from clsctl.engine.build import dataset_config, resolve_device
    from clsctl.engine.evaluate import run_evaluation
    from clsctl.engine.loading import load_model

    loaded = load_model(checkpoint)
    dataset = build_dataset(dataset_config(recipe, split), loaded.preprocessing.transform("uint8"))
    exclude_replaced_samples(dataset)
    if dataset.classes != loaded.class_names:
        raise ClsctlError(f"the {split} split's classes {dataset.classes[:10]} differ from the checkpoint's "
                          f"{loaded.class_names[:10]}")
    dev = resolve_device(device or recipe.runtime.device)
    loader = build_loader(dataset, recipe.data.loader, train=False)
    task = progress.add_task(f"predict {split}", total=len(dataset), status="")
    output = run_evaluation(loaded.module.to(dev), loader, dev, len(loaded.class_names),
                            inputs=loaded.preprocessing.device_input(), keep_scores=True,
                            progress=lambda n: progress.advance(task, n))
    if output.extra.get("multi_label"):
        raise ClsctlError("label-error ranking covers single-label checkpoints")
    return output.scores.numpy(), output.kept.numpy(), loaded.class_names


def _member(entry: _Entry, classes: dict[str, list[str]]) -> dict[str, Any]:
    names = classes[entry.split]
    label = entry.label
    label_name = ", ".join(names[i] for i in label) if isinstance(label, tuple) else names[label]
    return {"path": entry.path, "split": entry.split, "label": label_name}


def dataset_doctor(recipe: Recipe, phases: Sequence[str] = ("train", "val"), *,
                   checkpoint: str | Path | None = None, out: str | Path | None = "doctor",
                   threshold: int = DEFAULT_THRESHOLD, hash_kind: str = "phash", min_class_images: int = 5,
                   num_process: int | None = None, device: str | None = None, show_progress: bool = True) -> DoctorResult:
    """Examine the images of ``phases`` and write ``out/doctor.json`` and ``out/index.html``.

    Args:
        recipe: Validated recipe whose ``data.<phase>`` entries are examined.
        phases: Splits, in order; an image of a later split that has a copy in an earlier one is a leak.
        checkpoint: A trained checkpoint: rank likely label errors from its probabilities.
        out: Report folder (None: write nothing).
        threshold: Largest Hamming distance (bits of 64) at which two images count as near-duplicates.
        hash_kind: ``phash`` or ``dhash``.
        min_class_images: A class with fewer images is reported as small.
        num_process: Hashing worker processes (default: CPU count, at most 8).
        device: Where the checkpoint's model runs.
        show_progress: Draw progress bars.
    """
    phases = _checked_phases(phases, hash_kind, threshold, checkpoint)
    workers = num_process or min(8, os.cpu_count() or 1)
    datasets, skipped = _load_splits(recipe, phases)
    classes = {phase: list(d.classes) for phase, d in datasets.items()}
    entries = [_Entry(str(path), phase, target) for phase, d in datasets.items() for path, target in d.samples]
    paths = list(dict.fromkeys(e.path for e in entries))

    facts, probabilities, seconds = _scan(paths, datasets, phases, workers, recipe, checkpoint, device, show_progress)
    result = DoctorResult({p: split_stats(p, d, min_class_images) for p, d in datasets.items()}, len(paths),
                          skipped=skipped, seconds=seconds)
    result.unreadable = [BrokenFile(f.path, f.problem) for f in facts if f.problem]
    result.notes += _class_list_notes(classes, phases)
    sets = _join_look_alikes(facts, hash_kind, threshold)
    exact, near, leaks = _groups_and_leaks(entries, paths, facts, sets, classes, phases, hash_kind)
    outliers = size_outliers(facts)
    label_issues, issue_counts = _label_issues(probabilities, datasets)
    if "train" in label_issues:
        result.notes.append(IN_SAMPLE_NOTE)

    result.counts = {
        "unreadable": len(result.unreadable), "exact_groups": len(exact), "near_groups": len(near),
        "leaks": len(leaks), "size_outliers": len(outliers), "label_issues": issue_counts,
        "small_classes": sum(len(s.small_classes) for s in result.splits.values()),
    }
    result.exact_groups, result.near_groups, result.leaks = exact[:LISTED], near[:LISTED], leaks[:LISTED]
    result.size_outliers, result.label_issues = outliers[:LISTED], label_issues
    if out is not None:
        _write_outputs(result, Path(out), phases, threshold, hash_kind)
    return result


def _checked_phases(phases: Sequence[str], hash_kind: str, threshold: int, checkpoint: str | Path | None) -> list[str]:
    """The phases without repeats, once every argument of :func:`dataset_doctor` is known to be usable."""
    phases = list(dict.fromkeys(phases))
    bad = [p for p in phases if p not in ("train", "val", "test")]
    if bad or not phases:
        raise ClsctlError(f"phases must be train, val or test, got {', '.join(bad) or 'none'}")
    if hash_kind not in HASH_KINDS:
        raise ClsctlError(f"hash must be one of {', '.join(HASH_KINDS)}, got '{hash_kind}'")
    if not 0 <= threshold <= MAX_THRESHOLD:
        raise ClsctlError(f"threshold must be 0 to {MAX_THRESHOLD} bits, got {threshold}")
    if checkpoint is not None and not Path(checkpoint).is_file():
        raise ClsctlError(f"checkpoint not found: {checkpoint}")
    return phases


def _scan(paths: list[str], datasets: dict[str, Any], phases: list[str], workers: int, recipe: Recipe,
          checkpoint: str | Path | None, device: str | None,
          show_progress: bool) -> tuple[list[FileFacts], dict[str, Any], float]:
    """The slow part, under progress bars: every file's facts and (with a checkpoint) each single-label split's
    probabilities.

    Returns:
        The facts of ``paths``, probabilities per split (see :func:`_probabilities`), and the seconds hashing took.
    """
    from clsctl.engine.progress import make_progress

    started = time.perf_counter()
    with make_progress(show_progress) as progress:
        task = progress.add_task(f"hash {'+'.join(phases)}", total=len(paths), status=f"{workers} workers")
        facts = hash_files(paths, workers, lambda n: progress.advance(task, n))
        seconds = time.perf_counter() - started
        probabilities = {}
        if checkpoint is not None:
            for phase in phases:
                if datasets[phase].multi_label:
                    continue
                probabilities[phase] = _probabilities(checkpoint, recipe, phase, device, progress)
    return facts, probabilities, seconds


def _class_list_notes(classes: dict[str, list[str]], phases: list[str]) -> list[str]:
    """A note for each split whose class list differs from the first split's."""
    notes = []
    first = phases[0]
    for phase in phases[1:]:
        if classes[phase] != classes[first]:
            notes.append(f"the class lists of {first} and {phase} differ: "
                         f"only in {first}: {sorted(set(classes[first]) - set(classes[phase]))[:10]}, "
                         f"only in {phase}: {sorted(set(classes[phase]) - set(classes[first]))[:10]}")
    return notes


def _join_look_alikes(facts: Sequence[FileFacts], hash_kind: str, threshold: int) -> _UnionFind:
    """Sets of files (indices of ``facts``) joined when they have identical bytes, identical perceptual hashes,
    or hashes within ``threshold`` bits."""
    sets = _UnionFind(len(facts))
    by_digest: dict[str, list[int]] = {}
    for i, f in enumerate(facts):
        if f.digest:
            by_digest.setdefault(f.digest, []).append(i)
    for members in by_digest.values():
        for other in members[1:]:
            sets.union(members[0], other)
    hashed = np.array([i for i, f in enumerate(facts) if f.width > 0], dtype=np.int64)
    values = np.array([getattr(facts[i], hash_kind) for i in hashed], dtype=np.uint64)
    unique, inverse = np.unique(values, return_inverse=True)
    representative = np.full(len(unique), -1, dtype=np.int64)
    for position, u in enumerate(inverse.tolist()):
        if representative[u] < 0:
            representative[u] = hashed[position]
        else:
            sets.union(int(representative[u]), int(hashed[position]))
    for a, b, _ in near_pairs(unique, threshold):
        sets.union(int(representative[a]), int(representative[b]))
    return sets


def _groups_and_leaks(entries: list[_Entry], paths: list[str], facts: Sequence[FileFacts], sets: _UnionFind,
                      classes: dict[str, list[str]], phases: list[str],
                      hash_kind: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Groups of identical files, groups of look-alikes, and leaks (held-out samples with a copy or look-alike in
    an earlier split), each sorted most important first.

    Args:
        entries: Every sample of every split (a file may be in several).
        paths: The distinct files, in the order of ``facts`` and of the sets.
    """
    path_index = {p: i for i, p in enumerate(paths)}
    by_root: dict[int, list[int]] = {}
    for number, entry in enumerate(entries):
        by_root.setdefault(sets.find(path_index[entry.path]), []).append(number)
    hash_of = np.array([getattr(f, hash_kind) for f in facts], dtype=np.uint64)
    order = {phase: rank for rank, phase in enumerate(phases)}
    exact, near, leaks = [], [], []
    for members in by_root.values():
        if len(members) < 2:
            continue
        member_paths = [path_index[entries[m].path] for m in members]
        digests = {facts[p].digest for p in member_paths}
        listed = [_member(entries[m], classes) for m in members[:50]]
        group = {"members": listed, "size": len(members), "splits": sorted({entries[m].split for m in members},
                                                                           key=order.get)}
        if len(digests) == 1:
            exact.append({"digest": next(iter(digests)), **group})
        else:
            copies = Counter(facts[p].digest for p in member_paths)
            near.append({**group, "exact_subgroups": sum(1 for n in copies.values() if n > 1)})
        if len(group["splits"]) >= 2:
            leaks += _group_leaks(entries, members, member_paths, facts, hash_of, classes, order)
    exact.sort(key=lambda g: -g["size"])
    near.sort(key=lambda g: -g["size"])
    leaks.sort(key=lambda leak: (leak["distance"], leak["held_out"]["path"]))
    return exact, near, leaks


def _group_leaks(entries: list[_Entry], members: list[int], member_paths: list[int], facts: Sequence[FileFacts],
                 hash_of: np.ndarray, classes: dict[str, list[str]], order: dict[str, int]) -> list[dict[str, Any]]:
    """The leaks of one group spanning splits: each member with a member of an earlier split, its copy if there is
    one, else its nearest look-alike."""
    leaks = []
    for m, p in zip(members, member_paths):
        earlier = [(n, q) for n, q in zip(members, member_paths) if order[entries[n].split] < order[entries[m].split]]
        if not earlier:
            continue
        same = [(n, q) for n, q in earlier if facts[q].digest == facts[p].digest]
        if same:
            n, q = same[0]
            kind, distance = "exact", 0
        else:
            distances = hamming(hash_of[[q for _, q in earlier]], hash_of[p])
            n, q = earlier[int(np.argmin(distances))]
            kind, distance = "near", int(distances.min())
        leaks.append({"kind": kind, "distance": distance, "held_out": _member(entries[m], classes),
                      "earlier": _member(entries[n], classes)})
    return leaks


def _label_issues(probabilities: dict[str, Any],
                  datasets: dict[str, Any]) -> tuple[dict[str, list[dict[str, Any]]], int]:
    """Likely label errors per split from the checkpoint's probabilities (the first :data:`LISTED` of each), and
    how many were found in all."""
    label_issues: dict[str, list[dict[str, Any]]] = {}
    issue_counts = 0
    for phase, (probs, kept, names) in probabilities.items():
        from clsctl.analysis.label_issues import find_label_issues

        samples = datasets[phase].samples
        rows = np.flatnonzero(kept)
        labels = np.array([samples[r][1] for r in rows], dtype=np.int64)
        found = find_label_issues(labels, probs)
        issue_counts += len(found.indices)
        label_issues[phase] = [
            {"rank": rank, "path": samples[rows[i]][0], "given": names[labels[i]], "suggested": names[s],
             "p_given": float(probs[i, labels[i]]), "p_suggested": float(probs[i, s])}
            for rank, (i, s) in enumerate(zip(found.indices[:LISTED].tolist(), found.suggested[:LISTED].tolist()),
                                          start=1)]
    return label_issues, issue_counts


def _plot_class_counts(result: DoctorResult, out: Path) -> Path:
    from clsctl.analysis._draw import pyplot, save_figure

    plt = pyplot()
    names = list(dict.fromkeys(name for s in result.splits.values() for name in s.classes))
    fig, ax = plt.subplots(figsize=(min(max(6.0, 0.35 * len(names) + 2), 30.0), 3.6), dpi=100)
    width = 0.8 / max(len(result.splits), 1)
    for k, stats in enumerate(result.splits.values()):
        ax.bar(np.arange(len(names)) + k * width - 0.4 + width / 2, [stats.counts.get(n, 0) for n in names],
               width=width, label=f"{stats.split} ({stats.files})")
    if len(names) <= 60:
        ax.set_xticks(range(len(names)), labels=names, rotation=45 if len(names) > 6 else 0,
                      ha="right" if len(names) > 6 else "center")
    ax.set_ylabel("images")
    ax.set_title("images per class")
    ax.legend()
    fig.tight_layout()
    out = save_figure(fig, out)
    return out


def _write_outputs(result: DoctorResult, out: Path, phases: Sequence[str], threshold: int, hash_kind: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    result.json_path = out / "doctor.json"
    result.html_path = out / "index.html"
    counts_png = _plot_class_counts(result, out / "class_counts.png")
    data = result.to_dict()
    data["settings"] = {"phases": list(phases), "threshold": threshold, "hash": hash_kind,
                        "size_factor": SIZE_FACTOR, "aspect_factor": ASPECT_FACTOR}
    from clsctl.atomic import write_text_atomic

    write_text_atomic(result.json_path, json.dumps(data, indent=2))
    H.write_page(result.html_path, "clsctl dataset-doctor",
                 f"{' + '.join(phases)} · {result.files} files · {hash_kind} distance <= {threshold} bits",
                 _sections(result, counts_png))


def _thumb(path: str) -> str:
    uri = H.thumbnail_uri(path, 96)
    return H.img(uri, Path(path).name, "thumb") if uri else '<span class="bad">unreadable</span>'


def _sections(result: DoctorResult, counts_png: Path) -> list[str]:  # noqa: C901 - one block per section
    counts = result.counts
    verdict = ('<p class="bad" data-verdict="fail">leakage or unreadable files found (exit code 1)</p>' if result.failed
               else '<p class="ok" data-verdict="pass">no leakage, no unreadable files</p>')
    rows = [[H.cell(k.replace("_", " ")), H.cell(v, numeric=True, data_count=k)] for k, v in counts.items()]
    body = verdict + H.table(["finding", "count"], rows, numeric=[False, True], table_id="counts")
    body += "".join(f'<p class="warn">{H.esc(n)}</p>' for n in result.notes)
    body += f'<p class="note">hashing pass: {result.seconds:.1f} s for {result.files} files</p>'
    sections = {"summary": H.section("Summary", body, "summary")}

    def paths_list(items: list[dict[str, Any]]) -> str:
        return "<br>".join(f"{H.esc(m['split'])}: {H.esc(m['path'])} ({H.esc(m['label'])})" for m in items)

    rows = [[H.cell(f"{_thumb(leak['held_out']['path'])} {_thumb(leak['earlier']['path'])}", raw=True),
             H.cell(leak["kind"]), H.cell(leak["distance"], numeric=True),
             H.cell(paths_list([leak["held_out"], leak["earlier"]]), raw=True)] for leak in result.leaks[:100]]
    body = (H.folded_table(["held-out | earlier split", "kind", "bits apart", "files"], rows, sortable=True,
                    numeric=[False, False, True, False], table_id="leaks") if rows
            else '<p class="ok">no image of a later split has a copy in an earlier one</p>')
    if counts["leaks"] > 100:
        body += f'<p class="note">the first 100 of {counts["leaks"]} shown; doctor.json lists {len(result.leaks)}</p>'
    sections["leakage"] = H.section(f"Leakage across splits ({counts['leaks']})", body, "leakage")

    body = ""
    for title, groups in (("exact duplicates (same bytes)", result.exact_groups),
                          ("near-duplicates (look alike)", result.near_groups)):
        body += f"<h3>{title}: {len(groups)}</h3>"
        rows = [[H.cell(" ".join(_thumb(m["path"]) for m in g["members"][:6]), raw=True),
                 H.cell(g["size"], numeric=True), H.cell(", ".join(g["splits"])),
                 H.cell(paths_list(g["members"][:10]) + ("<br>..." if g["size"] > 10 else ""), raw=True)]
                for g in groups[:50]]
        body += H.folded_table(["images", "files", "splits", "paths"], rows, numeric=[False, True, False, False]) \
            if rows else '<p class="ok">none</p>'
    sections["duplicates"] = H.section("Duplicates", body, "duplicates")

    body = H.figure_file(counts_png, "images per class")
    for stats in result.splits.values():
        imbalance = f"{stats.imbalance:.2f}" if stats.imbalance is not None else "a class has no images"
        body += (f'<p><b>{H.esc(stats.split)}</b>: {stats.files} images, {len(stats.classes)} classes, imbalance '
                 f'(largest / smallest) <span data-imbalance="{H.esc(stats.split)}">{imbalance}</span></p>')
        if stats.small_classes:
            body += '<p class="warn">small classes: ' + ", ".join(
                f"{H.esc(n)} ({c})" for n, c in stats.small_classes) + "</p>"
    rows = [[H.cell(name)] + [H.cell(s.counts.get(name, 0), numeric=True) for s in result.splits.values()]
            for name in dict.fromkeys(n for s in result.splits.values() for n in s.classes)]
    body += H.table(["class", *result.splits], rows, sortable=True,
                    numeric=[False] + [True] * len(result.splits), table_id="class-counts")
    sections["classes"] = H.section("Classes", body, "classes")

    rows = [[H.cell(b.path), H.cell(b.reason)] for b in result.unreadable]
    body = H.table(["file", "reason"], rows, table_id="unreadable") if rows else '<p class="ok">every file decodes</p>'
    if result.skipped:
        body += "<h3>ignored by the loader</h3>" + H.table(["file", "reason"],
                                                          [[H.cell(b.path), H.cell(b.reason)] for b in result.skipped])
    sections["unreadable"] = H.section(f"Unreadable files ({counts['unreadable']})", body, "unreadable")

    rows = [[H.cell(_thumb(o["path"]), raw=True), H.cell(o["path"]), H.cell(o["reason"])]
            for o in result.size_outliers[:100]]
    body = (H.folded_table(["image", "file", "why"], rows) if rows
            else '<p class="ok">no image far off the median size or aspect ratio</p>')
    sections["sizes"] = H.section(f"Size and aspect outliers ({counts['size_outliers']})", body, "sizes")

    if result.label_issues:
        body = ""
        for split, issues in result.label_issues.items():
            body += f"<h3>{H.esc(split)}: {len(issues)}</h3>"
            rows = [[H.cell(i["rank"], numeric=True), H.cell(_thumb(i["path"]), raw=True), H.cell(i["given"]),
                     H.cell(i["suggested"]), H.cell(f"{i['p_given']:.3f}", numeric=True),
                     H.cell(f"{i['p_suggested']:.3f}", numeric=True), H.cell(i["path"])] for i in issues[:100]]
            headers = ["rank", "image", "given label", "suggested", "p(given)", "p(suggested)", "file"]
            body += H.folded_table(headers, rows, sortable=True, numeric=[True, False, False, False, True, True, False]) \
                if rows else '<p class="ok">none found</p>'
        body += ('<p class="note">confident learning (per-class thresholds on the predicted probabilities, as '
                 'cleanlab\'s find_label_issues with filter_by="confident_learning"), ranked by the probability of '
                 'the given label</p>')
        sections["labels"] = H.section(f"Likely label errors ({counts['label_issues']})", body, "labels")
    order = ("summary", "leakage", "unreadable", "labels", "duplicates", "classes", "sizes")  # most urgent first
    return [sections[name] for name in order if name in sections]
