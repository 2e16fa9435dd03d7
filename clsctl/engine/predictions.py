"""The predictions file: what ``clsctl test --out`` writes and ``analyze-results``, ``confusion-matrix`` and
``eval-metric`` read, with its one writer and its one reader.

The file is a JSON object:

- ``checkpoint`` or ``model``: what was tested (path or name);
- ``class_names``: the model's classes;
- ``tta``: the test-time augmentation (None without);
- ``metrics``: what ``clsctl test`` reported;
- ``predictions``: one record per sample, in dataset order: ``path``, then single-label ``label``,
  ``label_name``, ``pred``, ``pred_name``, ``score`` (of ``pred``), or multi-label ``labels``,
  ``label_names``, ``pred_labels`` (scores of at least 0.5); then ``topk``: ``[{class, name, score}]``
  best first;
- ``scores``: ``N x C`` probabilities (softmax, or sigmoids for multi-label models);
- ``excluded``: paths of samples left out (a replaced bad image).

Only ``predictions`` is required to read a file (hand-made files and those of older versions have fewer keys);
what each reader needs besides is checked where it is needed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clsctl.errors import ClsctlError
from clsctl.jsonfile import read_json_file

MULTI_LABEL_THRESHOLD = 0.5  # a multi-label record's pred_labels: classes scored at least this


@dataclass
class PredictionsFile:
    """Contents of a predictions file.

    Attributes:
        records: One dict per sample (see the module docstring).
        class_names: The model's classes; None when the file has none.
        scores: ``N x C`` probabilities; None when the file has none.
        source: ``{"checkpoint": path}`` or ``{"model": name}``; empty when unknown.
        tta: Test-time augmentation of the run.
        metrics: Metrics of the run.
        excluded: Paths of samples left out.
    """

    records: list[dict[str, Any]]
    class_names: list[str] | None = None
    scores: list[list[float]] | None = None
    source: dict[str, str] = field(default_factory=dict)
    tta: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    excluded: list[str] = field(default_factory=list)

    @property
    def multi_label(self) -> bool:
        """Whether the records are multi-label (``labels`` lists instead of one ``label``)."""
        return bool(self.records) and isinstance(self.records[0], dict) and "labels" in self.records[0]

    def to_dict(self) -> dict[str, Any]:
        """The JSON document, keys in the file's order."""
        return {**self.source, "class_names": self.class_names, "tta": self.tta, "metrics": self.metrics,
                "predictions": self.records, "scores": self.scores, "excluded": self.excluded}


def prediction_records(paths: Sequence[str], targets: Sequence[Any], scores: Any, class_names: Sequence[str], *,
                       multi_label: bool, topk: int) -> list[dict[str, Any]]:
    """One record per sample from its path, target and scores.

    Args:
        paths: Image paths.
        targets: Class indices, or multi-hot rows (``1``: present, ``-1``: ignored) for multi-label data.
        scores: ``N x C`` probability tensor.
        class_names: Names of the ``C`` classes.
        multi_label: Whether ``targets`` are multi-hot rows.
        topk: Classes listed per record.
    """
    k = min(topk, len(class_names))
    top = scores.topk(k, dim=1)
    records = []
    for row, (path, label, values, indices) in enumerate(zip(paths, targets, top.values.tolist(),
                                                             top.indices.tolist())):
        record: dict[str, Any] = {"path": path}
        if multi_label:
            labels = [i for i, t in enumerate(label) if t == 1]
            record.update({"labels": labels, "label_names": [class_names[i] for i in labels],
                           "pred_labels": [i for i, s in enumerate(scores[row].tolist())
                                           if s >= MULTI_LABEL_THRESHOLD]})
        else:
            record.update({"label": label, "label_name": class_names[label], "pred": indices[0],
                           "pred_name": class_names[indices[0]], "score": values[0]})
        record["topk"] = [{"class": i, "name": class_names[i], "score": s} for i, s in zip(indices, values)]
        records.append(record)
    return records


def write_predictions(path: str | Path, predictions: PredictionsFile) -> Path:
    """Write ``predictions`` as JSON (parent folders made as needed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(predictions.to_dict()), encoding="utf-8")
    return path


def write_topk_list(path: str | Path, entries: Sequence[dict[str, Any]]) -> Path:
    """Write what ``clsctl infer --out`` saves: a JSON list of ``{path, topk}`` entries, one per image (no
    labels, so not a predictions file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(list(entries), indent=2) + "\n", encoding="utf-8")
    return path


def read_predictions(path: str | Path, *, need_class_names: bool = False,
                     allow_empty: bool = True) -> PredictionsFile:
    """Read a predictions file.

    Args:
        path: The JSON file.
        need_class_names: Refuse a file without ``class_names``.
        allow_empty: Accept an empty ``predictions`` list.

    Raises:
        ClsctlError: Missing, not JSON, not a JSON object with a ``predictions`` list, or without what is needed.
    """
    path = Path(path)
    data = read_json_file(path, what="predictions file")
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
    return PredictionsFile(list(records), None if names is None else [str(n) for n in names], data.get("scores"),
                           source, data.get("tta"), dict(data.get("metrics") or {}), list(data.get("excluded") or []))


def check_records(predictions: PredictionsFile, path: str | Path, keys: Sequence[str]) -> None:
    """Refuse records without each of ``keys``.

    Raises:
        ClsctlError: Names the first record that lacks some, and which.
    """
    for index, record in enumerate(predictions.records):
        missing = [k for k in keys if not isinstance(record, dict) or k not in record]
        if missing:
            raise ClsctlError(f"{path}: prediction {index} lacks {', '.join(missing)}")


@dataclass
class PredictionTensors:
    """A predictions file as tensors, for computing metrics.

    Attributes:
        class_names: Class names (``"0"``, ``"1"``, ... when the file has none).
        multi_label: Whether targets are multi-hot.
        targets: ``(N,)`` long, or ``(N, C)`` 0/1 for multi-label.
        preds: ``(N,)`` long (single-label): the file's ``pred``, else the argmax of ``scores``.
        scores: ``(N, C)`` float64, when the file has ``scores``.
    """

    class_names: list[str]
    multi_label: bool
    targets: Any
    preds: Any | None
    scores: Any | None


def read_prediction_tensors(path: str | Path) -> PredictionTensors:
    """Read a (non-empty) predictions file as tensors, checking labels, predictions and scores fit the classes.

    Raises:
        ClsctlError: As :func:`read_predictions`, or labels/predictions/scores that do not fit.
    """
    import torch

    path = Path(path)
    saved = read_predictions(path, allow_empty=False)
    try:
        scores = torch.tensor(saved.scores, dtype=torch.float64) if saved.scores is not None else None
    except (TypeError, ValueError) as exc:
        raise ClsctlError(f"{path}: 'scores' must be an N x C table of numbers ({exc})") from exc
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
        raise ClsctlError(f"{path}: predictions need 'pred' or the file needs 'scores'")
    indices = [] if saved.multi_label else [targets, *([preds] if preds is not None else [])]
    if any(int(t.min()) < 0 or int(t.max()) >= num_classes for t in indices):
        raise ClsctlError(f"{path}: a label or prediction is outside 0..{num_classes - 1}")
    return PredictionTensors(list(names or [str(i) for i in range(num_classes)]), saved.multi_label, targets, preds,
                             scores)


def _targets_and_preds(saved: PredictionsFile, path: Path, num_classes: int | None) -> tuple[Any, Any, int]:
    """Targets, predictions (None when not every record has ``pred``) and the class count of the records."""
    import torch

    from clsctl.engine.metrics import multi_hot

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
