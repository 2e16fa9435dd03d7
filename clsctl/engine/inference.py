"""One way to get a model ready for use: network, class names and eval transform, from a checkpoint or a name.

:func:`load_for_inference` is what ``infer``, ``vis-cam``, ``get-flops``, ``benchmark``, ``export`` and ``test``
load their model with. A source is one of:

- a clsctl checkpoint (recipe, class names and preprocessing are inside);
- a registered model name (``resnet50``, ``timm/<name>``, ``hf-hub:<repo>``): ImageNet-1k class names for
  1000-way ImageNet variants, else ``class_<i>``; the evaluation transform of the published weights (the
  zoos' resize and centre crop, :func:`clsctl.data.transforms.eval_pipeline`), or the one a Hugging Face Hub
  model publishes with its class list;
- a recipe (YAML file or validated :class:`~clsctl.recipe.schema.Recipe`): the recipe's model and its
  evaluation preprocessing (what a checkpoint of it would carry).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from clsctl.errors import ClsctlError

logger = logging.getLogger("clsctl")

DEFAULT_MODEL = "resnet50"
"""The model used, with its published ImageNet weights, when neither a checkpoint nor a model name is given."""
RECIPE_SUFFIXES = (".yaml", ".yml")
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")
SourceKind = Literal["auto", "checkpoint", "model", "recipe"]


@dataclass
class InferenceModel:
    """A model ready for use, with what its callers need besides the network.

    Attributes:
        model: The network, in eval mode, on ``device``.
        class_names: One name per output.
        preprocessing: The transform as plain data (``pipeline``, ``mean``, ``std``, ``channel_order``,
            ``input_size``), as checkpoints store it.
        model_name: Registered model name.
        input_size: ``(height, width)`` the model takes.
        kind: ``checkpoint``, ``model`` or ``recipe``: what the source was.
        multi_label: Whether the scores are independent per class (sigmoid) rather than one softmax.
        device: Where ``model`` is.
        recipe: The recipe (a checkpoint's embedded one, or the recipe source); None for a model name.
        checkpoint: The checkpoint's contents (empty unless the source was a checkpoint).
    """

    model: nn.Module
    class_names: list[str]
    preprocessing: dict[str, Any]
    model_name: str
    input_size: tuple[int, int]
    kind: str
    multi_label: bool = False
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    recipe: Any = None
    checkpoint: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def transform(self) -> Any:
        """Decoded image (PIL or uint8 tensor) -> normalised ``3 x H x W`` tensor: the evaluation transform."""
        from clsctl.engine.build import transform_from_preprocessing

        return transform_from_preprocessing(self.preprocessing)

    @property
    def pipeline(self) -> list[Any]:
        """The evaluation steps (validated transform entries) before tensor conversion and normalisation."""
        from clsctl.data.transforms import pipeline_from_dicts

        return pipeline_from_dicts(self.preprocessing["pipeline"])

    @property
    def mean(self) -> list[float]:
        """Normalisation mean, RGB order."""
        return list(self.preprocessing["mean"])

    @property
    def std(self) -> list[float]:
        """Normalisation standard deviation, RGB order."""
        return list(self.preprocessing["std"])

    @property
    def channel_order(self) -> str:
        """``rgb`` or ``bgr``: the channel order the model takes."""
        return str(self.preprocessing.get("channel_order", "rgb"))


def source_kind(source: Any) -> str:
    """``recipe`` for a Recipe or a ``.yaml``/``.yml`` path; ``checkpoint`` for a path that exists or ends in a
    checkpoint suffix (``.pt``, ``.pth``, ``.ckpt``, ``.bin``); else ``model`` (a registered name)."""
    if not isinstance(source, (str, Path)):
        return "recipe"
    path = Path(source)
    suffix = path.suffix.lower()
    if suffix in RECIPE_SUFFIXES:
        return "recipe"
    if path.exists() or suffix in CHECKPOINT_SUFFIXES:
        return "checkpoint"
    return "model"


def load_for_inference(source: Any, *, weights: str | Path | None = None, pretrained: bool = False,
                       num_classes: int | None = None, kind: SourceKind = "auto", overrides: tuple[str, ...] = (),
                       load_weights: bool = True, seed: int | None = None,
                       device: str | torch.device | None = "cpu") -> InferenceModel:
    """The model of a checkpoint, a registered name or a recipe, in eval mode, with class names and eval transform.

    Args:
        source: Checkpoint path, registered model name, recipe YAML path or :class:`~clsctl.recipe.schema.Recipe`.
        weights: Weights file for a model name (state dict or clsctl checkpoint).
        pretrained: Published weights for a model name.
        num_classes: Classifier size for a model name or recipe (default: the variant's; for a recipe its
            ``model.num_classes``, else its train dataset's class count when that can be scanned).
        kind: What ``source`` is; ``auto``: :func:`source_kind` decides.
        overrides: ``path.to.key=value`` changes to a recipe YAML.
        load_weights: For a recipe: load the weights it names (``pretrained``, ``weights``, ``init``).
        seed: Seed of the random initialisation (the global generator is left as it was); None: not seeded.
        device: ``cpu``, ``cuda``, ``cuda:N``, ``auto`` (None means ``auto``).

    Raises:
        ClsctlError: An unreadable checkpoint or recipe, an unknown model name (with suggestions), weights
            options with a checkpoint.
    """
    from clsctl.engine.build import resolve_device

    kind = source_kind(source) if kind == "auto" else kind
    if kind == "checkpoint" and (weights is not None or pretrained or num_classes is not None):
        raise ClsctlError("weights, pretrained and num_classes go with a model name, not a checkpoint")
    dev = resolve_device(device) if not isinstance(device, torch.device) else device
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        if kind == "checkpoint":
            loaded = _from_checkpoint(source)
        elif kind == "recipe":
            loaded = _from_recipe(source, overrides, num_classes, load_weights)
        else:
            loaded = _from_name(str(source), weights, pretrained, num_classes)
    loaded.model = loaded.model.to(dev).eval()
    loaded.device = dev
    return loaded


def _inference_model(model: nn.Module, names: list[str], prep: dict[str, Any], model_name: str, kind: str,
                    **rest: Any) -> InferenceModel:
    size = prep.get("input_size")
    if not size:
        from clsctl.models import model_info

        size = model_info(model_name).input_size
    return InferenceModel(model, names, prep, model_name,
                          (int(size[0]), int(size[1])), kind, **rest)


def _from_checkpoint(path: str | Path) -> InferenceModel:
    from clsctl.engine.build import is_multi_label_recipe, model_from_checkpoint

    loaded = model_from_checkpoint(path)
    return _inference_model(loaded.model, list(loaded.class_names), loaded.preprocessing, loaded.recipe.model.name,
                           "checkpoint", multi_label=is_multi_label_recipe(loaded.recipe), recipe=loaded.recipe,
                           checkpoint=loaded.checkpoint)


def _from_name(name: str, weights: str | Path | None, pretrained: bool, num_classes: int | None) -> InferenceModel:
    from clsctl.models import create_model, model_info

    meta = model_info(name)  # unknown names raise with suggestions
    model = create_model(name, pretrained=pretrained, num_classes=num_classes, weights=weights)
    count = model.model_meta.num_classes
    published = list(meta.weights.class_list) if meta.weights else []  # a clsctl model from the Hugging Face Hub
    stored = meta.hub.preprocessing if meta.hub else None
    if stored and len(published) == count:
        return _inference_model(model, published, dict(stored), meta.name, "model")
    return _inference_model(model, named_class_names(meta, count), named_preprocessing(meta), meta.name, "model")


def named_class_names(meta: Any, count: int) -> list[str]:
    """Class names of a registered model with ``count`` outputs: ImageNet-1k's for a 1000-way ImageNet variant,
    else ``class_<i>``."""
    if meta.class_names == "imagenet-1k" and count == 1000:
        from clsctl.data.imagenet_classes import imagenet_class_names

        return imagenet_class_names()
    return [f"class_{i}" for i in range(count)]


def named_preprocessing(meta: Any) -> dict[str, Any]:
    """The evaluation preprocessing of a registered model's published weights (resize, interpolation, centre
    crop, normalisation), in the form checkpoints store it."""
    from clsctl.data.transforms import eval_pipeline

    return {"pipeline": [step.model_dump(mode="json") for step in eval_pipeline(meta)], "mean": list(meta.mean),
            "std": list(meta.std), "channel_order": "rgb", "input_size": list(meta.input_size)}


def _from_recipe(source: Any, overrides: tuple[str, ...], num_classes: int | None,
                 load_weights: bool) -> InferenceModel:
    from clsctl.engine.build import build_model, is_multi_label_recipe, preprocessing

    recipe = source
    if isinstance(source, (str, Path)):
        from clsctl.recipe import load_recipe

        recipe = load_recipe(Path(source), overrides)
    names = None
    if num_classes is None and recipe.model.num_classes is None:
        names = _train_classes(recipe)
    count = num_classes or recipe.model.num_classes or (len(names) if names else None)
    if count is None:
        from clsctl.models import model_info

        count = model_info(recipe.model.name).num_classes
    model = build_model(recipe, count, load_weights=load_weights)
    return _inference_model(model, names or [f"class_{i}" for i in range(count)], preprocessing(recipe),
                           recipe.model.name, "recipe", multi_label=is_multi_label_recipe(recipe), recipe=recipe)


def _train_classes(recipe: Any) -> list[str] | None:
    """The train dataset's classes when it can be scanned, else None."""
    try:
        from clsctl.data.datasets import build_dataset
        from clsctl.engine.build import dataset_config

        return list(build_dataset(dataset_config(recipe, "train")).classes)
    except ClsctlError:
        return None


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
    from clsctl.models import random_weights_warning

    warning = random_weights_warning(model, weights=weights, pretrained=pretrained)
    if warning is not None:
        logger.warning(warning)
    return model, pretrained


def load_from_options(*, checkpoint: str | Path | None = None, model: str | None = None,
                      weights: str | Path | None = None, pretrained: bool = False, num_classes: int | None = None,
                      device: str | torch.device | None = "cpu") -> InferenceModel:
    """:func:`load_for_inference` for commands with ``--checkpoint``/``--model``/``--weights``/``--pretrained``
    flags (see :func:`choose_model`: neither: :data:`DEFAULT_MODEL` with its ImageNet weights)."""
    name, pretrained = choose_model(checkpoint, model, weights, pretrained)
    if checkpoint is not None:
        return load_for_inference(checkpoint, kind="checkpoint", device=device)
    return load_for_inference(name, kind="model", weights=weights, pretrained=pretrained, num_classes=num_classes,
                              device=device)
