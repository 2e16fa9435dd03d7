"""``predict``: top-k classes for image files, from a checkpoint or a registered model."""

from __future__ import annotations

import glob
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from clsctl.data.datasets import IMG_EXTENSIONS
from clsctl.data.imagenet_classes import imagenet_class_names  # noqa: F401  (re-exported, tests use it)
from clsctl.engine.inference import DEFAULT_MODEL  # noqa: F401  (re-exported)
from clsctl.errors import ClsctlError, DataError

logger = logging.getLogger("clsctl")


@dataclass
class Prediction:
    """Top-k classes of one image: ``(class index, class name, probability)`` best first."""

    path: str
    topk: list[tuple[int, str, float]]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"path": self.path, "topk": [{"class": i, "name": n, "probability": p} for i, n, p in self.topk]}


def expand_images(sources: Iterable[str | Path]) -> list[Path]:
    """Image files named by paths, folders (searched recursively) and glob patterns, in order, without repeats."""
    found: list[Path] = []
    for source in sources:
        text = str(source)
        path = Path(text)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMG_EXTENSIONS and p.is_file())
            if not files:
                raise DataError(f"{path} is a folder without images ({', '.join(IMG_EXTENSIONS)})")
            found += files
        elif path.exists():
            found.append(path)
        elif any(ch in text for ch in "*?["):
            matches = sorted(Path(p) for p in glob.glob(text, recursive=True))
            files = [p for p in matches if p.is_file() and p.suffix.lower() in IMG_EXTENSIONS]
            if not files:
                raise DataError(f"no images match {text}")
            found += files
        else:
            raise DataError(f"image not found: {text}")
    if not found:
        raise DataError("no images to predict")
    return list(dict.fromkeys(found))


@torch.no_grad()
def predict(images: Sequence[str | Path], *, checkpoint: str | Path | None = None, model: str | None = None,
            weights: str | Path | None = None, pretrained: bool = False, num_classes: int | None = None,
            topk: int = 5, device: str | None = None, batch_size: int = 32) -> list[Prediction]:
    """Classify images.

    Args:
        images: Files, folders or glob patterns.
        checkpoint: A clsctl checkpoint (carries class names and preprocessing).
        model: A registered model name, used when no checkpoint is given; neither: :data:`DEFAULT_MODEL`
            with its ImageNet weights.
        weights: Weights file for ``model``.
        pretrained: Published ImageNet weights for ``model`` (ImageNet class names are printed).
        num_classes: Classifier size for ``model``.
        topk: Classes reported per image.
        device: ``auto``, ``cpu``, ``cuda``.
        batch_size: Images per forward pass.
    """
    from clsctl.engine.inference import load_from_options
    from clsctl.readers import read_image

    paths = expand_images(images)
    if checkpoint is not None and num_classes is not None:
        raise ClsctlError("--num-classes goes with --model, not --checkpoint")
    loaded = load_from_options(checkpoint=checkpoint, model=model, weights=weights, pretrained=pretrained,
                               num_classes=num_classes, device=device)
    net, names, transform, dev = loaded.model, loaded.class_names, loaded.transform, loaded.device
    k = min(topk, len(names))
    results: list[Prediction] = []
    for start in range(0, len(paths), batch_size):
        chunk = paths[start : start + batch_size]
        tensors = []
        for path in chunk:
            tensors.append(transform(read_image(path)))
        logits = net(torch.stack(tensors).to(dev)).float()
        # Multi-label models score each class on its own (sigmoid); the others share one softmax.
        probs = (logits.sigmoid() if loaded.multi_label else logits.softmax(1)).cpu()
        top = probs.topk(k, dim=1)
        for path, values, indices in zip(chunk, top.values.tolist(), top.indices.tolist()):
            results.append(Prediction(str(path), [(i, names[i], v) for i, v in zip(indices, values)]))
    return results
