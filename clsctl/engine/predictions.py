"""The predictions file: what ``clsctl test --out`` and ``clsctl infer --out`` write and ``eval-metric``,
``analyze-results``, ``confusion-matrix`` and ``report`` read, with its one writer and its one reader.

Two files, written atomically:

- ``NAME.json``, for people: ``format`` (``clsctl-predictions``), ``version`` (2), ``checkpoint`` or ``model``
  (what ran), ``class_names``, ``multi_label``, ``tta``, ``preprocessing``, ``metrics`` (what ``test``
  reported; empty for ``infer``), ``scores_file`` with ``scores_shape``, ``excluded`` (unreadable images left
  out) and ``predictions``: one record per image, in order: ``path``; for ``test`` the truth (single-label
  ``label``, ``label_name``; multi-label ``labels``, ``label_names``); the prediction (``pred``, ``pred_name``,
  ``probability``; multi-label ``pred_labels``: classes scored at least 0.5); and ``topk``:
  ``[{class, name, probability}]`` best first;
- ``NAME.scores.npy`` beside it: every image's ``C`` probabilities (softmax, or sigmoids for multi-label
  models) as an ``N x C`` float32 array (``numpy.load``, no pickle): 4 bytes a score, so ImageNet's val set is
  200 MB instead of a gigabyte of JSON text.

Files of version 1 (scores inline as ``scores``, ``score`` where ``probability`` is now) and hand-made files
with only ``predictions`` are read too; what each reader needs besides is checked where it is needed.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from clsctl.errors import ClsctlError

FORMAT, VERSION = "clsctl-predictions", 2
SCORES_SUFFIX = ".scores.npy"
MULTI_LABEL_THRESHOLD = 0.5  # a multi-label record's pred_labels: classes scored at least this


@dataclass
class PredictionsFile:
    """Contents of a predictions file.

    Attributes:
        records: One dict per image (see the module docstring).
        class_names: The model's classes; None when the file has none.
        scores: ``N x C`` probabilities (array or tensor); None when the file has none.
        source: ``{"checkpoint": path}`` or ``{"model": name}``; empty when unknown.
        tta: Test-time augmentation of the run.
        metrics: Metrics of the run.
        excluded: Paths of images left out.
        preprocessing: The preprocessing that ran (its ``to_dict`` form); empty when unknown.
    """

    records: list[dict[str, Any]]
    class_names: list[str] | None = None
    scores: Any = None
    source: dict[str, str] = field(default_factory=dict)
    tta: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    excluded: list[str] = field(default_factory=list)
    preprocessing: dict[str, Any] = field(default_factory=dict)

    @property
    def multi_label(self) -> bool:
        """Whether the records are multi-label (``labels`` lists instead of one ``label``)."""
        return bool(self.records) and isinstance(self.records[0], dict) and "labels" in self.records[0]

    @property
    def has_labels(self) -> bool:
        """Whether the records hold the true classes (``test`` writes them, ``infer`` cannot)."""
        return any(isinstance(r, dict) and ("label" in r or "labels" in r) for r in self.records)

    def score_array(self) -> np.ndarray | None:
        """``scores`` as an ``N x C`` float32 NumPy array (None without scores)."""
        if self.scores is None:
            return None
        scores = self.scores.detach().cpu().numpy() if hasattr(self.scores, "detach") else self.scores
        return np.asarray(scores, dtype=np.float32)


def prediction_records(paths: Sequence[str], scores: Any, class_names: Sequence[str], *,
                       targets: Sequence[Any] | None = None, multi_label: bool, topk: int) -> list[dict[str, Any]]:
    """One record per image from its path, scores and (for ``test``) target.

    Args:
        paths: Image paths.
        scores: ``N x C`` probability tensor.
        class_names: Names of the ``C`` classes.
        targets: Class indices, or multi-hot rows (``1``: present, ``-1``: ignored) for multi-label data; None
            for images without labels (``infer``).
        multi_label: Whether the scores are independent per class.
        topk: Classes listed per record.
    """
    k = min(topk, len(class_names))
    top = scores.topk(k, dim=1)
    records = []
    labels = targets if targets is not None else [None] * len(paths)
    for row, (path, label, values, indices) in enumerate(zip(paths, labels, top.values.tolist(),
                                                             top.indices.tolist())):
        record: dict[str, Any] = {"path": path}
        if multi_label:
            if label is not None:
                present = [i for i, t in enumerate(label) if t == 1]
                record.update({"labels": present, "label_names": [class_names[i] for i in present]})
            record["pred_labels"] = [i for i, s in enumerate(scores[row].tolist()) if s >= MULTI_LABEL_THRESHOLD]
        else:
            if label is not None:
                record.update({"label": label, "label_name": class_names[label]})
            record.update({"pred": indices[0], "pred_name": class_names[indices[0]], "probability": values[0]})
        record["topk"] = [{"class": i, "name": class_names[i], "probability": s} for i, s in zip(indices, values)]
        records.append(record)
    return records


def scores_path(path: str | Path) -> Path:
    """The scores file beside a predictions file: ``out/predictions.json`` -> ``out/predictions.scores.npy``."""
    path = Path(path)
    stem = path.name[: -len(path.suffix)] if path.suffix.lower() == ".json" else path.name
    return path.with_name(stem + SCORES_SUFFIX)


def write_predictions(path: str | Path, predictions: PredictionsFile) -> Path:
    """Write the JSON file and its scores file, each atomically (parent folders made as needed)."""
    from clsctl.atomic import write_bytes_atomic, write_text_atomic

    path = Path(path)
    scores = predictions.score_array()
    document: dict[str, Any] = {"format": FORMAT, "version": VERSION, **predictions.source,
                                "class_names": predictions.class_names, "multi_label": predictions.multi_label,
                                "tta": predictions.tta, "preprocessing": predictions.preprocessing,
                                "metrics": predictions.metrics, "scores_file": None, "scores_shape": None,
                                "excluded": predictions.excluded, "predictions": predictions.records}
    if scores is not None:
        sidecar = scores_path(path)
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(scores, dtype=np.float32), allow_pickle=False)
        write_bytes_atomic(sidecar, buffer.getvalue())
        document.update(scores_file=sidecar.name, scores_shape=list(scores.shape))
    write_text_atomic(path, json.dumps(document, indent=1, ensure_ascii=False) + "\n")
    return path


def read_predictions(path: str | Path, *, need_class_names: bool = False, allow_empty: bool = True,
                     need_scores: bool = False) -> PredictionsFile:
    """Read a predictions file (and its scores file).

    Args:
        path: The JSON file.
        need_class_names: Refuse a file without ``class_names``.
        allow_empty: Accept an empty ``predictions`` list.
        need_scores: Read the scores (from the scores file, or inline in a version-1 file); without it they
            are read only when present.

    Raises:
        ClsctlError: Missing, not JSON, not a JSON object with a ``predictions`` list, a missing or
            mismatched scores file, or without what is needed.
    """
    from clsctl.readers import read_json

    path = Path(path)
    data = read_json(path, what="predictions file")
    hint = f"(write one with `clsctl test CKPT --out {path.name}`)"
    records = data.get("predictions") if isinstance(data, dict) else None
    if not isinstance(records, list):
        raise ClsctlError(f"{path} is not a predictions file: expected a 'predictions' list {hint}")
    if not records and not allow_empty:
        raise ClsctlError(f"{path} is not a predictions file: its 'predictions' list is empty {hint}")
    if need_class_names and data.get("class_names") is None:
        raise ClsctlError(f"{path} is not a predictions file: expected 'class_names' {hint}")
    source = {key: str(data[key]) for key in ("checkpoint", "model") if data.get(key) is not None}
    names = data.get("class_names")
    scores = _read_scores(path, data, len(records))
    if need_scores and scores is None:
        raise ClsctlError(f"{path} has no scores (write it with `clsctl test --out`, which saves them)")
    return PredictionsFile([_current(r) for r in records], None if names is None else [str(n) for n in names],
                           scores, source, data.get("tta"), dict(data.get("metrics") or {}),
                           list(data.get("excluded") or []), dict(data.get("preprocessing") or {}))


def _current(record: Any) -> Any:
    """A version-1 record in today's keys (``score`` -> ``probability``, in ``topk`` too)."""
    if not isinstance(record, dict):
        return record
    if "score" in record and "probability" not in record:
        record = {**record, "probability": record["score"]}
    if isinstance(record.get("topk"), list):
        record["topk"] = [{**t, "probability": t["score"]} if isinstance(t, dict) and "score" in t
                          and "probability" not in t else t for t in record["topk"]]
    return record


def _read_scores(path: Path, data: dict[str, Any], count: int) -> np.ndarray | None:
    """The scores of a predictions file: its scores file (a plain name beside it), or inline ``scores``."""
    name = data.get("scores_file")
    if name is None:
        inline = data.get("scores")
        if inline is None:
            return None
        try:
            scores = np.asarray(inline, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ClsctlError(f"{path}: 'scores' must be an N x C table of numbers ({exc})") from None
    else:
        if not isinstance(name, str) or Path(name).name != name or not name.endswith(".npy"):
            raise ClsctlError(f"{path}: 'scores_file' must be the name of a .npy file beside it (got {name!r})")
        sidecar = path.with_name(name)
        try:
            scores = np.load(sidecar, mmap_mode="r", allow_pickle=False)
        except FileNotFoundError:
            raise ClsctlError(f"{path}: its scores file {sidecar} is missing (keep the two files together)") from None
        except (OSError, ValueError) as exc:
            raise ClsctlError(f"{sidecar} is not a NumPy array file ({exc})") from None
    if scores.ndim != 2 or scores.shape[0] != count:
        raise ClsctlError(f"{path}: the scores are {tuple(scores.shape)}, expected ({count}, number of classes)")
    return scores


def check_records(predictions: PredictionsFile, path: str | Path, keys: Sequence[str]) -> None:
    """Refuse records without each of ``keys``.

    Raises:
        ClsctlError: Names the first record that lacks some, and which; a file without true labels says it
            comes from ``infer``.
    """
    if any(k in ("label", "labels") for k in keys) and predictions.records and not predictions.has_labels:
        raise ClsctlError(f"{path} holds predictions without true labels (`clsctl infer --out` writes those); "
                          f"this needs the labels `clsctl test CKPT --out FILE` writes")
    for index, record in enumerate(predictions.records):
        missing = [k for k in keys if not isinstance(record, dict) or k not in record]
        if missing:
            raise ClsctlError(f"{path}: prediction {index} lacks {', '.join(missing)}")


def multi_hot(labels: Sequence[Sequence[int]], num_classes: int) -> Any:
    """``(N, C)`` 0/1 long tensor from lists of label indices."""
    import torch

    out = torch.zeros(len(labels), num_classes, dtype=torch.long)
    for row, indices in enumerate(labels):
        if indices:
            out[row, list(indices)] = 1
    return out


@dataclass
class PredictionTensors:
    """A predictions file as tensors, for computing metrics.

    Attributes:
        class_names: Class names (``"0"``, ``"1"``, ... when the file has none).
        multi_label: Whether targets are multi-hot.
        targets: ``(N,)`` long, or ``(N, C)`` 0/1 for multi-label.
        preds: ``(N,)`` long (single-label): the file's ``pred``, else the argmax of ``scores``.
        scores: ``(N, C)`` float64, when the file has scores.
    """

    class_names: list[str]
    multi_label: bool
    targets: Any
    preds: Any | None
    scores: Any | None


def read_prediction_tensors(path: str | Path) -> PredictionTensors:
    """Read a (non-empty) predictions file with true labels as tensors, checking labels, predictions and scores
    fit the classes.

    Raises:
        ClsctlError: As :func:`read_predictions`, no true labels, or labels/predictions/scores that do not fit.
    """
    import torch

    path = Path(path)
    saved = read_predictions(path, allow_empty=False)
    check_records(saved, path, ("labels",) if saved.multi_label else ("label",))
    scores = torch.from_numpy(np.array(saved.scores, dtype=np.float64)) if saved.scores is not None else None
    names = saved.class_names
    num_classes = len(names) if names else scores.shape[1] if scores is not None else None
    try:
        targets, preds, num_classes = _targets_and_preds(saved, path, num_classes)
    except (KeyError, TypeError, ValueError) as exc:
        key = "labels" if saved.multi_label else "label"
        raise ClsctlError(f"{path}: every prediction needs an integer '{key}' ({exc!r})") from exc
    if scores is not None and tuple(scores.shape) != (len(saved.records), num_classes):
        raise ClsctlError(f"{path}: 'scores' is {tuple(scores.shape)}, expected ({len(saved.records)}, "
                          f"{num_classes})")
    if not saved.multi_label and preds is None and scores is not None:
        preds = scores.argmax(1)
    if not saved.multi_label and preds is None:
        raise ClsctlError(f"{path}: predictions need 'pred' or the file needs scores")
    indices = [] if saved.multi_label else [targets, *([preds] if preds is not None else [])]
    if any(int(t.min()) < 0 or int(t.max()) >= num_classes for t in indices):
        raise ClsctlError(f"{path}: a label or prediction is outside 0..{num_classes - 1}")
    return PredictionTensors(list(names or [str(i) for i in range(num_classes)]), saved.multi_label, targets, preds,
                             scores)


def _targets_and_preds(saved: PredictionsFile, path: Path, num_classes: int | None) -> tuple[Any, Any, int]:
    """Targets, predictions (None when not every record has ``pred``) and the class count of the records."""
    import torch

    items = saved.records
    if saved.multi_label:
        labels = [[int(i) for i in item["labels"]] for item in items]
        if num_classes is None:
            num_classes = 1 + max((max(ls) for ls in labels if ls), default=0)
        if any(not 0 <= i < num_classes for ls in labels for i in ls):
            raise ClsctlError(f"{path}: a label is outside 0..{num_classes - 1}")
        return multi_hot(labels, num_classes), None, num_classes
    targets = torch.tensor([int(item["label"]) for item in items])
    has_pred = all("pred" in item for item in items)
    preds = torch.tensor([int(item["pred"]) for item in items]) if has_pred else None
    if num_classes is None:
        num_classes = 1 + int(max(targets.max(), preds.max() if preds is not None else 0))
    return targets, preds, num_classes
