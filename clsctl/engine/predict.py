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
from clsctl.data.imagenet_classes import imagenet_class_names
from clsctl.errors import ClsctlError, DataError

logger = logging.getLogger("clsctl")

DEFAULT_MODEL = "resnet50"
"""The model used, with its published ImageNet weights, when neither a checkpoint nor a model name is given."""


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


def choose_model(checkpoint: str | Path | None, model: str | None, weights: str | Path | None,
                 pretrained: bool) -> tuple[str | None, bool]:
    """The model name and whether to load its published weights, for commands that take a checkpoint or a model.

    Neither given: :data:`DEFAULT_MODEL` with its ImageNet weights (through torch.hub's cache), logged. A model
    without ``weights`` or ``pretrained`` is used as asked, with a warning that its weights are random.

    Raises:
        ClsctlError: Both a checkpoint and a model, or weights/pretrained with a checkpoint, or weights without
            a model.
    """
    if checkpoint is not None:
        if model is not None:
            raise ClsctlError("give --checkpoint or --model, not both")
        if weights is not None or pretrained:
            raise ClsctlError("--weights and --pretrained go with --model, not --checkpoint")
        return None, False
    if model is None:
        if weights is not None:
            raise ClsctlError("--weights needs --model NAME (the architecture the weights are for)")
        from clsctl.models import model_info
        from clsctl.models.weights import hub_cache_path

        url = model_info(DEFAULT_MODEL).pretrained_url
        logger.info("no --checkpoint or --model: using %s with its ImageNet weights (%s, cached at %s)",
                    DEFAULT_MODEL, url, hub_cache_path(url) if url else "-")
        return DEFAULT_MODEL, True
    from clsctl.models.weights import random_weights_warning

    warning = random_weights_warning(model, weights=weights, pretrained=pretrained)
    if warning is not None:
        logger.warning(warning)
    return model, pretrained


def _model_source(checkpoint: str | Path | None, model_name: str | None, weights: str | Path | None,
                  pretrained: bool, num_classes: int | None) -> tuple[torch.nn.Module, list[str], Any, bool]:
    """The network, its class names, its eval transform, and whether its scores are independent (multi-label)."""
    from clsctl.engine.build import is_multi_label_recipe, model_from_checkpoint, transform_from_preprocessing

    if checkpoint is not None and num_classes is not None:
        raise ClsctlError("--num-classes goes with --model, not --checkpoint")
    model_name, pretrained = choose_model(checkpoint, model_name, weights, pretrained)
    if checkpoint is not None:
        loaded = model_from_checkpoint(checkpoint)
        return (loaded.model, loaded.class_names, transform_from_preprocessing(loaded.preprocessing),
                is_multi_label_recipe(loaded.recipe))
    assert model_name is not None  # choose_model picked one
    from clsctl.data.transforms import build_pipeline, eval_pipeline
    from clsctl.models import create_model, model_info

    meta = model_info(model_name)
    model = create_model(model_name, pretrained=pretrained, num_classes=num_classes, weights=weights)
    classes_count = model.model_meta.num_classes
    published = list(meta.weights.class_list) if meta.weights else []  # a clsctl model from the Hugging Face Hub
    stored = meta.hub.preprocessing if meta.hub else None
    if stored and len(published) == classes_count:
        return model, published, transform_from_preprocessing(dict(stored)), False
    if meta.class_names == "imagenet-1k" and classes_count == 1000:
        names = imagenet_class_names()
    else:
        names = [f"class_{i}" for i in range(classes_count)]
    # The evaluation transform of the model's published weights (resize, interpolation, centre crop).
    return model, names, build_pipeline(eval_pipeline(meta), meta.mean, meta.std), False


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
    from clsctl.engine.build import resolve_device
    from clsctl.readers import read_image

    paths = expand_images(images)
    net, names, transform, multi_label = _model_source(checkpoint, model, weights, pretrained, num_classes)
    dev = resolve_device(device)
    net = net.to(dev).eval()
    k = min(topk, len(names))
    results: list[Prediction] = []
    for start in range(0, len(paths), batch_size):
        chunk = paths[start : start + batch_size]
        tensors = []
        for path in chunk:
            tensors.append(transform(read_image(path)))
        logits = net(torch.stack(tensors).to(dev)).float()
        # Multi-label models score each class on its own (sigmoid); the others share one softmax.
        probs = (logits.sigmoid() if multi_label else logits.softmax(1)).cpu()
        top = probs.topk(k, dim=1)
        for path, values, indices in zip(chunk, top.values.tolist(), top.indices.tolist()):
            results.append(Prediction(str(path), [(i, names[i], v) for i, v in zip(indices, values)]))
    return results
