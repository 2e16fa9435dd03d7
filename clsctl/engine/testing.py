"""``evaluate``: test a checkpoint on a dataset, with per-class metrics and per-sample predictions."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clsctl.data.datasets import build_dataset, exclude_replaced_samples
from clsctl.data.loaders import build_loader
from clsctl.engine.build import dataset_config, model_from_checkpoint, resolve_device, transform_from_preprocessing
from clsctl.engine.evaluation import run_evaluation
from clsctl.engine.progress import make_progress
from clsctl.errors import ClsctlError
from clsctl.recipe import apply_override, validate_recipe


@dataclass
class EvalResult:
    """Metrics of a test run."""

    metrics: dict[str, float]
    class_names: list[str]
    per_class: dict[str, Any]
    confusion: list[list[int]]
    num_samples: int
    predictions: list[dict[str, Any]] | None = None
    excluded: int = 0  # unreadable images left out of the metrics and predictions


def evaluate(checkpoint: str | Path, *, split: str = "test", data_root: str | Path | None = None,
             overrides: tuple[str, ...] | list[str] = (), device: str | None = None, batch_size: int | None = None,
             out: str | Path | None = None, topk: int = 5, show_progress: bool = True) -> EvalResult:
    """Evaluate a checkpoint on a split of its own recipe (or another folder).

    Args:
        checkpoint: A clsctl checkpoint.
        split: ``test`` (falls back to ``val``), ``val`` or ``train``.
        data_root: Test on this image folder (same class names) instead of the split's dataset.
        overrides: ``--set`` strings applied to the embedded recipe.
        device: ``auto``, ``cpu``, ``cuda``.
        batch_size: Override the recipe's batch size.
        out: Write per-sample predictions (JSON) here.
        topk: Predictions kept per sample in ``out``.
        show_progress: Draw a progress bar.
    """
    loaded = model_from_checkpoint(checkpoint)
    recipe_data = loaded.recipe.to_dict()
    for assignment in overrides:
        apply_override(recipe_data, assignment)
    if data_root is not None:
        # The split's dataset (``test`` falls back to ``val``) becomes that image folder. Only an image
        # folder's class list carries over; any other layout or a wrapper (repeat, kfold, ...) is replaced.
        data = recipe_data["data"]
        key = "val" if split == "test" and data.get("test") is None else split
        entry: dict[str, Any] = {"type": "image_folder", "root": str(data_root)}
        old = data.get(key) or {}
        if old.get("type") == "image_folder" and old.get("classes") is not None:
            entry["classes"] = old["classes"]
        data[key] = entry
    if batch_size is not None:
        recipe_data["data"]["loader"]["batch_size"] = batch_size
    recipe = validate_recipe(recipe_data, source=str(checkpoint))
    dataset = build_dataset(dataset_config(recipe, split), transform_from_preprocessing(loaded.preprocessing),
                            on_bad_image=recipe.data.on_bad_image)
    exclude_replaced_samples(dataset)
    if dataset.classes != loaded.class_names:
        raise ClsctlError(f"dataset classes {dataset.classes} differ from the checkpoint's {loaded.class_names}")
    dev = resolve_device(device or recipe.runtime.device)
    loader = build_loader(dataset, recipe.data.loader, train=False, pin_memory=dev.type == "cuda")
    model = loaded.model.to(dev)
    with make_progress(show_progress) as progress:
        task = progress.add_task("test", total=len(dataset), status="")
        result = run_evaluation(model, loader, dev, len(loaded.class_names), keep_scores=out is not None,
                                progress=lambda n: progress.advance(task, n))
    predictions = None
    if out is not None:
        predictions = []
        k = min(topk, len(loaded.class_names))
        top = result.scores.topk(k, dim=1)
        names = loaded.class_names
        multi_label = result.extra.get("multi_label", False)
        kept = result.kept.tolist()
        samples = [sample for sample, keep in zip(dataset.samples, kept) if keep]
        excluded = [path for (path, _), keep in zip(dataset.samples, kept) if not keep]
        for row, ((path, label), scores, indices) in enumerate(zip(samples, top.values.tolist(),
                                                                  top.indices.tolist())):
            entry: dict[str, Any] = {"path": path}
            if multi_label:  # label is a tuple of class indices; scores are independent sigmoids
                entry.update({"labels": list(label), "label_names": [names[i] for i in label],
                              "pred_labels": [i for i, s in enumerate(result.scores[row].tolist()) if s >= 0.5]})
            else:
                entry.update({"label": label, "label_name": names[label], "pred": indices[0],
                              "pred_name": names[indices[0]], "score": scores[0]})
            entry["topk"] = [{"class": i, "name": names[i], "score": s} for i, s in zip(indices, scores)]
            predictions.append(entry)
        payload = {"checkpoint": str(checkpoint), "class_names": loaded.class_names, "metrics": result.metrics,
                   "predictions": predictions, "scores": result.scores.tolist(),
                   "excluded": excluded}
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(payload), encoding="utf-8")
    return EvalResult(result.metrics, loaded.class_names, result.per_class, result.confusion,
                      len(dataset) - result.excluded, predictions, result.excluded)
